"""Request and response bodies of the public search API (they are the OpenAPI schema too)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# The request is a contract between services, defined once (re-exported for this package's routes).
from ragfleet.common.contracts import SearchMode, SearchRequest

__all__ = ["CollectionSummary", "CollectionsResponse", "SearchRequest", "SearchResponse", "SearchResult"]


class SearchResult(BaseModel):
    id: str
    document_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    results: list[SearchResult]
    took_ms: float
    mode: SearchMode
    collection: str
    query: str | None = Field(
        None,
        description="the question these results answer, normalised (lower case, single spaces); on a "
        "semantic hit the earlier question close in meaning whose results these are",
    )
    degraded: str | None = Field(
        None,
        description="present when the answer is less than was asked: embedder_busy (a hybrid search "
        "answered BM25-only — mode says bm25 — because its query could not be embedded in time; not cached)",
    )


class CollectionSummary(BaseModel):
    name: str
    chunks: int
    documents: int
    version: int = Field(description="the cache version, bumped by every write to the collection")


class CollectionsResponse(BaseModel):
    collections: list[CollectionSummary]
