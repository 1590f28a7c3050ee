"""``/v1/documents``: documents in (accepted by ``intake.py``), and what the index holds of one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ragfleet.ingestion import index, intake
from ragfleet.ingestion.dependencies import CeleryDep, RetrievalDep, SettingsDep, StateRedisDep
from ragfleet.ingestion.routers.params import Collection, Tenant
from ragfleet.ingestion.schemas import JobAccepted

router = APIRouter(tags=["documents"])


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
    arrives (never held whole), each file staged piece by piece."""
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


@router.get("/v1/documents/{document_id}", summary="What the index holds for one document")
async def get_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    return await index.get_document(retrieval, tenant, collection, document_id)


@router.delete("/v1/documents/{document_id}", summary="Delete a document and all its chunks")
async def delete_document(
    retrieval: RetrievalDep, document_id: str, collection: Collection = "default", tenant: Tenant = "default"
) -> dict[str, Any]:
    """Synchronous: when this answers, the chunks are gone from the index and from every cache."""
    return await index.delete_document(retrieval, tenant, collection, document_id)
