from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragfleet.devstack.processes import free_port


class DevstackSettings(BaseSettings):
    """Ports and paths of the one-machine stack; every variable is ``RAGFLEET_DEV_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_DEV_", extra="ignore", frozen=True)

    run_dir: Path = Field(Path(".run"), description="logs, pid files, Redis and index data")
    nginx_port: int = Field(8080, ge=1, le=65535)
    gateway_ports: tuple[int, ...] = Field((8001, 8002), min_length=1)
    retrieval_port: int = Field(8010, ge=1, le=65535)
    llm_proxy_port: int = Field(8020, ge=1, le=65535)
    ingestion_port: int = Field(8030, ge=1, le=65535)
    redis_port: int = Field(6390, ge=1, le=65535, description="the state Redis (keys, Celery, jobs)")
    cache_redis_port: int = Field(
        6391, ge=1, le=65535, description="the cache Redis (L2, rate limits, streams)"
    )
    cache_redis_maxmemory: str = Field("256mb", description="the cache Redis evicts (allkeys-lru) above this")
    state_redis_appendfsync: Literal["always", "everysec"] = Field(
        "always",
        description="when the state Redis fsyncs its append-only file (processes.redis_conf says why)",
    )
    retrieval_workers: int = Field(
        2,
        ge=1,
        le=16,
        description="retrieval's uvicorn workers, one onnxruntime thread each: one Python process "
        "cannot keep two cores busy with index searches and the HTTP around them (0.41 of the "
        "store's in-process rate with one)",
    )
    nginx: bool = Field(True, description="front the gateways with NGINX (off: serve one gateway directly)")
    worker: bool = Field(True, description="start a Celery worker")
    worker_metrics_port: int = Field(
        9031, ge=0, le=65535, description="the Celery worker's Prometheus endpoint; 0 turns it off"
    )
    supervise: tuple[str, ...] = Field(
        ("ingestion-worker",),
        description="processes restarted with a back-off when they exit, as kubelet restarts a "
        "container (supervisor.py); the others end the stack when they exit",
    )
    service_token: str = Field(
        "",
        description="the services' shared token for internal calls; empty (development) turns the check off",
    )
    load_sample_corpus: bool = Field(True, description="make run: upload the sample corpus after start")
    sample_corpus_dir: Path = Path("services/ingestion/sample-corpus")
    startup_timeout_s: float = Field(120.0, gt=0)
    log_level: str = "INFO"

    @classmethod
    def on_free_ports(cls, run_dir: Path, **overrides: Any) -> DevstackSettings:
        """A stack for tests and benchmarks: every port free, no sample corpus, beside any `make run`."""
        ports = {
            "nginx_port": free_port(),
            "gateway_ports": (free_port(), free_port()),
            "retrieval_port": free_port(),
            "llm_proxy_port": free_port(),
            "ingestion_port": free_port(),
            "redis_port": free_port(),
            "cache_redis_port": free_port(),
            "worker_metrics_port": free_port(),
        }
        # One retrieval process in tests: it starts faster and holds one index and one model, on
        # machines where the whole suite shares two cores.
        defaults = {"load_sample_corpus": False, "retrieval_workers": 1}
        return cls(run_dir=run_dir, **{**ports, **defaults, **overrides})
