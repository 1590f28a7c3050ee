"""Settings base: one pydantic-settings class per service, each with its own env prefix.

Settings are read and validated once, at start; nothing else in ragfleet reads ``os.environ``.
"""

from __future__ import annotations

import socket
from typing import ClassVar, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragfleet.common.cache import CacheConfig

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})


RedisRole = Literal["state", "cache"]


def with_credentials(url: str, password: str | None, username: str | None = None) -> str:
    """``url`` with this password (and ACL user) in it, replacing any it had; unchanged when None."""
    if password is None and username is None:
        return url
    parts = urlsplit(url)
    # urlsplit leaves the URL's own user and password percent-encoded.
    user = username if username is not None else unquote(parts.username or "")
    secret = password if password is not None else (unquote(parts.password) if parts.password else None)
    auth = quote(user or "", safe="")
    if secret is not None:
        auth += ":" + quote(secret, safe="")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{auth}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses set ``model_config`` with their own ``env_prefix``."""

    model_config = SettingsConfigDict(env_prefix="RAGFLEET_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    worker_healthcheck_timeout_s: int = Field(
        60, ge=1, description="with several workers: time a worker gets to start and to answer a ping"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    replica_name: str = Field(default_factory=socket.gethostname, description="shown in X-Ragfleet-Replica")

    # Two Redis roles (docs/state.md). The *state* Redis holds what must survive (API keys, the
    # Celery broker and results, job records, staged uploads, collection versions): persistence on,
    # no eviction. The *cache* Redis holds what may be dropped and rebuilt (L2 entries, rate-limit
    # buckets, stream buffers, invalidation pub/sub, breaker state, conversation windows). Both
    # fall back to ``redis_url``: one server serves both in small installs and in tests.
    redis_url: str = "redis://127.0.0.1:6379/0"
    state_redis_url: str | None = Field(None, description="the state Redis; redis_url when unset")
    cache_redis_url: str | None = Field(None, description="the cache Redis; redis_url when unset")
    state_redis_password: SecretStr | None = Field(
        None, description="overrides a password in the state URL (from a Secret)"
    )
    cache_redis_password: SecretStr | None = Field(
        None, description="overrides a password in the cache URL (from a Secret)"
    )
    state_redis_username: str | None = Field(None, description="ACL user of the state Redis")
    cache_redis_username: str | None = Field(None, description="ACL user of the cache Redis")
    redis_socket_timeout_s: float = Field(1.0, gt=0)
    redis_connect_timeout_s: float = Field(1.0, gt=0)
    redis_max_connections: int = Field(200, ge=1)

    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="proxies whose X-Forwarded-For names the client (comma-separated IPs or CIDRs, "
        "'*' for any): the ingress controller's pod network in a cluster; anyone else's is ignored",
    )

    http_connect_timeout_s: float = Field(2.0, gt=0)
    http_timeout_s: float = Field(30.0, gt=0)
    http_max_connections: int = Field(200, ge=1)

    access_log: bool = Field(True, description="one JSON line per request (health probes excluded)")
    # Prometheus on a port of its own, so that the public port (and an Ingress routing `/`) never
    # serves it: the main port then answers /metrics with 404. 0 keeps it on the main port (dev, tests).
    metrics_port: int = Field(0, ge=0, le=65535, description="port of /metrics; 0 = the main port")
    docs_enabled: bool = Field(True, description="serve /docs and /openapi.json")
    graceful_shutdown_s: float = Field(30.0, ge=0, description="time in-flight requests get to finish")
    metrics_dir: str | None = Field(
        None, description="prometheus multiprocess dir; a fresh temporary one when unset"
    )
    # The OpenTelemetry standard variable, read here so that settings stay the one reader of the env.
    otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "RAGFLEET_OTLP_ENDPOINT")
    )

    # Shared by every ragfleet service, from a Secret: sent on every internal call, required by
    # every internal endpoint (ragfleet.common.service_auth). Empty: development only.
    service_token: SecretStr = Field(
        SecretStr(""), description="the shared service token (X-Ragfleet-Service-Token)"
    )

    service_name: str = "ragfleet"

    # The settings that hold secrets; subclasses add theirs. Each is refused outside development
    # (test and production alike: a staging cluster holds real data too) while it is empty or a
    # placeholder (None means "not used": an optional one), and so is a Redis without a password,
    # so a forgotten default never ships.
    secret_fields: ClassVar[tuple[str, ...]] = ("service_token",)

    def redis_role_url(self, role: RedisRole) -> str:
        """The URL of the ``state`` or ``cache`` Redis, credentials included.

        One URL carries everything, because Celery (kombu) takes nothing but a URL; never log it.
        """
        if role == "state":
            url, password, username = (
                self.state_redis_url,
                self.state_redis_password,
                self.state_redis_username,
            )
        else:
            url, password, username = (
                self.cache_redis_url,
                self.cache_redis_password,
                self.cache_redis_username,
            )
        return with_credentials(
            url or self.redis_url, password.get_secret_value() if password else None, username
        )

    @property
    def state_redis(self) -> str:
        return self.redis_role_url("state")

    @property
    def cache_redis(self) -> str:
        return self.redis_role_url("cache")

    def env_name(self, field: str) -> str:
        """The environment variable a setting is read from (what an operator must set)."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def require_secret(self, name: str, value: str) -> str:
        """Refuse an empty or placeholder secret outside development, so a forgotten default never
        ships; ``name`` says which setting (and its variable) to set."""
        if self.environment != "development" and value.strip().lower() in PLACEHOLDER_SECRETS:
            state = "is not set" if not value.strip() else "is a placeholder"
            raise ValueError(
                f"{name} {state}: it must be a real secret when environment={self.environment} "
                "(only environment=development runs without one)"
            )
        return value

    @model_validator(mode="after")
    def _secrets_are_real(self) -> ServiceSettings:
        for name in self.secret_fields:
            value = getattr(self, name)
            if value is not None:
                self.require_secret(
                    f"{name} ({self.env_name(name)})",
                    value.get_secret_value() if isinstance(value, SecretStr) else str(value),
                )
        for role in ("state", "cache"):
            password = unquote(urlsplit(self.redis_role_url(role)).password or "")
            self.require_secret(
                f"the {role} Redis password ({self.env_name(f'{role}_redis_password')}, "
                f"or in {self.env_name(f'{role}_redis_url')})",
                password,
            )
        return self


class TwoTierCacheSettings(BaseSettings):
    """The two-tier cache's knobs, for the services that run one (mix into their settings class)."""

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

    def cache_config(self) -> CacheConfig:
        return CacheConfig(
            l1_max_entries=self.cache_l1_max_entries,
            l1_ttl_s=self.cache_l1_ttl_s,
            l2_ttl_s=self.cache_l2_ttl_s,
            compress_min_bytes=self.cache_compress_min_bytes,
            ack_timeout_s=self.cache_ack_timeout_s,
            degraded_l1_ttl_s=self.cache_degraded_l1_ttl_s,
        )
