"""``/v1/collections``: deleting a whole collection."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ragfleet.common.contracts import NAME_PATTERN
from ragfleet.ingestion import index
from ragfleet.ingestion.dependencies import RetrievalDep
from ragfleet.ingestion.routers.params import Tenant

router = APIRouter(tags=["documents"])

CollectionPath = Annotated[str, Path(pattern=NAME_PATTERN, description="the collection to delete")]


@router.delete("/v1/collections/{collection}", summary="Delete a collection: its chunks, caches and records")
async def delete_collection(
    retrieval: RetrievalDep, collection: CollectionPath, tenant: Tenant = "default"
) -> Any:
    """Synchronous, like a document's delete: when this answers, every chunk is gone from the index
    and every replica's cache; the collection no longer counts towards max_collections_per_tenant."""
    return await index.delete_collection(retrieval, tenant, collection)
