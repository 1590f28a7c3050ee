from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings, TwoTierCacheSettings
from ragfleet.common.embedding_providers import EmbeddingProviderSettings
from ragfleet.common.semantic_cache import DEFAULT_THRESHOLD


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
    max_collections_per_tenant: int = Field(
        100,
        ge=1,
        description="an upsert that would create one more is refused (422 too_many_collections): each "
        "costs memory and files even when small; DELETE a collection to make room",
    )
    weaviate_api_key: str | None = None

    embed_max_batch: int = Field(32, ge=1, le=256, description="micro-batch size for query embeddings")
    embed_max_queue: int = Field(
        256, ge=1, description="query texts waiting for the embedder; past it: 503 + Retry-After at once"
    )
    embed_max_queue_ms: float = Field(
        500.0,
        ge=0,
        description="refuse (503 + Retry-After) a query whose expected wait for the embedder is longer; 0: no time bound",
    )
    # 100 ms: the search-tail load test's p99 was 420 ms with it, 460-540 ms with 200 (a miss that
    # does get embedded waits up to this long, and those misses are the tail; session8-perf.md §4).
    embed_degrade_after_ms: float = Field(
        100.0,
        ge=0,
        description="a hybrid search whose query is not embedded within this is answered BM25-only "
        "(marked degraded, cached nowhere) instead of waiting or being refused; 0: refused like a vector search",
    )
    embed_max_wait_ms: float = Field(2.0, ge=0, le=100, description="how long a lone query waits for company")
    embed_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="niceness added to the embedder's threads (Linux): the event loops serving hits, vector "
        "and degraded searches come first when the cores are short; 0: the same priority",
    )
    embed_threads: int | None = Field(
        None, ge=1, le=64, description="onnxruntime threads; default: the cores"
    )
    semantic_cache_threshold: float = Field(
        DEFAULT_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="cosine at which a question reuses the answer of a cached one (0 turns the semantic cache off)",
    )
    semantic_cache_max_entries: int = Field(1000, ge=1, le=100_000, description="questions kept per scope")
    semantic_cache_verify_rate: float = Field(
        0.02, ge=0.0, le=1.0, description="share of semantic hits re-checked to count false hits"
    )
    rerank_url: str | None = Field(
        None, description="a rerank server's API root (TEI, Jina, Cohere, vLLM); unset: no rerank"
    )
    rerank_api: Literal["cohere", "tei"] = Field(
        "cohere", description="cohere: Cohere/Jina/vLLM shape; tei: TEI's"
    )
    rerank_model: str | None = Field(None, description="sent as the request's model (cohere shape)")
    rerank_api_key: SecretStr | None = None
    rerank_timeout_s: float = Field(10.0, gt=0, le=120)
    rerank_by_default: bool = Field(False, description="rerank requests that do not say (rerank: null)")
    embedding_model_check: bool = Field(
        True, description="refuse (409) to search a collection with another model's query vectors"
    )
