from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings, TwoTierCacheSettings


class GatewaySettings(ServiceSettings, TwoTierCacheSettings):
    """Settings of the gateway; every variable is ``RAGFLEET_GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_GATEWAY_", extra="ignore", frozen=True)

    service_name: str = "gateway"
    port: int = 8000
    # A component the deployment leaves out gets an empty URL: the features that need it answer
    # 503 (component_disabled), everything else serves, readiness included.
    retrieval_url: str | None = Field("http://127.0.0.1:8010", description="empty: no search, no chat")
    llm_proxy_url: str | None = Field("http://127.0.0.1:8020", description="empty: no chat")
    ingestion_url: str | None = Field("http://127.0.0.1:8030", description="empty: no documents or jobs")

    # Keys and limits.
    admin_key: SecretStr | None = Field(
        None,
        min_length=32,
        description="a key (from a Secret) that always authenticates, checked against this setting, "
        "not Redis: an empty or lost key store is never a lockout. Rotate by changing it",
    )
    secret_fields: ClassVar[tuple[str, ...]] = (*ServiceSettings.secret_fields, "admin_key")
    admin_key_tenant: str = Field(
        "default", description="the tenant the admin key acts for (every collection)"
    )
    key_cache_ttl_s: float = Field(
        5.0, ge=0, description="how long a replica trusts a key it looked up; bounds revocation lag"
    )
    rate_limit_per_s: float = Field(20.0, gt=0, description="default sustained requests per second per key")
    rate_limit_burst: int = Field(40, ge=1, description="default burst per key")
    anonymous_rate_limit_per_s: float = Field(
        2.0, gt=0, description="per client address: requests without a key this replica already checked"
    )
    anonymous_rate_limit_burst: int = Field(30, ge=1, description="burst of the per-address limit")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest JSON request body")
    max_upload_bytes: int = Field(26_214_400, ge=1024, description="largest document upload")
    max_concurrent_uploads_per_key: int = Field(
        4, ge=1, description="uploads one API key may have in progress at once, across replicas (429 beyond)"
    )
    upload_slot_stale_s: float = Field(
        600.0,
        gt=0,
        description="an upload slot older than this no longer counts (its replica died mid-upload)",
    )
    max_message_chars: int = Field(16_000, ge=1, description="largest chat message")
    max_ws_message_bytes: int = Field(65_536, ge=1024, description="largest WebSocket frame accepted")
    gzip_min_bytes: int = Field(
        0,
        ge=0,
        description="gzip JSON answers from this size; 0 (default) leaves compression to the ingress "
        "(NGINX in make run): in Python it cost ~0.3 ms per search answer, more than the rest of a cached search",
    )
    edge_gzip_min_bytes: int = Field(
        1400,
        ge=0,
        description="search answers from this size are also kept gzip-compressed (made once per answer) "
        "and sent so to clients that accept it; the ingress passes them through. 0: never",
    )
    cors_origins: list[str] = Field(default_factory=list, description='allowed origins; ["*"] for any')

    # Search answers are also kept in this replica's memory (the edge tier of the search cache,
    # sized and timed by the cache_* settings): a repeated search is answered without the hop to
    # retrieval, and retrieval's version bumps purge it like any L1.
    search_edge_cache: bool = Field(True, description="answer repeated searches from this replica's memory")
    # The edge tier is this replica's L1, and staleness there is bounded by the purge protocol,
    # not by age: a write waits for every replica to confirm its purge (cache_ack_timeout_s), and
    # while invalidations cannot be received entries live cache_degraded_l1_ttl_s. At the shared
    # default of 60 s the tail of a 2,000-question pool kept expiring at the edge: 83 % edge hits
    # and 852 searches/s under the same load that gave 98 % and 1,513 with a smaller pool (session 5).
    cache_l1_ttl_s: float = Field(300.0, gt=0, description="edge tier lifetime (replaced sooner by purges)")

    # Conversation memory.
    memory_window: int = Field(20, ge=1, le=1000, description="messages kept per conversation")
    memory_ttl_s: int = Field(86_400, ge=1, description="conversation expiry, refreshed on use")
    default_system_prompt: str = (
        "You are ragfleet's assistant. Answer from the sources below and cite them as [n]. "
        "If the sources do not contain the answer, say so."
    )

    # Chat.
    chat_model: str = "extractive"
    chat_top_k: int = Field(5, ge=1, le=50)
    # The answer cache of chat (chat_cache.py): a first turn asked before, or a paraphrase that
    # retrieval's semantic cache matched to one (RAGFLEET_RETRIEVAL_SEMANTIC_CACHE_THRESHOLD),
    # gets the cached answer without calling the model; versioned by collection like the search cache.
    chat_cache: bool = Field(True, description="answer a first-turn question asked before from the cache")
    chat_cache_verify_rate: float = Field(
        0.02, ge=0.0, le=1.0, description="share of semantic chat hits re-checked to count false hits"
    )
    llm_timeout_s: float = Field(120.0, gt=0)

    # Resumable streams.
    stream_buffer_ttl_s: int = Field(300, ge=5, description="how long a finished stream can be resumed")
    stream_lease_s: float = Field(
        3.0, gt=0, description="a generating replica silent this long is considered gone"
    )
    stream_max_takeovers: int = Field(
        2, ge=0, description="times another replica may regenerate an answer whose replica died"
    )
    ws_ping_interval_s: float = Field(20.0, gt=0)

    # Stats.
    stats_interval_s: float = Field(2.0, gt=0, description="period of the /v1/stats/ws feed")
    stats_window: int = Field(2048, ge=16, description="latest requests per route kept for percentiles")
    stats_require_key: bool = Field(
        False, description="stats carry no tenant data, so they are open unless this is set"
    )

    # The benchmark API (/v1/admin/benchmarks, admin key only). Off by default: a run loads the
    # machine it runs on for minutes (ragfleet.gateway.benchmarks).
    benchmark_mode: Literal["off", "local", "kubernetes"] = Field(
        "off", description="local: make bench's suite as a child process; kubernetes: the chart's Job"
    )
    benchmark_workdir: Path = Field(Path("."), description="local: the checkout the suite runs in")
    benchmark_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "ragfleet.loadtests.bench"],
        description="local: the suite's command",
    )
    benchmark_args: list[str] = Field(default_factory=list, description='local: e.g. ["--quick"]')
    benchmark_tolerance: float = Field(0.15, gt=0, description="relative tolerance of the verdicts shown")
    benchmark_kubernetes_api: str = "https://kubernetes.default.svc"
    benchmark_namespace: str = Field("", description="kubernetes: empty = this pod's namespace")
    benchmark_job_manifest: Path | None = Field(None, description="kubernetes: the Job as JSON (mounted)")
    benchmark_history_configmap: str = "ragfleet-benchmark-history"

    @field_validator("retrieval_url", "llm_proxy_url", "ingestion_url")
    @classmethod
    def _empty_is_disabled(cls, url: str | None) -> str | None:
        if url is None:
            return None
        return url.strip().rstrip("/") or None
