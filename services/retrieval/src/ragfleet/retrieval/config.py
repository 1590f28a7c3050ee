from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ragfleet.common.cache import CacheConfig
from ragfleet.common.config import ServiceSettings


class RetrievalSettings(ServiceSettings):
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

    cache_l1_max_entries: int = Field(10_000, ge=0, description="per process; 0 disables L1")
    cache_l1_ttl_s: float = Field(60.0, gt=0)
    cache_l2_ttl_s: float = Field(300.0, gt=0)
    cache_compress_min_bytes: int = Field(1024, ge=1, description="L2 values this big are zlib-compressed")
    cache_ack_timeout_s: float = Field(
        2.0, gt=0, description="how long a write waits for every replica to confirm its L1 purge"
    )
    cache_degraded_l1_ttl_s: float = Field(
        2.0, gt=0, description="L1 lifetime while invalidations cannot be received (Redis down)"
    )

    embed_max_batch: int = Field(32, ge=1, le=256, description="micro-batch size for query embeddings")
    embed_max_wait_ms: float = Field(2.0, ge=0, le=100, description="how long a lone query waits for company")
    embed_threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime threads; default: the cores"
    )

    def cache_config(self) -> CacheConfig:
        return CacheConfig(
            l1_max_entries=self.cache_l1_max_entries,
            l1_ttl_s=self.cache_l1_ttl_s,
            l2_ttl_s=self.cache_l2_ttl_s,
            compress_min_bytes=self.cache_compress_min_bytes,
            ack_timeout_s=self.cache_ack_timeout_s,
            degraded_l1_ttl_s=self.cache_degraded_l1_ttl_s,
        )
