"""``/v1/documents`` and ``/v1/jobs``: the routes; accepting documents is ``intake.py``'s job."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Header, Path, Query, Request

from ragfleet.common.contracts import NAME_PATTERN, TENANT_HEADER, downstream_error
from ragfleet.common.errors import BadRequest, NotFound, ServiceUnavailable
from ragfleet.ingestion import intake, jobs
from ragfleet.ingestion.dependencies import CeleryDep, RetrievalDep, SettingsDep, StateRedisDep
from ragfleet.ingestion.schemas import JobAccepted

router = APIRouter(tags=["documents"])

Collection = Annotated[str, Query(pattern=NAME_PATTERN, description="the collection to write to")]
Tenant = Annotated[
    str, Header(alias=TENANT_HEADER, pattern=NAME_PATTERN, description="set by the gateway from the API key")
]


@router.post("/v1/documents", status_code=202, response_model=JobAccepted, summary="Ingest documents")
async def post_documents(
    request: Request,
    settings: SettingsDep,
    redis: StateRedisDep,
    celery: CeleryDep,
    collection: Collection = "default",
    tenant: Tenant = "default",
) -> JobAccepted:
    """JSON (`{"documents": [{id?, text, format, metadata}]}`) or multipart (`files`, optional
    `metadata` JSON for all of them). Answers 202 with a job to poll. The body is read as it
    arrives, each file staged piece by piece (see uploads.py)."""
    return await intake.accept_documents(
        settings=settings,
        redis=redis,
        celery=celery,
        tenant=tenant,
        collection=collection,
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        body=request.stream(),
    )


@router.get("/v1/jobs/{job_id}", summary="A job's state, with each document's progress and errors")
async def get_job(
    job_id: str, settings: SettingsDep, redis: StateRedisDep, tenant: Tenant = "default"
) -> dict[str, Any]:
    return await jobs.read_job(redis, job_id, tenant, kept_s=settings.job_ttl_s)


def _retrieval_path(collection: str, suffix: str) -> str:
    return f"/internal/v1/collections/{collection}/{suffix}"


async def _retrieval_call(
    retrieval: httpx.AsyncClient, method: str, path: str, tenant: str, json: Any = None
) -> Any:
    try:
        response = await retrieval.request(method, path, json=json, headers={TENANT_HEADER: tenant})
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"retrieval is unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise ServiceUnavailable(f"retrieval answered {response.status_code}")
    return response


def _refused(response: Any) -> Exception:
    """Retrieval's 4xx, relayed with its own status and code (not flattened into a 400)."""
    return downstream_error("retrieval", response.status_code, response.content) or BadRequest(
        "retrieval refused the request"
    )


@router.get("/v1/documents/{document_id}", summary="What the index holds for one document")
async def get_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    response = await _retrieval_call(
        retrieval, "GET", _retrieval_path(collection, f"documents/{document_id}"), tenant
    )
    if response.status_code == 404:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    if response.status_code != 200:
        raise _refused(response)
    return {**response.json(), "collection": collection}


@router.delete("/v1/documents/{document_id}", summary="Delete a document and all its chunks")
async def delete_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    """Synchronous: when this answers, the chunks are gone from the index and from every cache."""
    response = await _retrieval_call(
        retrieval, "POST", _retrieval_path(collection, "delete"), tenant, {"document_ids": [document_id]}
    )
    if response.status_code != 200:
        raise _refused(response)
    deleted = int(response.json()["written"])
    if deleted == 0:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    return {"document_id": document_id, "collection": collection, "deleted_chunks": deleted}


CollectionPath = Annotated[str, Path(pattern=NAME_PATTERN, description="the collection to delete")]


@router.delete("/v1/collections/{collection}", summary="Delete a collection: its chunks, caches and records")
async def delete_collection(
    retrieval: RetrievalDep, collection: CollectionPath, tenant: Tenant = "default"
) -> Any:
    """Synchronous, like a document's delete: when this answers, every chunk is gone from the index
    and every replica's cache; the collection no longer counts towards max_collections_per_tenant."""
    response = await _retrieval_call(retrieval, "DELETE", f"/internal/v1/collections/{collection}", tenant)
    if response.status_code == 404:
        raise NotFound(f"collection {collection!r} does not exist", code="collection_not_found")
    if response.status_code != 200:
        raise _refused(response)
    return response.json()
