"""``POST /v1/search``: retrieval's search, for the key's tenant and collections."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from ragfleet.common.contracts import PublicSearchRequest
from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.body_limits import SizeLimitedRoute
from ragfleet.gateway.dependencies import SearchAnswersDep, StatsDep

router = APIRouter(prefix="/v1", tags=["search"], route_class=SizeLimitedRoute)


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
    body: PublicSearchRequest, principal: Authenticated, answers: SearchAnswersDep, stats: StatsDep
) -> Response:
    principal.require_collection(body.collection)
    content, cache = await answers.search(principal, body.model_dump(exclude_none=True))
    stats.count_search_cache(cache)
    # Relayed as bytes: re-encoding retrieval's JSON would cost more than the rest of the hop.
    return Response(content, media_type="application/json", headers={"x-cache": cache} if cache else None)
