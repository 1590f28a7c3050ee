"""A pooled Redis client after the server restarted, on uvloop (what uvicorn runs the services on):
stale pooled connections reconnect, they never surface uvloop's RuntimeError as a 500."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from ragfleet.common.clients import create_redis
from ragfleet.common.config import ServiceSettings
from ragfleet.testkit.pytest_plugin import RedisServer

pytestmark = pytest.mark.integration


def test_pooled_connections_survive_a_redis_restart_on_uvloop(
    redis_server: RedisServer, redis_url: str
) -> None:
    settings = ServiceSettings(redis_url=redis_url)

    async def scenario() -> list[bytes | None]:
        client = create_redis(settings, "cache")
        # Idle connections are health-checked (a PING first) on their next use: make that now.
        client.connection_pool.connection_kwargs["health_check_interval"] = 0.05
        await asyncio.gather(*(client.set(f"k{i}", b"v") for i in range(8)))  # several pooled connections
        redis_server.restart()
        await asyncio.sleep(0.2)
        try:
            return list(await asyncio.gather(*(client.get(f"k{i}") for i in range(8))))
        finally:
            await client.aclose()

    # The restarted server kept nothing (no persistence in the test Redis): every get answers None,
    # none raises.
    assert uvloop.run(scenario()) == [None] * 8
