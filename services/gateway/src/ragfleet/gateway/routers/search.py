"""``POST /v1/search``: retrieval's search, for the key's tenant and collections."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator
from starlette.responses import Response

from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.chat import COLLECTION_PATTERN
from ragfleet.gateway.dependencies import SearchAnswersDep, StatsDep
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
    responses={
        200: {
            "headers": {
                "X-Cache": {
                    "description": "hit-edge (this gateway's memory), hit-l1 or hit-l2 (retrieval's), or miss"
                }
            }
        }
    },
)
async def search(
    body: SearchRequest, principal: Authenticated, answers: SearchAnswersDep, stats: StatsDep
) -> Response:
    principal.require_collection(body.collection)
    content, cache = await answers.search(principal, body.model_dump(exclude_none=True))
    stats.count_search_cache(cache)
    # Relayed as bytes: re-encoding retrieval's JSON would cost more than the rest of the hop.
    return Response(content, media_type="application/json", headers={"x-cache": cache} if cache else None)
