"""Writes: apply to the index first, then bump the collection's cache version.

That order is what makes "gone by the time the call returns" true: a search that reads the new
version runs after the index changed, and ``bump_version`` returns once every replica has dropped
its L1 for the collection.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ragfleet.common.cache import TwoTierCache
from ragfleet.common.contracts import NAME_PATTERN
from ragfleet.common.errors import BadRequest, NotFound
from ragfleet.common.routing import OrjsonRoute
from ragfleet.retrieval.dependencies import BatcherDep, CacheDep, ModelsDep, StoreDep, TenantDep
from ragfleet.retrieval.internal.schemas import DeleteRequest, DocumentResponse, UpsertRequest, WriteResponse
from ragfleet.retrieval.metrics import CHUNKS_WRITTEN
from ragfleet.retrieval.store import Chunk

router = APIRouter(prefix="/internal/v1/collections", tags=["internal"], route_class=OrjsonRoute)

CollectionPath = Annotated[str, Path(pattern=NAME_PATTERN)]


async def after_write(
    cache: TwoTierCache, tenant: str, collection: str, operation: str, chunks: int
) -> WriteResponse:
    """Count the write and bump the collection's version: every replica's L1 is purged on return."""
    CHUNKS_WRITTEN.labels(operation).inc(chunks)
    bump = await cache.bump_version(tenant, collection)
    return WriteResponse(
        collection=collection,
        written=chunks,
        version=bump.version,
        replicas_purged=bump.acked,
        replicas=bump.replicas,
    )


@router.post("/{collection}/upsert", summary="Insert or replace chunks", response_model=WriteResponse)
async def upsert(
    collection: CollectionPath,
    body: UpsertRequest,
    tenant: TenantDep,
    store: StoreDep,
    cache: CacheDep,
    batcher: BatcherDep,
    models: ModelsDep,
) -> WriteResponse:
    for chunk in body.chunks:
        if chunk.vector is not None and len(chunk.vector) != store.dim:
            raise BadRequest(
                f"chunk {chunk.id!r}: vector has {len(chunk.vector)} dimensions; expected {store.dim}"
            )
    missing = [chunk for chunk in body.chunks if chunk.vector is None]
    own_model = batcher.embedder.model_name
    if missing and body.model is not None and body.model != own_model:
        raise BadRequest(
            f"chunks without vectors would be embedded with {own_model!r}, the others carry "
            f"{body.model!r} vectors: one write holds one model's vectors"
        )
    if models is not None and (body.model is not None or missing):
        await models.record_write(tenant, collection, body.model or own_model)
    embedded = iter(await batcher.embed_many([chunk.text for chunk in missing]) if missing else [])
    chunks = [
        Chunk(
            id=chunk.id,
            document_id=chunk.document_id,
            text=chunk.text,
            vector=chunk.vector if chunk.vector is not None else next(embedded),
            position=chunk.position,
            metadata=chunk.metadata,
        )
        for chunk in body.chunks
    ]
    written = await store.upsert(tenant, collection, chunks)
    return await after_write(cache, tenant, collection, "upsert", written)


@router.post(
    "/{collection}/delete", summary="Delete every chunk of some documents", response_model=WriteResponse
)
async def delete(
    collection: CollectionPath, body: DeleteRequest, tenant: TenantDep, store: StoreDep, cache: CacheDep
) -> WriteResponse:
    removed = await store.delete_documents(tenant, collection, body.document_ids)
    return await after_write(cache, tenant, collection, "delete", removed)


@router.get(
    "/{collection}/documents/{document_id}",
    summary="What the index holds for one document",
    response_model=DocumentResponse,
    responses={404: {"description": "the index holds nothing for this document"}},
)
async def get_document(
    collection: CollectionPath, document_id: str, tenant: TenantDep, store: StoreDep
) -> DocumentResponse:
    info = await store.get_document(tenant, collection, document_id)
    if info is None:
        raise NotFound(
            f"document {document_id!r} is not in collection {collection!r}", code="document_not_found"
        )
    return DocumentResponse(
        document_id=info.document_id,
        chunks=info.chunks,
        content_hash=info.content_hash,
        metadata=info.metadata,
    )
