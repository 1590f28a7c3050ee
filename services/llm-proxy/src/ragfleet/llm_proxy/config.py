from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings


class LlmProxySettings(ServiceSettings):
    """Settings of the llm-proxy; every variable is ``RAGFLEET_LLM_PROXY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_LLM_PROXY_", extra="ignore", frozen=True)

    service_name: str = "llm-proxy"
    port: int = 8020
