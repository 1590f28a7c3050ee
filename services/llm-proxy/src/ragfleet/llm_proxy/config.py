from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, model_validator
from pydantic_settings import SettingsConfigDict

from ragfleet.common.config import ServiceSettings

EXTRACTIVE_MODEL = "extractive"
BUILTIN_EMBEDDING_MODEL = "all-minilm-l6-v2"


class ModelDeployment(BaseModel):
    """One upstream serving a model name. Several deployments may share a name: traffic is split by weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="the model name clients ask for")
    provider: Literal["openai-compatible", "extractive"] = "openai-compatible"
    upstream_model: str | None = Field(None, description="model name sent upstream; defaults to `name`")
    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1 or http://vllm:8000/v1")
    api_key: SecretStr | None = Field(None, description="inline key (from a Secret-backed env value)")
    api_key_file: Path | None = Field(None, description="file holding the key (a mounted Secret)")
    connect_timeout_s: float = Field(3.0, gt=0)
    first_token_timeout_s: float = Field(30.0, gt=0, description="streams: time until the first chunk")
    total_timeout_s: float = Field(120.0, gt=0)
    max_tokens: int | None = Field(
        None, ge=1, description="cap on completion tokens (requests are clamped); default max_tokens_cap"
    )
    weight: float = Field(1.0, gt=0, description="share of traffic among deployments of the same name")
    fallbacks: tuple[str, ...] = Field((), description="model names tried in order when this one fails")
    upstream_id: str | None = Field(None, description="circuit-breaker identity; default name@host")

    @model_validator(mode="after")
    def _needs_base_url(self) -> ModelDeployment:
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError(f"model {self.name!r}: an openai-compatible provider needs base_url")
        return self

    def read_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip()
        return None


_DEPLOYMENTS = TypeAdapter(list[ModelDeployment])


class KeyLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int = Field(0, ge=0, description="requests per minute; 0 = unlimited")
    tpm: int = Field(0, ge=0, description="prompt + completion tokens per minute; 0 = unlimited")


class LlmProxySettings(ServiceSettings):
    """Settings of the llm-proxy; every variable is ``RAGFLEET_LLM_PROXY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_LLM_PROXY_", extra="ignore", frozen=True)

    service_name: str = "llm-proxy"
    port: int = 8020

    models: list[ModelDeployment] = Field(
        default_factory=list, description="JSON list of model deployments (see README)"
    )
    models_file: Path | None = Field(None, description="JSON or YAML file with more model deployments")

    retry_max_attempts: int = Field(3, ge=1, le=10, description="attempts per upstream, the first included")
    retry_base_delay_s: float = Field(0.25, gt=0)
    retry_max_delay_s: float = Field(8.0, gt=0, description="cap of one backoff (Retry-After may exceed it)")
    retry_budget_s: float = Field(20.0, gt=0, description="no retry starts after this long into a request")

    breaker_failure_threshold: int = Field(5, ge=1, description="failures within the window that open it")
    breaker_window_s: float = Field(30.0, gt=0)
    breaker_open_s: float = Field(15.0, gt=0, description="time open before a half-open probe")
    breaker_probe_timeout_s: float = Field(30.0, gt=0, description="a probe not reported by then is lost")
    breaker_sync_interval_s: float = Field(
        0.5, ge=0, description="reuse a breaker state read from Redis this long (0: read on every call)"
    )

    cache_enabled: bool = True
    cache_ttl_s: int = Field(3600, ge=1)
    cache_l1_max_entries: int = Field(1000, ge=0)
    cache_l1_ttl_s: float = Field(30.0, ge=0)
    cache_max_entry_bytes: int = Field(1_000_000, ge=1, description="larger responses are not cached")

    # Cost bounds that hold without any configuration (each deployment or key may say otherwise).
    max_tokens_cap: int = Field(
        4096, ge=1, description="completion tokens a request may ask of a model that sets no max_tokens"
    )
    max_concurrent_per_key: int = Field(
        8,
        ge=0,
        description="generations (chat and embeddings) one key runs at once per process; 0 = unlimited",
    )

    rate_limit_rpm: int = Field(0, ge=0, description="default requests/minute per key; 0 = unlimited")
    rate_limit_tpm: int = Field(0, ge=0, description="default tokens/minute per key; 0 = unlimited")
    key_limits: dict[str, KeyLimits] = Field(default_factory=dict, description="per-key overrides")
    usage_retention_days: int = Field(35, ge=1, description="how long daily usage counters are kept")
    usage_flush_interval_s: float = Field(1.0, gt=0, description="token usage is written to Redis this often")
    upstream_max_response_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="largest upstream answer held whole (JSON, errors); 64 MiB holds 2,048 embeddings "
        "of 1,536 floats as JSON (~63 MB). Streams are bounded by unread bytes and line length instead",
    )
    max_loop_lag_s: float = Field(
        0.5, ge=0, description="new requests get 503 overloaded while the event loop lags more (0: never)"
    )

    embeddings_builtin: bool = Field(True, description=f"serve {BUILTIN_EMBEDDING_MODEL} in-process")

    def limits_for(self, key: str) -> KeyLimits:
        return self.key_limits.get(key) or KeyLimits(rpm=self.rate_limit_rpm, tpm=self.rate_limit_tpm)

    @functools.cached_property
    def deployments(self) -> tuple[ModelDeployment, ...]:
        """Every deployment: the configured ones, the file's, and the built-in ``extractive``."""
        found = list(self.models)
        if self.models_file is not None:
            text = self.models_file.read_text()
            raw = yaml.safe_load(text) if self.models_file.suffix in (".yaml", ".yml") else json.loads(text)
            if isinstance(raw, dict):
                raw = raw.get("models", [])
            found.extend(_DEPLOYMENTS.validate_python(raw))
        if not any(d.name == EXTRACTIVE_MODEL for d in found):
            found.append(ModelDeployment(name=EXTRACTIVE_MODEL, provider="extractive"))
        # Every deployment has a cap: requests asking more (or nothing) are clamped to it upstream.
        found = [
            d if d.max_tokens else d.model_copy(update={"max_tokens": self.max_tokens_cap}) for d in found
        ]
        names = {d.name for d in found}
        for deployment in found:
            missing = [f for f in deployment.fallbacks if f not in names]
            if missing:
                raise ValueError(f"model {deployment.name!r}: unknown fallback models {missing}")
        return tuple(found)
