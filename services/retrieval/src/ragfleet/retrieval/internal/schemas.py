"""Bodies of the internal API that the ingestion worker calls."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ragfleet.retrieval.collection_settings import CollectionSettings


class ChunkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    document_id: str = Field(min_length=1, max_length=512)
    text: str = Field(min_length=1)
    position: int = Field(0, ge=0)
    metadata: dict[str, Any] = Field(default_factory=dict)
    vector: list[float] | None = Field(None, description="384 floats; embedded by retrieval when absent")


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: list[ChunkIn] = Field(min_length=1, max_length=2048)
    model: str | None = Field(
        None,
        max_length=200,
        description="the embedding model of the chunks' vectors; the collection records it and "
        "refuses vectors of another model (409). Chunks without vectors are embedded by retrieval's model",
    )


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(min_length=1, max_length=10_000)


class WriteResponse(BaseModel):
    collection: str
    written: int = Field(description="chunks upserted, or chunks deleted")
    version: int | None = Field(description="the collection's new cache version (null: Redis was down)")
    replicas_purged: int = Field(description="replicas that confirmed dropping their L1 before this answer")
    replicas: int = Field(description="replicas listening for invalidations when the write was published")


class DocumentResponse(BaseModel):
    document_id: str
    chunks: int
    content_hash: str | None
    metadata: dict[str, Any]


class CollectionDeleted(BaseModel):
    collection: str
    deleted_chunks: int
    version: int | None = Field(
        description="the collection's cache version after the delete (null: Redis was down)"
    )


class CollectionSettingsResponse(BaseModel):
    collection: str
    settings: CollectionSettings
    version: int | None = Field(
        description="the collection's cache version after the change (null: Redis down)"
    )
