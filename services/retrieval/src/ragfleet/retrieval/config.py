from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings, TwoTierCacheSettings
from ragfleet.common.embedding_providers import EmbeddingProviderSettings


class RetrievalSettings(ServiceSettings, TwoTierCacheSettings, EmbeddingProviderSettings):
    """Settings of the retrieval service; every variable is ``RAGFLEET_RETRIEVAL_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_RETRIEVAL_", extra="ignore", frozen=True)

    service_name: str = "retrieval"
    port: int = 8010

    backend: Literal["embedded", "weaviate"] = Field(
        "embedded", description="embedded: in-process HNSW + BM25 on local disk; weaviate: a shared server"
    )
    data_dir: Path = Field(Path("data/retrieval"), description="where the embedded backend keeps its files")
    weaviate_url: str | None = Field(None, description="http(s)://host:port of Weaviate (backend=weaviate)")
    weaviate_grpc_port: int = Field(50051, ge=1, le=65535)
    weaviate_api_key: str | None = None

    embed_max_batch: int = Field(32, ge=1, le=256, description="micro-batch size for query embeddings")
    embed_max_wait_ms: float = Field(2.0, ge=0, le=100, description="how long a lone query waits for company")
    embed_threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime threads; default: the cores"
    )
    embedding_model_check: bool = Field(
        True, description="refuse (409) to search a collection with another model's query vectors"
    )
