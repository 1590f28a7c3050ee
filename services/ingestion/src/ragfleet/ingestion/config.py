from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings


class IngestionSettings(ServiceSettings):
    """Settings of the ingestion API and worker; every variable is ``RAGFLEET_INGESTION_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_INGESTION_", extra="ignore", frozen=True)

    service_name: str = "ingestion"
    port: int = 8030
    broker_url: str | None = Field(None, description="Celery broker; redis_url when unset")
    result_backend_url: str | None = Field(None, description="Celery result backend; redis_url when unset")
    worker_concurrency: int = Field(2, ge=1, le=64)
    worker_max_tasks_per_child: int = Field(200, ge=1, description="recycle a worker child after N tasks")
    worker_max_memory_per_child_kb: int = Field(
        1_500_000, ge=10_000, description="recycle a worker child above this resident memory"
    )
    visibility_timeout_s: int = Field(
        3600, ge=60, description="an unacknowledged task is redelivered after this long"
    )
    worker_check_timeout_s: float = Field(10.0, gt=0)

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.result_backend_url or self.redis_url
