"""The one `VectorStore` interface every backend implements, and the data it speaks.

A store holds chunks in collections; every collection belongs to one tenant and tenants never
see each other's data (each backend keeps a separate index per tenant + collection). Stores
never embed text themselves: chunks arrive with their vectors, and vector/hybrid searches
carry the query vector (the retrieval service embeds the query text before it searches).

Errors are the domain exceptions of `ragfleet.common.errors`, so the HTTP layer maps them
without translation: bad input is `BadRequest`, an unknown collection is `CollectionNotFound`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from ragfleet.common.contracts import NAME_PATTERN, Fusion, SearchMode, is_valid_name
from ragfleet.common.errors import BadRequest, NotFound, Unprocessable

MetadataValue = str | int | float | bool

CONTENT_HASH_KEY = "_content_hash"
DEFAULT_DIM = 384


class CollectionNotFound(NotFound):
    code = "collection_not_found"


def validate_name(kind: str, value: str) -> str:
    """Tenant ids and collection names become file and index names, so they are checked strictly."""
    if not isinstance(value, str) or not is_valid_name(value):
        raise BadRequest(f"{kind} {value!r} is invalid: it must match {NAME_PATTERN}")
    return value


# --- filters -----------------------------------------------------------------------------------

# What one filter may hold. The embedded index answers a filter in a lookup or two binary searches
# per value and field (metadata_index.py), so these bound a filter's cost; they also bound what a
# filter adds to cache keys and to Weaviate queries.
MAX_FILTER_FIELDS = 16
MAX_FILTER_IN_VALUES = 256  # values in one `in` list
MAX_FILTER_VALUE_CHARS = 512  # characters of a field name or of a string value or bound


class FilterTooComplex(Unprocessable):
    code = "filter_too_complex"

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message, details={"limit": limit})


def check_filter_complexity(raw: Mapping[str, Any]) -> None:
    """Refuse, naming the limit, a filter beyond the limits above (before any parsing work)."""
    if len(raw) > MAX_FILTER_FIELDS:
        raise FilterTooComplex(
            f"filters have {len(raw)} fields; at most {MAX_FILTER_FIELDS} fields are allowed",
            MAX_FILTER_FIELDS,
        )
    for name, condition in raw.items():
        operands = condition.values() if isinstance(condition, Mapping) else [condition]
        for operand in operands:
            items = operand if isinstance(operand, list) else [operand]
            if len(items) > MAX_FILTER_IN_VALUES:
                raise FilterTooComplex(
                    f"filter on {str(name)[:64]!r} has {len(items)} values in 'in'; "
                    f"at most {MAX_FILTER_IN_VALUES} values in 'in' are allowed",
                    MAX_FILTER_IN_VALUES,
                )
            for item in (name, *items):
                if isinstance(item, str) and len(item) > MAX_FILTER_VALUE_CHARS:
                    raise FilterTooComplex(
                        f"filter on {str(name)[:64]!r} holds a string of {len(item)} characters; "
                        f"field names and values may have at most {MAX_FILTER_VALUE_CHARS} characters",
                        MAX_FILTER_VALUE_CHARS,
                    )


def parse_iso_date(value: str) -> datetime:
    """ISO dates and datetimes; naive values are taken as UTC so that they compare with aware ones."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"{value!r} is not an ISO date")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FieldCondition(BaseModel):
    """The conditions on one metadata field; several operators on one field are combined with AND.

    Range bounds are numbers, or ISO dates/datetimes as strings (then the stored value must be an
    ISO date string too). A field that a chunk lacks never matches.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    eq: MetadataValue | None = None
    in_: list[MetadataValue] | None = Field(None, alias="in", min_length=1, max_length=MAX_FILTER_IN_VALUES)
    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `{"lang": "en"}` means eq and `{"lang": ["en", "fr"]}` means in: what people type first.
        if isinstance(value, list):
            return {"in": value}
        if isinstance(value, str | int | float | bool):
            return {"eq": value}
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"eq", "in", "gt", "gte", "lt", "lte"})
            if unknown:
                raise ValueError(
                    f"unknown filter operator(s) {', '.join(unknown)}; use eq, in, gt, gte, lt or lte"
                )
            if not value:
                raise ValueError("a filter needs at least one operator (eq, in, gt, gte, lt, lte)")
        return value

    @model_validator(mode="after")
    def _check_ranges(self) -> FieldCondition:
        bounds = [b for b in (self.gt, self.gte, self.lt, self.lte) if b is not None]
        kinds = {isinstance(b, str) for b in bounds}
        if len(kinds) > 1:
            raise ValueError("range bounds of one field must be all numbers or all ISO dates")
        for bound in bounds:
            if isinstance(bound, str):
                parse_iso_date(bound)
        return self

    @property
    def is_range(self) -> bool:
        return any(b is not None for b in (self.gt, self.gte, self.lt, self.lte))

    @property
    def is_date_range(self) -> bool:
        return any(isinstance(b, str) for b in (self.gt, self.gte, self.lt, self.lte))

    def matches(self, value: Any) -> bool:
        """Whether a stored metadata value satisfies every operator (missing values never do)."""
        if value is None:
            return False
        if self.eq is not None and not _equal(value, self.eq):
            return False
        if self.in_ is not None and not any(_equal(value, option) for option in self.in_):
            return False
        if self.is_range:
            return self._in_range(value)
        return True

    def _in_range(self, value: Any) -> bool:
        if self.is_date_range:
            if not isinstance(value, str | date):
                return False
            try:
                actual: Any = parse_iso_date(value) if isinstance(value, str) else _as_datetime(value)
            except ValueError:
                return False
            convert: Any = parse_iso_date
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            actual, convert = value, float
        if self.gt is not None and not actual > convert(self.gt):
            return False
        if self.gte is not None and not actual >= convert(self.gte):
            return False
        if self.lt is not None and not actual < convert(self.lt):
            return False
        return not (self.lte is not None and not actual <= convert(self.lte))


def _as_datetime(value: date) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _equal(actual: Any, expected: Any) -> bool:
    # True == 1 in Python; a filter on a boolean must not match the number 1 (nor the reverse).
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


class MetadataFilter(RootModel[dict[str, FieldCondition]]):
    """``{"field": {"eq": x}}``, ``{"field": {"in": [...]}}``, ``{"field": {"gte": a, "lte": b}}``;
    several fields are combined with AND. Usable directly inside a request schema."""

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return all(cond.matches(metadata.get(name)) for name, cond in self.root.items())

    def __bool__(self) -> bool:
        return bool(self.root)


def parse_filters(raw: Mapping[str, Any] | MetadataFilter | None) -> MetadataFilter | None:
    """Validate filters given as plain data; a bad filter is a `BadRequest` that names the problem,
    one beyond the complexity limits a `FilterTooComplex` (422) that names the limit."""
    if raw is None or isinstance(raw, MetadataFilter):
        return raw or None
    if isinstance(raw, Mapping):
        check_filter_complexity(raw)
    try:
        parsed = MetadataFilter.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'filters'}: {err['msg']}" for err in exc.errors()
        )
        raise BadRequest(f"invalid filters: {problems}") from None
    except TypeError:
        raise BadRequest("filters must be an object mapping field names to conditions") from None
    return parsed or None


# --- data --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Chunk:
    """One indexed passage. `id` is unique within a collection; upserting an existing id replaces it."""

    id: str
    document_id: str
    text: str
    vector: np.ndarray | Sequence[float]
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Hit:
    """A search result. `score`: cosine similarity (vector), BM25 score (bm25) or fused score (hybrid);
    higher is better within one result list.

    Not frozen: a frozen dataclass sets each field through object.__setattr__, 1.2 us a Hit here
    against 0.3 us, and document ranking builds ~50 candidates per search (with a dict field it
    was never hashable anyway). Treat it as read-only: `dataclasses.replace` makes changed copies."""

    id: str
    document_id: str
    text: str
    score: float
    metadata: dict[str, Any]
    position: int = 0


@dataclass(slots=True)
class DocumentCandidates:
    """Document ranking's inputs (`search.ranking`): the candidate lists of one search as arrays
    over the distinct chunks they hold, and the centroids of those chunks' documents.

    Chunk ``i`` is ``chunk_ids[i]`` (with its document, text, metadata and position at ``i`` in
    the other sequences) and belongs to document ``chunk_documents[i]``, an index into
    ``documents``. ``lists[q]`` is query ``q``'s result as (chunk indexes, scores), best first.
    Only the chunks returned become `Hit`s (`hit`): document ranking reads ~50-100 candidates to
    answer ~10, and a `Hit` per candidate was a sixth of a default request's CPU. Read-only: a
    backend may share its own metadata mappings with it.
    """

    lists: list[tuple[np.ndarray, np.ndarray]]
    chunk_ids: Sequence[str]
    document_ids: Sequence[str]
    texts: Sequence[str]
    metadata: Sequence[Mapping[str, Any]]
    positions: Sequence[int]
    chunk_documents: np.ndarray  # intp, by chunk index
    documents: Sequence[str]  # the distinct document ids
    # (documents, dim) unit rows by document index, a zero row where a document has none; None
    # when not asked for or the backend has none.
    centroids: np.ndarray | None = None

    def hit(self, chunk: int, score: float) -> Hit:
        return Hit(
            id=self.chunk_ids[chunk],
            document_id=self.document_ids[chunk],
            text=self.texts[chunk],
            score=score,
            metadata=self.metadata[chunk],  # type: ignore[arg-type]  # read-only, shared
            position=self.positions[chunk],
        )

    def hits(self, which: int) -> list[Hit]:
        """List `which` as `Hit`s, as the query's own search returns them."""
        chunks, scores = self.lists[which]
        return [self.hit(c, s) for c, s in zip(chunks.tolist(), scores.tolist(), strict=True)]

    @classmethod
    def from_hits(
        cls, lists: Sequence[Sequence[Hit]], centroids: Mapping[str, np.ndarray] | None = None
    ) -> DocumentCandidates:
        """From each query's hits (and the documents' centroids by id, if any): for a backend
        whose searches give `Hit`s."""
        index: dict[str, int] = {}
        first: list[Hit] = []
        arrays = []
        for hits in lists:
            chunks = []
            for hit in hits:
                if hit.id not in index:  # a chunk found by both queries is one candidate
                    index[hit.id] = len(first)
                    first.append(hit)
                chunks.append(index[hit.id])
            arrays.append(
                (np.array(chunks, dtype=np.intp), np.array([hit.score for hit in hits], dtype=np.float64))
            )
        documents: dict[str, int] = {}
        chunk_documents = [documents.setdefault(hit.document_id, len(documents)) for hit in first]
        candidates = cls(
            lists=arrays,
            chunk_ids=[hit.id for hit in first],
            document_ids=[hit.document_id for hit in first],
            texts=[hit.text for hit in first],
            metadata=[hit.metadata for hit in first],
            positions=[hit.position for hit in first],
            chunk_documents=np.array(chunk_documents, dtype=np.intp),
            documents=list(documents),
        )
        if centroids:
            dim = len(next(iter(centroids.values())))
            zero = np.zeros(dim, dtype=np.float32)
            candidates.centroids = np.array(
                [centroids.get(d, zero) for d in candidates.documents], dtype=np.float32
            )
        return candidates


