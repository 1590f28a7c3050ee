"""Fixtures of the gateway's tests: real gateway processes against a real Redis, and API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import pytest
from redis.asyncio import Redis

from ragfleet.devstack.pytest_plugin import RunningService, ServiceStarter
from ragfleet.gateway.keys import KeyStore

GatewayStarter = Callable[..., RunningService]
KeyMaker = Callable[..., Awaitable[str]]


@pytest.fixture
def start_gateway(run_service: ServiceStarter, redis_url: str) -> GatewayStarter:
    """Start a gateway replica (``python -m ragfleet.gateway``) on the test Redis."""

    def start(name: str = "gateway", env: Mapping[str, str] | None = None) -> RunningService:
        settings = {"REDIS_URL": redis_url, "REPLICA_NAME": name, "ACCESS_LOG": "false", **(env or {})}
        return run_service(name, "ragfleet.gateway", "RAGFLEET_GATEWAY_", settings)

    return start


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def make_key(redis: Redis) -> KeyMaker:
    """Create an API key the way the CLI does; returns the key."""

    async def make(
        tenant: str = "acme", collections: Sequence[str] = ("default",), **limits: float | int | None
    ) -> str:
        api_key, _ = await KeyStore(redis).create(tenant, list(collections), **limits)  # type: ignore[arg-type]
        return api_key

    return make
