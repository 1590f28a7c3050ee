"""The gateway: ragfleet's only public service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import State

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_http_client, create_redis
from ragfleet.common.health import ReadinessCheck, http_ready_check, redis_check
from ragfleet.gateway.config import GatewaySettings

DOWNSTREAMS = ("retrieval", "llm_proxy", "ingestion")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = create_redis(settings)
        app.state.http = create_http_client(settings)
        try:
            yield
        finally:
            await app.state.http.aclose()
            await app.state.redis.aclose()

    def readiness(state: State) -> dict[str, ReadinessCheck]:
        checks = {"redis": redis_check(state.redis)}
        for name in DOWNSTREAMS:
            base = getattr(settings, f"{name}_url").rstrip("/")
            checks[name.replace("_", "-")] = http_ready_check(state.http, f"{base}/readyz")
        return checks

    return create_service_app(
        settings,
        title="ragfleet gateway",
        description="The public API of ragfleet: search, RAG chat (REST, SSE, WebSocket), documents.",
        lifespan=lifespan,
        readiness=readiness,
    )
