from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Settings of the gateway; every variable is ``RAGFLEET_GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_GATEWAY_", extra="ignore", frozen=True)

    service_name: str = "gateway"
    port: int = 8000
    retrieval_url: str = "http://127.0.0.1:8010"
    llm_proxy_url: str = "http://127.0.0.1:8020"
    ingestion_url: str = "http://127.0.0.1:8030"
