"""The contracts between ragfleet's services, defined once: names, headers, the search request,
how a downstream service's error becomes ours, and the JSON splice for ``took_ms``.

Every service imports these; none writes the pattern, a header name or the search schema again
(a copy drifts: the gateway's and retrieval's search requests once disagreed on the query limit).
docs/internal-contracts.md describes the HTTP side of the same contracts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ragfleet.common.errors import RagfleetError, ServiceUnavailable, UpstreamError, UpstreamTimeout

# ---- names ---------------------------------------------------------------------------------

# Tenants, collections and key-bound names: lowercase, URL- and Redis-key-safe, at most 63 characters
# (a Kubernetes label value's limit, so a name can also label things in a cluster).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NAME_RE = re.compile(NAME_PATTERN)

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
CollectionName = Name
TenantId = Name


def is_valid_name(value: str) -> bool:
    return NAME_RE.fullmatch(value) is not None


# ---- headers between services ---------------------------------------------------------------

# The tenant a call acts for. Set by the gateway from the API key; trusted by internal endpoints
# only together with a valid service token.
TENANT_HEADER = "X-Ragfleet-Tenant"
# The API key's id, for llm-proxy's per-key accounting.
KEY_ID_HEADER = "X-Ragfleet-Key-Id"
# Proves the caller is a ragfleet service (a shared token from a Secret).
SERVICE_TOKEN_HEADER = "X-Ragfleet-Service-Token"
# On a search answer that is less than was asked (Vespa's coverage.degraded, Elasticsearch's
# timed_out), the reason: ``embedder_busy`` — a hybrid search answered BM25-only because its query
# could not be embedded in time. Such an answer is cached in no tier, retrieval's nor the gateway's.
DEGRADED_HEADER = "X-Search-Degraded"

# ---- the search request ----------------------------------------------------------------------

SearchMode = Literal["vector", "bm25", "hybrid"]
Fusion = Literal["relative_score", "rrf"]
MAX_QUERY_CHARS = 4096
MAX_TOP_K = 100


class SearchRequest(BaseModel):
    """What retrieval's ``POST /v1/search`` accepts (the OpenAPI schema too)."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(
        None, max_length=MAX_QUERY_CHARS, description="text to search for (needed by bm25 and hybrid)"
    )
    vector: list[float] | str | None = Field(
        None,
        description="a query vector (384 floats) instead of, or with, the query text: a JSON list, or "
        "a string of the little-endian float32 bytes in base64 (as OpenAI's encoding_format=base64), "
        "which costs far less to send and to decode",
    )
    collection: CollectionName = "default"
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    # The defaults are what `make eval` measured to rank best (docs/eval.md).
    mode: SearchMode = "hybrid"
    alpha: float = Field(0.6, ge=0.0, le=1.0, description="hybrid weight of the vector side; 1 = pure vector")
    fusion: Fusion = "relative_score"
    rank: Literal["document", "chunk"] = Field(
        "document",
        description="document: rank documents (best chunk per list, plus the title's similarity), "
        "then return their best chunks; chunk: rank chunks one by one",
    )
    title_weight: float = Field(
        0.25,
        ge=0.0,
        le=2.0,
        description="rank=document: weight of the query-title cosine in a document's score",
    )
    centroid_weight: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="rank=document: weight of the cosine between the query and the document's centroid "
        "(the mean of its chunks' vectors); the embedded backend only",
    )
    rerank: bool | None = Field(
        None,
        description="rescore the fused top results with the configured reranker (null: the service default)",
    )
    rerank_depth: int = Field(
        20, ge=2, le=MAX_TOP_K, description="how many fused results the reranker rescores"
    )
    per_document: int = Field(
        2, ge=1, le=MAX_TOP_K, description="rank=document: at most this many chunks per document"
    )
    semantic: bool = Field(
        True,
        description="may answer with the results of an earlier question close in meaning (the semantic "
        "cache, X-Cache: hit-semantic); false: this question's own results",
    )
    filters: dict[str, Any] | None = Field(
        None,
        description='metadata conditions, ANDed: {"lang": "en"}, {"tag": {"in": [..]}}, '
        '{"year": {"gte": 2020}}, {"date": {"gte": "2024-01-01"}}',
    )

    @model_validator(mode="after")
    def _needs_something_to_search_for(self) -> SearchRequest:
        if self.query is not None and not self.query.strip():
            raise ValueError("query must not be empty or only whitespace")
        if self.query is None and self.vector is None:
            raise ValueError("give a query text or a vector")
        if self.query is None and "mode" not in self.model_fields_set:
            self.mode = "vector"  # the default (hybrid) needs a text; a bare vector is a vector search
        if self.mode in ("bm25", "hybrid") and self.query is None:
            raise ValueError(f"mode {self.mode} needs a query text")
        return self


