"""Pooled clients, created in an app's lifespan and injected: Redis and service-to-service HTTP."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

from ragfleet.common.config import RedisRole, ServiceSettings
from ragfleet.common.context import current_request_id
from ragfleet.common.contracts import SERVICE_TOKEN_HEADER
from ragfleet.common.telemetry import inject_context


def create_redis(settings: ServiceSettings, role: RedisRole, *, url: str | None = None) -> Redis:
    """An asyncio client of the ``state`` or ``cache`` Redis (``url`` instead when given), on a
    bounded pool (hiredis parser when installed), with short timeouts.

    Timeouts are short on purpose: every caller treats Redis as something that may be gone and
    degrades (serves from L1, skips a memory write, answers 503) rather than hanging a request on it.
    """
    pool: ConnectionPool = ConnectionPool.from_url(
        url or settings.redis_role_url(role),
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    return Redis(connection_pool=pool)


def propagate_context(request: httpx.Request) -> None:
    """Every outgoing call carries the caller's trace context and request id."""
    inject_context(request.headers)
    request_id = current_request_id()
    if request_id and "x-request-id" not in request.headers:
        request.headers["x-request-id"] = request_id


async def _propagate(request: httpx.Request) -> None:
    # httpx's AsyncClient awaits its event hooks.
    propagate_context(request)


def service_headers(settings: ServiceSettings, *, internal: bool) -> dict[str, str]:
    """What proves a call comes from a ragfleet service: the shared token, on internal calls only."""
    token = settings.service_token.get_secret_value()
    return {SERVICE_TOKEN_HEADER: token} if internal and token else {}


def create_http_client(
    settings: ServiceSettings, *, base_url: str = "", timeout_s: float | None = None, internal: bool = True
) -> httpx.AsyncClient:
    """A pooled async HTTP client for calls between services: connection reuse, timeouts, tracing.

    ``internal`` clients carry the service token on every call; a client for the outside world
    (llm-proxy's upstreams) passes ``internal=False`` so the token never leaves the platform.
    """
    return httpx.AsyncClient(
        base_url=base_url,
        headers=service_headers(settings, internal=internal),
        timeout=httpx.Timeout(timeout_s or settings.http_timeout_s, connect=settings.http_connect_timeout_s),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections,
            keepalive_expiry=30,
        ),
        event_hooks={"request": [_propagate]},
    )


def create_sync_http_client(
    settings: ServiceSettings, *, base_url: str = "", timeout_s: float | None = None, internal: bool = True
) -> httpx.Client:
    """The blocking twin of :func:`create_http_client`, for Celery tasks (which are synchronous)."""
    return httpx.Client(
        base_url=base_url,
        headers=service_headers(settings, internal=internal),
        timeout=httpx.Timeout(timeout_s or settings.http_timeout_s, connect=settings.http_connect_timeout_s),
        event_hooks={"request": [propagate_context]},
    )