@dataclass(slots=True, frozen=True)
class DocumentInfo:
    document_id: str
    chunks: int
    content_hash: str | None
    metadata: dict[str, Any]  # the metadata of the document's first chunk (by position)


@dataclass(slots=True, frozen=True)
class CollectionInfo:
    name: str
    chunks: int
    documents: int


@dataclass(slots=True)
class SearchQuery:
    """What to search for. `vector` is required for vector and hybrid modes, `text` for bm25 and
    hybrid. `alpha` weighs the vector side in hybrid fusion (1 = pure vector, 0 = pure BM25)."""

    text: str | None = None
    vector: np.ndarray | Sequence[float] | None = None
    mode: SearchMode = "vector"
    top_k: int = 10
    alpha: float = 0.5
    fusion: Fusion = "relative_score"
    filters: MetadataFilter | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("vector", "bm25", "hybrid"):
            raise BadRequest(f"mode {self.mode!r} is unknown; use vector, bm25 or hybrid")
        if self.fusion not in ("rrf", "relative_score"):
            raise BadRequest(f"fusion {self.fusion!r} is unknown; use rrf or relative_score")
        if not 1 <= self.top_k <= 1000:
            raise BadRequest(f"top_k must be between 1 and 1000, got {self.top_k}")
        if not 0.0 <= self.alpha <= 1.0:
            raise BadRequest(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.mode in ("vector", "hybrid") and self.vector is None:
            raise BadRequest(f"mode {self.mode} needs a query vector")
        if self.mode in ("bm25", "hybrid") and not (self.text and self.text.strip()):
            raise BadRequest(f"mode {self.mode} needs a non-empty query text")
        self.filters = parse_filters(self.filters)

    @property
    def metadata_filter(self) -> MetadataFilter | None:
        return self.filters if isinstance(self.filters, MetadataFilter) else None


def as_vector(value: np.ndarray | Sequence[float], dim: int, what: str = "vector") -> np.ndarray:
    """A float32 vector of the expected dimension, L2-normalised (the stores use cosine)."""
    try:
        array = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise BadRequest(f"{what} must be a list of numbers") from None
    if array.shape[0] != dim:
        raise BadRequest(f"{what} has {array.shape[0]} dimensions; this collection expects {dim}")
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0.0:
        raise BadRequest(f"{what} must be finite and non-zero")
    return array / norm


# --- the interface -----------------------------------------------------------------------------


class VectorStore(abc.ABC):
    """Every method is async and safe to call concurrently; blocking work runs off the event loop
    (what would cost less than the trip to a thread, such as an unfiltered HNSW query that waits
    for no lock, may run on it).

    Collections are created by their first upsert. Searching a collection that does not exist
    raises `CollectionNotFound`; deleting from one removes nothing and returns 0.
    """

    backend: str
    dim: int

    @abc.abstractmethod
    async def upsert(self, tenant: str, collection: str, chunks: Sequence[Chunk]) -> int:
        """Insert or replace chunks by id; returns how many were written. Durable once it returns."""

    @abc.abstractmethod
    async def delete_documents(self, tenant: str, collection: str, document_ids: Sequence[str]) -> int:
        """Remove every chunk of these documents; returns how many chunks were removed."""

    @abc.abstractmethod
    async def delete_chunks(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> int:
        """Remove chunks by id; returns how many existed and were removed."""

    @abc.abstractmethod
    async def delete_collection(self, tenant: str, collection: str) -> int | None:
        """Remove the collection and every chunk in it; returns how many chunks it held, or None
        when it did not exist. A later upsert creates it again, empty."""

    @abc.abstractmethod
    async def search(self, tenant: str, collection: str, query: SearchQuery) -> list[Hit]:
        """Up to `top_k` hits, best first, all matching the query's filters."""

    async def document_vectors(
        self, tenant: str, collection: str, document_ids: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Each document's centroid (the mean of its chunks' vectors, L2-normalised), for document
        ranking's `centroid_weight`. A backend that cannot give it cheaply returns {} and the
        signal is left out: Weaviate would have to fetch every chunk vector of every candidate."""
        return {}

    async def document_candidates(
        self, tenant: str, collection: str, queries: Sequence[SearchQuery], *, centroids: bool
    ) -> DocumentCandidates:
        """Document ranking's inputs in one call: each query's candidates and, with `centroids`,
        the `document_vectors` of every document among them. A backend that can answer it in one
        step overrides this: the embedded store's two steps were two trips to its thread pool
        per search, and it gives the candidates straight from the index's arrays."""
        lists = [await self.search(tenant, collection, query) for query in queries]
        found: dict[str, np.ndarray] = {}
        if centroids:
            documents = sorted({hit.document_id for hits in lists for hit in hits})
            found = await self.document_vectors(tenant, collection, documents)
        return DocumentCandidates.from_hits(lists, found)

    @abc.abstractmethod
    async def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentInfo | None:
        """What the index holds for a document, or None when it holds nothing."""

    @abc.abstractmethod
    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        """The tenant's collections, sorted by name."""

    @abc.abstractmethod
    async def collection_exists(self, tenant: str, collection: str) -> bool: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release everything; the store is unusable afterwards."""
