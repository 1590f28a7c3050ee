"""Documents, jobs and collections: passed to ingestion and retrieval for the key's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from ragfleet.common.contracts import NAME_PATTERN
from ragfleet.common.errors import NotFound
from ragfleet.common.responses import OrjsonResponse
from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.body_limits import SizeLimitedRoute
from ragfleet.gateway.dependencies import DownstreamDep, UploadSlotsDep
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.keys import Principal

router = APIRouter(prefix="/v1", tags=["documents"], route_class=SizeLimitedRoute)

CollectionQuery = Query("default", pattern=NAME_PATTERN, description="the collection")
# Ids are put into ingestion's URLs, so they are held to the alphabet ingestion gives ids (its
# DOCUMENT_ID_PATTERN): no '/', '%', '..', '?', '#' or NUL can reach another route downstream.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
DocumentId = Annotated[str, Path(pattern=ID_PATTERN, description="the document's id")]
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="the job's id")]


async def to_ingestion(
    downstream: Downstream,
    principal: Principal,
    method: str,
    path: str,
    collection: str,
    *,
    content: bytes | AsyncIterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Relay one call to ingestion for a collection the key may use."""
    principal.require_collection(collection)
    return await downstream.forward(
        "ingestion",
        principal,
        method,
        f"{downstream.base('ingestion', downstream.ingestion)}{path}",
        params={"collection": collection},
        content=content,
        headers=headers,
    )


@router.post(
    "/documents",
    status_code=202,
    summary="Upload a document (JSON or multipart); answers 202 with a job id",
)
async def upload_document(
    request: Request,
    principal: Authenticated,
    downstream: DownstreamDep,
    slots: UploadSlotsDep,
    collection: str = CollectionQuery,
) -> Response:
    """The body streams through to ingestion as it arrives (never held whole here); the route's
    size limit counts it on the way and refuses it with a 413 once it passes max_upload_bytes.
    The collection is the query parameter's alone (ingestion refuses any other field)."""
    principal.require_collection(collection)
    content_type = request.headers.get("content-type", "application/json")
    headers = {"content-type": content_type}
    if declared := request.headers.get("content-length"):
        headers["content-length"] = declared  # checked against the limit by SizeLimitedRoute
    async with slots.hold(principal.key_id):
        return await to_ingestion(
            downstream,
            principal,
            "POST",
            "/v1/documents",
            collection,
            content=request.stream(),
            headers=headers,
        )


@router.get("/jobs/{job_id}", summary="An ingestion job's status")
async def get_job(
    job_id: JobId, principal: Authenticated, downstream: DownstreamDep, collection: str = CollectionQuery
) -> Response:
    answer = await to_ingestion(downstream, principal, "GET", f"/v1/jobs/{job_id}", collection)
    # Ingestion scopes jobs to the tenant; the job's own collection decides whether this key may
    # read it (not the query parameter, which any caller can set). Refused like a missing job.
    if answer.status_code == 200:
        job = orjson.loads(answer.body)
        if not principal.may_use(str(job.get("collection", ""))):
            raise NotFound(f"job {job_id!r} not found", code="job_not_found")
    return answer


@router.get("/documents/{document_id}", summary="A document's ingestion record")
async def get_document(
    document_id: DocumentId,
    principal: Authenticated,
    downstream: DownstreamDep,
    collection: str = CollectionQuery,
) -> Response:
    return await to_ingestion(downstream, principal, "GET", f"/v1/documents/{document_id}", collection)


@router.delete("/documents/{document_id}", summary="Delete a document and its chunks")
async def delete_document(
    document_id: DocumentId,
    principal: Authenticated,
    downstream: DownstreamDep,
    collection: str = CollectionQuery,
) -> Response:
    return await to_ingestion(downstream, principal, "DELETE", f"/v1/documents/{document_id}", collection)


@router.delete(
    "/collections/{collection}", summary="Delete a collection: every chunk, its caches and its records"
)
async def delete_collection(
    collection: Annotated[str, Path(pattern=NAME_PATTERN, description="the collection")],
    principal: Authenticated,
    downstream: DownstreamDep,
) -> Response:
    principal.require_collection(collection)
    return await downstream.forward(
        "ingestion", principal, "DELETE", f"{downstream.ingestion}/v1/collections/{collection}"
    )


CollectionPath = Annotated[str, Path(pattern=NAME_PATTERN, description="the collection")]


@router.get("/collections/{collection}/settings", summary="A collection's search defaults (rerank)")
async def get_collection_settings(
    collection: CollectionPath, principal: Authenticated, downstream: DownstreamDep
) -> Response:
    principal.require_collection(collection)
    url = (
        f"{downstream.base('retrieval', downstream.retrieval)}/internal/v1/collections/{collection}/settings"
    )
    return await downstream.forward("retrieval", principal, "GET", url)


@router.put(
    "/collections/{collection}/settings",
    summary='Replace a collection\'s search defaults: {"rerank": true|false|null, "rerank_depth": 2-100|null}',
)
async def put_collection_settings(
    collection: CollectionPath, request: Request, principal: Authenticated, downstream: DownstreamDep
) -> Response:
    principal.require_collection(collection)
    url = (
        f"{downstream.base('retrieval', downstream.retrieval)}/internal/v1/collections/{collection}/settings"
    )
    content = await request.body()  # retrieval validates it (CollectionSettings) and answers 422 itself
    return await downstream.forward(
        "retrieval", principal, "PUT", url, content=content, headers={"content-type": "application/json"}
    )


@router.get("/collections", summary="The collections this key may use, with their sizes")
async def list_collections(principal: Authenticated, downstream: DownstreamDep) -> OrjsonResponse:
    collections = await downstream.collections(principal)
    return OrjsonResponse({"collections": [c for c in collections if principal.may_use(c.get("name", ""))]})
