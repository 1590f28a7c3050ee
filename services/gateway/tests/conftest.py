"""Fixtures of the gateway's tests: real gateway processes against a real Redis, and API keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from ragfleet.devstack.processes import ManagedProcess, free_port, wait_until
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import KeyStore
from ragfleet.gateway.main import create_app
from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

GatewayStarter = Callable[..., RunningService]
KeyMaker = Callable[..., Awaitable[str]]
# Nothing listens there: a downstream that is down (connections refused at once).
UNREACHABLE_URL = "http://127.0.0.1:1"


def offline_settings(redis_url: str, **overrides: object) -> GatewaySettings:
    """A gateway whose every downstream is unreachable: what it answers on its own."""
    base: dict[str, object] = {
        "redis_url": redis_url,
        "retrieval_url": UNREACHABLE_URL,
        "llm_proxy_url": UNREACHABLE_URL,
        "ingestion_url": UNREACHABLE_URL,
        "access_log": False,
    }
    return GatewaySettings(**{**base, **overrides})  # type: ignore[arg-type]


@asynccontextmanager
async def in_process(
    settings: GatewaySettings, client: tuple[str, int] = ("203.0.113.7", 40000)
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app served in this process (its lifespan run), with an HTTP client calling it
    from ``client``'s address — no process, no port."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


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

    def create_key(
        self, tenant: str, collections: Sequence[str] = (SHARED_COLLECTION,), **limits: Any
    ) -> str:
        async def create() -> str:
            client = Redis.from_url(self.stack.redis_url)
            try:
                return (await KeyStore(client).create(tenant, collections, **limits))[0]
            finally:
                await client.aclose()  # type: ignore[attr-defined]

        return asyncio.run(create())


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Redis, retrieval, llm-proxy, ingestion API and worker, a gateway — once for the session.

    Its own Redis (not the session one every other test flushes), so the keys, jobs and
    conversations made here survive the tests in between.
    """
    settings = DevstackSettings.on_free_ports(
        tmp_path_factory.mktemp("platform"), gateway_ports=(free_port(),), nginx=False
    )
    stack = Stack(settings).start()
    try:
        platform = Platform(stack, {})
        for tenant in TENANTS:
            platform.keys[tenant] = platform.create_key(tenant, rate_per_s=1e6, burst=1_000_000)
        yield platform
    finally:
        stack.stop()


ErrorChecker = Callable[[int, Mapping[str, Any], bytes], dict[str, Any]]


def check_json_error(status: int, headers: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    """Assert that a 4xx/5xx body is the error model served as JSON; returns its ``error`` object."""
    content_type = headers.get("content-type", "")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"{status} served as {content_type!r}: {body[:200]!r}"
    document = orjson.loads(body)
    error = document.get("error") if isinstance(document, dict) else None
    assert isinstance(error, dict), f"{status} without an error object: {body[:200]!r}"
    for name in ("code", "message", "request_id"):
        assert isinstance(error.get(name), str) and error[name], f"{status} error lacks {name}: {error}"
    return error


@pytest.fixture(scope="session")
def json_error() -> ErrorChecker:
    return check_json_error


# Each tenant holds a document with the same id in a collection of the same name, each with a
# secret word only its own tenant may ever see.
SECRETS = {"acme": "PELICAN", "globex": "WALRUS"}
DOCUMENT_ID = "leave-policy"


def tenant_document(tenant: str) -> dict[str, Any]:
    return {
        "id": DOCUMENT_ID,
        "text": f"{tenant} employees get vacation days every year. "
        f"The vacation approval codeword is {SECRETS[tenant]}.",
        "metadata": {"lang": "en", "owner": tenant},
    }


@dataclass
class SeededPlatform(Platform):
    jobs: dict[str, str]  # tenant -> the job that ingested its document
    secrets: Mapping[str, str] = field(default_factory=lambda: SECRETS)
    document_id: str = DOCUMENT_ID

    def wait_for_job(self, client: httpx.Client, job_id: str, collection: str = SHARED_COLLECTION) -> None:
        def succeeded() -> bool:
            job = client.get(f"/v1/jobs/{job_id}", params={"collection": collection})
            return bool(job.json()["state"] == "succeeded")

        wait_until(succeeded, timeout_s=120, what=f"ingestion job {job_id}")


@pytest.fixture(scope="session")
def seeded(platform: Platform) -> SeededPlatform:
    """The platform with one document per tenant, ingested through the gateway by the real worker."""
    jobs: dict[str, str] = {}
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        for tenant in TENANTS:
            response = client.post(
                "/v1/documents",
                params={"collection": SHARED_COLLECTION},
                json={"documents": [tenant_document(tenant)]},
                headers=platform.headers(tenant),
            )
            assert response.status_code == 202, response.text
            jobs[tenant] = response.json()["job_id"]

    seeded = SeededPlatform(platform.stack, platform.keys, jobs)
    for tenant in TENANTS:
        with httpx.Client(base_url=platform.url, headers=platform.headers(tenant), timeout=30) as client:
            seeded.wait_for_job(client, jobs[tenant])
    return seeded
