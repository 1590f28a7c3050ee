"""Request and response bodies of the public search API (they are the OpenAPI schema too)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragfleet.retrieval.store import Fusion, SearchMode

MAX_QUERY_CHARS = 4096


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(
        None, max_length=MAX_QUERY_CHARS, description="text to search for (needed by bm25 and hybrid)"
    )
    vector: list[float] | None = Field(
        None, description="a query vector (384 floats) instead of, or with, the query text"
    )
    collection: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    top_k: int = Field(10, ge=1, le=100)
    mode: SearchMode = "vector"
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="hybrid weight of the vector side; 1 = pure vector")
    fusion: Fusion = "relative_score"
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
        if self.mode in ("bm25", "hybrid") and self.query is None:
            raise ValueError(f"mode {self.mode} needs a query text")
        return self


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


class CollectionSummary(BaseModel):
    name: str
    chunks: int
    documents: int
    version: int = Field(description="the cache version, bumped by every write to the collection")


class CollectionsResponse(BaseModel):
    collections: list[CollectionSummary]
