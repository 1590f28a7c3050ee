"""The Weaviate backend (weaviate-client v4, async; HTTP for the schema, gRPC for data).

Mapping:
- one Weaviate collection per ragfleet collection (``Ragfleet_<name>``), multi-tenancy on;
  a ragfleet tenant is a Weaviate tenant, so tenants are isolated shards;
- vectors are supplied by us (no vectorizer), HNSW with cosine distance;
- each chunk is an object with a deterministic uuid5 of (tenant, collection, chunk id), so a
  re-upsert overwrites it and retries are idempotent;
- metadata is kept whole as JSON (``metadata_json``, returned as is) and also as typed,
  filterable properties: strings ``s_<key>`` (field tokenization: exact match), numbers
  ``n_<key>``, booleans ``b_<key>``, ISO dates ``d_<key>`` (DATE), created on first sight.

Scores: vector = 1 - cosine distance; bm25 and hybrid = Weaviate's scores (its hybrid fusions
are the same RRF and relative-score definitions as the embedded backend's).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import orjson
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.collections.classes.filters import _Filters

from ragfleet.common.errors import BadRequest, ServiceUnavailable
from ragfleet.retrieval.store.base import (
    CONTENT_HASH_KEY,
    DEFAULT_DIM,
    Chunk,
    CollectionInfo,
    CollectionNotFound,
    DocumentInfo,
    FieldCondition,
    Hit,
    MetadataFilter,
    SearchQuery,
    VectorStore,
    as_vector,
    parse_iso_date,
    validate_name,
)

BATCH_SIZE = 200
MAX_DOCUMENT_CHUNKS = 10_000
_BASE_PROPERTIES = ("chunk_id", "document_id", "text", "position", "metadata_json")
_NAMESPACE = uuid.UUID("5b0f7c1e-2f7a-4d6e-9a57-6d1f0c2b9e11")  # ragfleet's uuid5 namespace


def chunk_uuid(tenant: str, collection: str, chunk_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}/{collection}/{chunk_id}"))


def _escape(name: str) -> str:
    """Any string as a GraphQL-safe name part; '_' only ever starts an escape, so it is reversible."""
    return "".join(ch if ch.isascii() and ch.isalnum() else f"_{ord(ch):x}_" for ch in name)


def _unescape(name: str) -> str:
    return re.sub(r"_([0-9a-f]+)_", lambda m: chr(int(m.group(1), 16)), name)


def _is_iso_date(value: str) -> bool:
    if len(value) < 10 or not value[:4].isdigit() or value[4] != "-":
        return False
    try:
        parse_iso_date(value)
    except ValueError:
        return False
    return True


def _typed_properties(metadata: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, value in metadata.items():
        name = _escape(key)
        if isinstance(value, bool):
            props[f"b_{name}"] = value
        elif isinstance(value, int | float):
            props[f"n_{name}"] = float(value)
        elif isinstance(value, str):
            props[f"s_{name}"] = value
            if _is_iso_date(value):
                props[f"d_{name}"] = parse_iso_date(value).isoformat()
    return props


_PROPERTY_TYPES = {"b": DataType.BOOL, "n": DataType.NUMBER, "s": DataType.TEXT, "d": DataType.DATE}


def _condition_filter(key: str, cond: FieldCondition) -> _Filters:
    name = _escape(key)
    parts: list[_Filters] = []

    def by_value(value: Any) -> _Filters:
        if isinstance(value, bool):
            return Filter.by_property(f"b_{name}").equal(value)
        if isinstance(value, int | float):
            return Filter.by_property(f"n_{name}").equal(float(value))
        return Filter.by_property(f"s_{name}").equal(str(value))

    if cond.eq is not None:
        parts.append(by_value(cond.eq))
    if cond.in_ is not None:
        parts.append(
            Filter.any_of([by_value(v) for v in cond.in_]) if len(cond.in_) > 1 else by_value(cond.in_[0])
        )
    if cond.is_range:
        prop = Filter.by_property(f"d_{name}" if cond.is_date_range else f"n_{name}")

        def bound(value: float | str) -> Any:
            return parse_iso_date(value) if isinstance(value, str) else float(value)

        if cond.gt is not None:
            parts.append(prop.greater_than(bound(cond.gt)))
        if cond.gte is not None:
            parts.append(prop.greater_or_equal(bound(cond.gte)))
        if cond.lt is not None:
            parts.append(prop.less_than(bound(cond.lt)))
        if cond.lte is not None:
            parts.append(prop.less_or_equal(bound(cond.lte)))
    return parts[0] if len(parts) == 1 else Filter.all_of(parts)


class WeaviateVectorStore(VectorStore):
    """`VectorStore` on a Weaviate server at `url` (e.g. ``http://weaviate:8080``, gRPC on
    `grpc_port`). The client connects on first use; `close()` disconnects it."""

    backend = "weaviate"

    def __init__(
        self,
        url: str,
        *,
        grpc_port: int = 50051,
        api_key: str | None = None,
        dim: int = DEFAULT_DIM,
        class_prefix: str = "Ragfleet",
    ) -> None:
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", class_prefix):
            raise ValueError("class_prefix must start with a capital letter and hold only letters and digits")
        parsed = urlparse(url)
        secure = parsed.scheme == "https"
        self.client = weaviate.use_async_with_custom(
            http_host=parsed.hostname or "localhost",
            http_port=parsed.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=parsed.hostname or "localhost",
            grpc_port=grpc_port,
            grpc_secure=secure,
            auth_credentials=weaviate.auth.AuthApiKey(api_key) if api_key else None,
        )
        self.dim = dim
        self.class_prefix = class_prefix
        self._known_properties: dict[str, set[str]] = {}
        self._known_tenants: set[tuple[str, str]] = set()
        self._schema_lock = asyncio.Lock()

    async def _client(self) -> weaviate.WeaviateAsyncClient:
        if not self.client.is_connected():
            try:
                await self.client.connect()
            except Exception as exc:
                raise ServiceUnavailable(f"cannot reach Weaviate: {exc}") from exc
        return self.client

    def class_name(self, collection: str) -> str:
        return f"{self.class_prefix}_{_escape(validate_name('collection', collection))}"

    async def _collection(self, tenant: str, collection: str, *, create: bool) -> Any | None:
        """The tenant's view of the Weaviate collection, or None when either does not exist."""
        validate_name("tenant", tenant)
        client = await self._client()
        name = self.class_name(collection)
        key = (tenant, collection)
        if key not in self._known_tenants:
            async with self._schema_lock:
                if key not in self._known_tenants:
                    if not await client.collections.exists(name):
                        if not create:
                            return None
                        await self._create_collection(client, name)
                    handle = client.collections.get(name)
                    tenants = await handle.tenants.get()
                    if tenant not in tenants:
                        if not create:
                            return None
                        await handle.tenants.create([Tenant(name=tenant)])
                    self._known_tenants.add(key)
        return client.collections.get(name).with_tenant(tenant)

    async def _create_collection(self, client: weaviate.WeaviateAsyncClient, name: str) -> None:
        await client.collections.create(
            name,
            multi_tenancy_config=Configure.multi_tenancy(enabled=True),
            vector_config=Configure.Vectors.self_provided(
                vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE)
            ),
            properties=[
                Property(name="chunk_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="document_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
                Property(name="position", data_type=DataType.INT),
                Property(
                    name="metadata_json",
                    data_type=DataType.TEXT,
                    index_filterable=False,
                    index_searchable=False,
                ),
            ],
        )
        self._known_properties[name] = set(_BASE_PROPERTIES)

    async def _ensure_properties(self, collection: str, names: set[str]) -> None:
        client = await self._client()
        class_name = self.class_name(collection)
        known = self._known_properties.get(class_name)
        if known is None:
            config = await client.collections.get(class_name).config.get()
            known = {p.name for p in config.properties}
            self._known_properties[class_name] = known
        missing = sorted(names - known)
        if not missing:
            return
        async with self._schema_lock:
            handle = client.collections.get(class_name)
            for prop in missing:
                if prop in known:
                    continue
                kind = _PROPERTY_TYPES[prop[0]]
                await handle.config.add_property(
                    Property(
                        name=prop,
                        data_type=kind,
                        tokenization=Tokenization.FIELD if kind == DataType.TEXT else None,
                        index_searchable=False,
                    )
                )
                known.add(prop)

    # --- VectorStore --------------------------------------------------------------------------

    async def upsert(self, tenant: str, collection: str, chunks: Sequence[Chunk]) -> int:
        latest = {chunk.id: chunk for chunk in chunks}
        objects: list[DataObject[dict[str, Any], None]] = []
        typed_names: set[str] = set()
        for chunk in latest.values():
            if not chunk.id or not chunk.document_id:
                raise BadRequest("chunk id and document_id must be non-empty strings")
            vector = as_vector(chunk.vector, self.dim, f"vector of chunk {chunk.id!r}")
            try:
                metadata_json = orjson.dumps(chunk.metadata).decode()
            except TypeError as exc:
                raise BadRequest(f"metadata of chunk {chunk.id!r} is not JSON-serialisable: {exc}") from None
            typed = _typed_properties(chunk.metadata)
            typed_names |= set(typed)
            objects.append(
                DataObject(
                    uuid=chunk_uuid(tenant, collection, chunk.id),
                    vector=vector.tolist(),
                    properties={
                        "chunk_id": chunk.id,
                        "document_id": chunk.document_id,
                        "text": chunk.text,
                        "position": int(chunk.position),
                        "metadata_json": metadata_json,
                        **typed,
                    },
                )
            )
        if not objects:
            return 0
        handle = await self._collection(tenant, collection, create=True)
        assert handle is not None
        await self._ensure_properties(collection, typed_names)
        for start in range(0, len(objects), BATCH_SIZE):
            result = await handle.data.insert_many(objects[start : start + BATCH_SIZE])
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise ServiceUnavailable(f"Weaviate rejected {len(result.errors)} chunks: {first.message}")
        return len(objects)

    async def _delete_where(self, tenant: str, collection: str, prop: str, values: Sequence[str]) -> int:
        handle = await self._collection(tenant, collection, create=False)
        values = list(dict.fromkeys(values))
        if handle is None or not values:
            return 0
        deleted = 0
        for start in range(0, len(values), 500):
            result = await handle.data.delete_many(
                where=Filter.by_property(prop).contains_any(values[start : start + 500])
            )
            deleted += int(result.successful)
        return deleted

    async def delete_documents(self, tenant: str, collection: str, document_ids: Sequence[str]) -> int:
        return await self._delete_where(tenant, collection, "document_id", document_ids)

    async def delete_chunks(self, tenant: str, collection: str, chunk_ids: Sequence[str]) -> int:
        return await self._delete_where(tenant, collection, "chunk_id", chunk_ids)

    def _filters(self, metadata_filter: MetadataFilter | None) -> _Filters | None:
        if not metadata_filter:
            return None
        parts = [_condition_filter(key, cond) for key, cond in metadata_filter.root.items()]
        return parts[0] if len(parts) == 1 else Filter.all_of(parts)

    async def search(self, tenant: str, collection: str, query: SearchQuery) -> list[Hit]:
        handle = await self._collection(tenant, collection, create=False)
        if handle is None:
            raise CollectionNotFound(f"collection {collection!r} does not exist")
        metadata_filter = query.metadata_filter
        if metadata_filter:
            # A filter on a property no chunk ever had is an error in Weaviate; here it matches nothing.
            names = set()
            for key, cond in metadata_filter.root.items():
                values = [v for v in (cond.eq, *(cond.in_ or ())) if v is not None]
                names |= {
                    next(iter(_typed_properties({key: v}))) for v in values if _typed_properties({key: v})
                }
                if cond.is_range:
                    names.add(f"{'d' if cond.is_date_range else 'n'}_{_escape(key)}")
            await self._ensure_properties(collection, names)
        filters = self._filters(metadata_filter)
        vector = (
            as_vector(query.vector, self.dim, "query vector").tolist() if query.vector is not None else None
        )
        if query.mode == "vector":
            result = await handle.query.near_vector(
                near_vector=vector,
                limit=query.top_k,
                filters=filters,
                return_metadata=MetadataQuery(distance=True),
            )
        elif query.mode == "bm25":
            result = await handle.query.bm25(
                query=query.text,
                query_properties=["text"],
                limit=query.top_k,
                filters=filters,
                return_metadata=MetadataQuery(score=True),
            )
        else:
            result = await handle.query.hybrid(
                query=query.text,
                vector=vector,
                alpha=query.alpha,
                query_properties=["text"],
                fusion_type=HybridFusion.RANKED if query.fusion == "rrf" else HybridFusion.RELATIVE_SCORE,
                limit=query.top_k,
                filters=filters,
                return_metadata=MetadataQuery(score=True),
            )
        hits = []
        for obj in result.objects:
            if query.mode == "vector":
                score = 1.0 - float(obj.metadata.distance or 0.0)
            else:
                score = float(obj.metadata.score or 0.0)
            hits.append(self._hit(obj.properties, score))
        return hits

    @staticmethod
    def _hit(props: dict[str, Any], score: float) -> Hit:
        return Hit(
            id=str(props["chunk_id"]),
            document_id=str(props["document_id"]),
            text=str(props.get("text") or ""),
            score=score,
            metadata=orjson.loads(props.get("metadata_json") or "{}"),
            position=int(props.get("position") or 0),
        )

    async def get_document(self, tenant: str, collection: str, document_id: str) -> DocumentInfo | None:
        handle = await self._collection(tenant, collection, create=False)
        if handle is None:
            return None
        result = await handle.query.fetch_objects(
            filters=Filter.by_property("document_id").equal(document_id),
            limit=MAX_DOCUMENT_CHUNKS,
            return_properties=["position", "metadata_json"],
        )
        if not result.objects:
            return None
        first = min(result.objects, key=lambda o: int(o.properties.get("position") or 0))
        metadata = orjson.loads(first.properties.get("metadata_json") or "{}")
        return DocumentInfo(
            document_id=document_id,
            chunks=len(result.objects),
            content_hash=metadata.get(CONTENT_HASH_KEY),
            metadata=metadata,
        )

    async def list_collections(self, tenant: str) -> list[CollectionInfo]:
        validate_name("tenant", tenant)
        client = await self._client()
        prefix = f"{self.class_prefix}_"
        infos = []
        for name in sorted(await client.collections.list_all(simple=True)):
            if not name.startswith(prefix):
                continue
            collection = _unescape(name[len(prefix) :])
            handle = await self._collection(tenant, collection, create=False)
            if handle is None:
                continue
            total = await handle.aggregate.over_all(total_count=True)
            documents = await handle.aggregate.over_all(group_by="document_id", total_count=True)
            infos.append(
                CollectionInfo(
                    name=collection, chunks=int(total.total_count or 0), documents=len(documents.groups)
                )
            )
        return sorted(infos, key=lambda info: info.name)

    async def delete_collection(self, tenant: str, collection: str) -> int | None:
        # A collection is one class with a tenant per ragfleet tenant: removing our tenant from it
        # deletes our objects and leaves every other tenant's alone.
        handle = await self._collection(tenant, collection, create=False)
        if handle is None:
            return None
        total = await handle.aggregate.over_all(total_count=True)
        client = await self._client()
        await client.collections.get(self.class_name(collection)).tenants.remove([tenant])
        self._known_tenants.discard((tenant, collection))
        return int(total.total_count or 0)

    async def collection_exists(self, tenant: str, collection: str) -> bool:
        return await self._collection(tenant, collection, create=False) is not None

    async def close(self) -> None:
        if self.client.is_connected():
            await self.client.close()
