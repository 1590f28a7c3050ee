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
from ragfleet.common.errors import BadRequest, NotFound, Unprocessable
from ragfleet.common.routing import OrjsonRoute
from ragfleet.retrieval.collection_settings import CollectionSettings
from ragfleet.retrieval.dependencies import (
    BatcherDep,
    CacheDep,
    CollectionSettingsDep,
    ModelsDep,
    SearchServiceDep,
    SettingsDep,
    StoreDep,
    TenantDep,
)
from ragfleet.retrieval.internal.schemas import (
    CollectionDeleted,
    CollectionSettingsResponse,
    DeleteRequest,
    DocumentResponse,
    UpsertRequest,
    WriteResponse,
)
from ragfleet.retrieval.metrics import CHUNKS_WRITTEN
from ragfleet.retrieval.store import Chunk, CollectionNotFound, VectorStore

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


async def _room_for(store: VectorStore, tenant: str, collection: str, limit: int) -> None:
    """A write that would create a collection past the tenant's limit is refused before any work."""
    if await store.collection_exists(tenant, collection):
        return
    count = len(await store.list_collections(tenant))
    if count >= limit:
        raise Unprocessable(
            f"tenant {tenant!r} has {count} collections; the limit is {limit} (max_collections_per_tenant): "
            f"delete one (DELETE /v1/collections/{{name}}) before writing to a new collection {collection!r}",
            code="too_many_collections",
            details={"limit": "max_collections_per_tenant", "max": limit, "actual": count},
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
    settings: SettingsDep,
) -> WriteResponse:
    await _room_for(store, tenant, collection, settings.max_collections_per_tenant)
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


@router.delete(
    "/{collection}",
    summary="Delete a collection: every chunk, its cache entries and its embedding-model record",
    response_model=CollectionDeleted,
    responses={404: {"description": "the tenant has no such collection"}},
)
async def delete_collection(
    collection: CollectionPath,
    tenant: TenantDep,
    store: StoreDep,
    cache: CacheDep,
    models: ModelsDep,
    collection_settings: CollectionSettingsDep,
) -> CollectionDeleted:
    """The version is bumped, not removed: every replica drops its L1 and no L2 entry of the old
    collection is read again. A counter that restarted at 0 would let a collection created again
    under the same name read the deleted one's L2 entries that have not expired yet."""
    removed = await store.delete_collection(tenant, collection)
    if removed is None:
        raise CollectionNotFound(f"collection {collection!r} does not exist")
    if models is not None:
        await models.forget(tenant, collection)
    await collection_settings.forget(tenant, collection)
    written = await after_write(cache, tenant, collection, "delete", removed)
    return CollectionDeleted(collection=collection, deleted_chunks=removed, version=written.version)


async def _existing(store: VectorStore, tenant: str, collection: str) -> None:
    if not await store.collection_exists(tenant, collection):
        raise CollectionNotFound(f"collection {collection!r} does not exist")


@router.get(
    "/{collection}/settings",
    summary="A collection's search defaults (rerank); null fields follow the service's",
    response_model=CollectionSettingsResponse,
    responses={404: {"description": "the tenant has no such collection"}},
)
async def get_settings(
    collection: CollectionPath,
    tenant: TenantDep,
    store: StoreDep,
    cache: CacheDep,
    collection_settings: CollectionSettingsDep,
) -> CollectionSettingsResponse:
    await _existing(store, tenant, collection)
    version = await cache.collection_version(tenant, collection)
    own = await collection_settings.get(tenant, collection, version)
    return CollectionSettingsResponse(collection=collection, settings=own, version=version)


@router.put(
    "/{collection}/settings",
    summary="Replace a collection's search defaults; searches cached under the old ones are not served again",
    response_model=CollectionSettingsResponse,
    responses={
        400: {"description": "rerank: true, but this deployment has no reranker"},
        404: {"description": "the tenant has no such collection"},
    },
)
async def put_settings(
    collection: CollectionPath,
    body: CollectionSettings,
    tenant: TenantDep,
    store: StoreDep,
    cache: CacheDep,
    search: SearchServiceDep,
    collection_settings: CollectionSettingsDep,
) -> CollectionSettingsResponse:
    await _existing(store, tenant, collection)
    if body.rerank and search.reranker is None:
        raise BadRequest(
            "rerank: true needs a reranker, and this deployment has none (RAGFLEET_RETRIEVAL_RERANK_URL)"
        )
    await collection_settings.put(tenant, collection, body)
    bump = await cache.bump_version(tenant, collection)  # results cached under the old defaults: gone
    return CollectionSettingsResponse(collection=collection, settings=body, version=bump.version)


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
