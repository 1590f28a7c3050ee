from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from ragfleet.common.cache import cache_stats
from ragfleet.common.routing import OrjsonRoute
from ragfleet.retrieval.dependencies import CacheDep, SearchServiceDep, StoreDep, TenantDep
from ragfleet.retrieval.search.schemas import (
    CollectionsResponse,
    CollectionSummary,
    SearchRequest,
    SearchResponse,
)
from ragfleet.retrieval.search.service import answer_headers

router = APIRouter(prefix="/v1", tags=["search"], route_class=OrjsonRoute)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input: wrong vector dimension, bad filter, bad tenant header"},
    404: {"description": "the collection does not exist for this tenant"},
    422: {"description": "the body does not validate (empty query, top_k outside 1-100, ...)"},
}


@router.post(
    "/search",
    summary="Vector, BM25 or hybrid search in one collection",
    response_model=SearchResponse,
    responses={
        200: {
            "headers": {
                "X-Cache": {
                    "description": "hit-l1, hit-l2, hit-semantic (a question close in meaning was answered) or miss",
                    "schema": {"type": "string"},
                },
                "X-Search-Degraded": {
                    "description": "present when the answer is less than was asked: embedder_busy (a "
                    "hybrid search answered BM25-only, the query could not be embedded in time; not cached)",
                    "schema": {"type": "string"},
                },
            }
        },
        **_ERRORS,
    },
)
async def search(body: SearchRequest, tenant: TenantDep, service: SearchServiceDep) -> Response:
    content, tier = await service.search(tenant, body)
    headers = {name.decode(): value.decode() for name, value in answer_headers(tier)}
    return Response(content, media_type="application/json", headers=headers)


@router.get("/collections", summary="The tenant's collections", response_model=CollectionsResponse)
async def collections(tenant: TenantDep, store: StoreDep, cache: CacheDep) -> CollectionsResponse:
    infos = await store.list_collections(tenant)
    return CollectionsResponse(
        collections=[
            CollectionSummary(
                name=info.name,
                chunks=info.chunks,
                documents=info.documents,
                version=await cache.collection_version(tenant, info.name),
            )
            for info in infos
        ]
    )


@router.get("/cache/stats", summary="Cache hit rates per cache (search, embedding) and tier")
async def stats() -> dict[str, Any]:
    """Counts since the service started, over every worker process (from the Prometheus counters)."""
    return {"caches": cache_stats()}