class PublicSearchRequest(SearchRequest):
    """The gateway's ``POST /v1/search``: retrieval's request, narrowed.

    A subclass, so every public request is one retrieval accepts (tests/test_contracts.py holds
    it): the public API takes exactly one of query and vector, so that a cached answer's key says
    unambiguously what was searched for.
    """

    @model_validator(mode="after")
    def _exactly_one_of_query_or_vector(self) -> PublicSearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("send exactly one of 'query' or 'vector'")
        return self


# ---- a downstream service's error, as ours -----------------------------------------------------


class DownstreamError(RagfleetError):
    """A downstream 4xx, relayed with its own status, code and message: it describes the caller's mistake."""

    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status_code = status_code


def downstream_error(
    service: str, status_code: int, body: bytes, *, retry_after: str | None = None
) -> RagfleetError | None:
    """The error a caller raises for a downstream answer; ``None`` when the answer is a success.

    4xx: relayed as is (the error model's code, message and details). 502/503: the service is
    unavailable. 504: it timed out. Any other 5xx: it failed. The one mapping for every caller of
    another ragfleet service (gateway, ingestion API, ingestion worker). The downstream answer's
    ``Retry-After`` (``retry_after``) goes on with the error: a client told 503 or 429 by retrieval
    learns from the gateway when to come back.
    """
    error = _downstream_error(service, status_code, body)
    if error is not None and retry_after:
        error.headers = {**error.headers, "Retry-After": retry_after}
    return error


def _downstream_error(service: str, status_code: int, body: bytes) -> RagfleetError | None:
    if status_code < 400:
        return None
    error: dict[str, Any] = {}
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            error = parsed["error"]
    except ValueError:
        pass
    message = str(error.get("message") or f"{service} answered {status_code}")
    if status_code < 500:
        return DownstreamError(
            status_code, str(error.get("code", "bad_request")), message, error.get("details")
        )
    details = {"service": service}
    if status_code in (502, 503):
        # The downstream's own code says why (``embedder_busy``: come back shortly; ``redis_unavailable``).
        return ServiceUnavailable(
            f"{service} is unavailable: {message}",
            code=str(error["code"]) if error.get("code") else None,
            details=details,
        )
    if status_code == 504:
        return UpstreamTimeout(f"{service} timed out: {message}", details=details)
    return UpstreamError(f"{service} failed: {message}", details=details)


def is_transient(status_code: int) -> bool:
    """Worth retrying later: the other side is down, overloaded or shedding load."""
    return status_code >= 500 or status_code == 429


# ---- JSON splice -------------------------------------------------------------------------------


def strip_leading_json_field(body: bytes, name: str) -> bytes:
    """``body`` without its leading member ``name`` (when it is the first one), still a JSON object.

    Cached answers are stored as ready bytes without per-answer fields such as ``took_ms``, which
    :func:`prefix_json_field` puts back on the way out: no decoding and re-encoding of the body.

    The member's value must be a scalar without a comma (a number, as ``took_ms`` is).
    """
    prefix = b'{"' + name.encode() + b'":'
    if not body.startswith(prefix):
        return body
    end = body.find(b",", len(prefix))
    if end < 0:  # the only member
        return b"{}"
    return b"{" + body[end + 1 :]


def prefix_json_field(body: bytes, name: str, encoded_value: bytes) -> bytes:
    """``body`` with ``"name": value`` as its first member (``body`` must not already hold ``name``)."""
    member = b'{"' + name.encode() + b'":' + encoded_value
    if body.strip() == b"{}":
        return member + b"}"
    return member + b"," + body[1:]
