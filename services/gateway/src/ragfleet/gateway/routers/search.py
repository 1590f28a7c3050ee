"""``POST /v1/search``: retrieval's search, for the key's tenant and collections."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response

from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.chat import COLLECTION_PATTERN
from ragfleet.gateway.dependencies import DownstreamDep, StatsDep
from ragfleet.gateway.downstream import until_disconnected
from ragfleet.gateway.limits import SizeLimitedRoute

router = APIRouter(prefix="/v1", tags=["search"], route_class=SizeLimitedRoute)


class SearchRequest(BaseModel):
    query: str | None = Field(None, min_length=1, max_length=4000, description="text to search for")
    vector: list[float] | None = Field(None, description="a 384-dimension query vector instead of text")
    collection: str = Field("default", pattern=COLLECTION_PATTERN)
    top_k: int = Field(10, ge=1, le=100)
    mode: Literal["vector", "bm25", "hybrid"] | None = Field(
        None, description="retrieval's default when absent"
    )
    alpha: float | None = Field(None, ge=0, le=1, description="hybrid weight, 1 = pure vector")
    fusion: Literal["relative_score", "rrf"] | None = None
    filters: dict[str, Any] | None = Field(None, description="metadata filters")

    @model_validator(mode="after")
    def query_or_vector(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("send exactly one of 'query' or 'vector'")
        return self


class SearchHit(BaseModel):
    id: str
    document_id: str
    text: str
    score: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    results: list[SearchHit]
    took_ms: float
    mode: str
    collection: str


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Search a collection (vector, BM25 or hybrid)",
    responses={200: {"headers": {"X-Cache": {"description": "hit-l1, hit-l2 or miss"}}}},
)
async def search(
    body: SearchRequest,
    principal: Authenticated,
    request: Request,
    downstream: DownstreamDep,
    stats: StatsDep,
) -> Response:
    principal.require_collection(body.collection)
    payload = body.model_dump(exclude_none=True)
    answer = await until_disconnected(request, downstream.search(principal, payload))
    cache = answer.headers.get("x-cache")
    stats.count_retrieval_cache(cache)
    # Relayed as bytes: re-encoding retrieval's JSON would cost more than the rest of the hop.
    headers = {"x-cache": cache} if cache else None
    return Response(answer.content, media_type="application/json", headers=headers)
