from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings


class RetrievalSettings(ServiceSettings):
    """Settings of the retrieval service; every variable is ``RAGFLEET_RETRIEVAL_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_RETRIEVAL_", extra="ignore", frozen=True)

    service_name: str = "retrieval"
    port: int = 8010
