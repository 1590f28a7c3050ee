"""Fixtures of the gateway's tests: real gateway processes against a real Redis, and API keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from ragfleet.devstack.processes import ManagedProcess, free_port
from ragfleet.devstack.pytest_plugin import RunningService, ServiceStarter
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack
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


# -- the whole platform, for the hostile-input, schemathesis and tenant-isolation tests ----------

TENANTS = ("acme", "globex")
SHARED_COLLECTION = "handbook"


@dataclass
class Platform:
    """The suite started the way ``make run`` starts it (one gateway, no NGINX), with its own Redis."""

    stack: Stack
    # A key per tenant, both for the same collection name, with a rate limit no test reaches.
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def headers(self, tenant: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[tenant]}

    def gateway(self) -> ManagedProcess:
        return self.stack.process("gateway-1")


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Redis, retrieval, llm-proxy, ingestion API and worker, a gateway — once for the session.

    Its own Redis (not the session one every other test flushes), so the keys, jobs and
    conversations made here survive the tests in between.
    """
    settings = DevstackSettings(
        run_dir=tmp_path_factory.mktemp("platform"),
        gateway_ports=(free_port(),),
        retrieval_port=free_port(),
        llm_proxy_port=free_port(),
        ingestion_port=free_port(),
        redis_port=free_port(),
        worker_metrics_port=free_port(),
        nginx=False,
        load_sample_corpus=False,
    )
    stack = Stack(settings).start()
    try:
        keys = asyncio.run(_create_tenant_keys(stack.redis_url))
        yield Platform(stack, keys)
    finally:
        stack.stop()


async def _create_tenant_keys(redis_url: str) -> dict[str, str]:
    client = Redis.from_url(redis_url)
    try:
        store = KeyStore(client)
        return {
            tenant: (await store.create(tenant, [SHARED_COLLECTION], rate_per_s=1e6, burst=1_000_000))[0]
            for tenant in TENANTS
        }
    finally:
        await client.aclose()  # type: ignore[attr-defined]


ErrorChecker = Callable[[int, Mapping[str, Any], bytes], dict[str, Any]]


def check_json_error(status: int, headers: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    """Assert that a 4xx/5xx body is the error model served as JSON; returns its ``error`` object."""
    content_type = headers.get("content-type", "")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"{status} served as {content_type!r}: {body[:200]!r}"
    document = orjson.loads(body)
    error = document.get("error") if isinstance(document, dict) else None
    assert isinstance(error, dict), f"{status} without an error object: {body[:200]!r}"
    for field in ("code", "message", "request_id"):
        assert isinstance(error.get(field), str) and error[field], f"{status} error lacks {field}: {error}"
    return error


@pytest.fixture(scope="session")
def json_error() -> ErrorChecker:
    return check_json_error
