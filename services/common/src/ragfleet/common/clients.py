"""Pooled clients, created in an app's lifespan and injected: Redis and service-to-service HTTP."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

import aiohttp
import httpx
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ragfleet.common.config import RedisRole, ServiceSettings
from ragfleet.common.context import current_request_id
from ragfleet.common.contracts import SERVICE_TOKEN_HEADER
from ragfleet.common.telemetry import inject_context


class _LostTransportIsConnectionError:
    """uvloop raises ``RuntimeError`` ("the handler is closed") when a command is written to a
    connection the server closed (a Redis restart leaves one in the pool per idle connection);
    redis-py only turns ``OSError`` into its ``ConnectionError``. Turned into one here, it is
    retried on a fresh connection like any lost connection, instead of failing the request."""

    async def send_packed_command(
        self, command: str | bytes | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except RuntimeError as exc:
            raise RedisConnectionError(f"connection lost: {exc}") from exc


class _Connection(_LostTransportIsConnectionError, Connection):
    pass


class _SSLConnection(_LostTransportIsConnectionError, SSLConnection):
    pass


_CONNECTION_CLASSES: dict[Any, Any] = {Connection: _Connection, SSLConnection: _SSLConnection}


def create_redis(settings: ServiceSettings, role: RedisRole, *, url: str | None = None) -> Redis:
    """An asyncio client of the ``state`` or ``cache`` Redis (``url`` instead when given), on a
    bounded pool (hiredis parser when installed), with short timeouts.

    Timeouts are short on purpose and never retried: every caller treats Redis as something that
    may be gone and degrades (serves from L1, skips a memory write, answers 503) rather than
    hanging a request on it. A lost connection is retried twice at once on a fresh one: after a
    Redis restart every pooled connection is stale, and each would otherwise fail one request.
    """
    pool: ConnectionPool = ConnectionPool.from_url(
        url or settings.redis_role_url(role),
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 2, supported_errors=(RedisConnectionError,)),
    )
    pool.connection_class = _CONNECTION_CLASSES.get(pool.connection_class, pool.connection_class)
    return Redis(connection_pool=pool)


def with_trace_context(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """``headers`` plus the caller's trace context and request id: what every outgoing call carries."""
    inject_context(headers)
    request_id = current_request_id()
    if request_id and "x-request-id" not in headers:
        headers["x-request-id"] = request_id
    return headers


def propagate_context(request: httpx.Request) -> None:
    with_trace_context(request.headers)


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


def create_http_session(
    settings: ServiceSettings, *, timeout_s: float | None = None, internal: bool = True
) -> aiohttp.ClientSession:
    """The pooled client of the hottest internal hops (the gateway's searches to retrieval): an
    aiohttp session, as llm-proxy uses for its upstreams, because an httpx request cost ~10x the
    client CPU of an aiohttp one on this machine kind (docs/benchmarks/llm-proxy.md) — with httpx
    a search that missed the gateway's edge tier cost the gateway ~5 ms of CPU, 68 % of it httpx
    (py-spy, session 5). Calls add their trace headers with :func:`with_trace_context`.

    Open it inside the event loop (the app's lifespan); close it there too.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.http_max_connections, keepalive_timeout=30, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=service_headers(settings, internal=internal),
        timeout=aiohttp.ClientTimeout(
            total=timeout_s or settings.http_timeout_s, sock_connect=settings.http_connect_timeout_s
        ),
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
