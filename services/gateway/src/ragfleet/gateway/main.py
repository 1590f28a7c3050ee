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
from ragfleet.gateway.routers import stats as stats_routes
from ragfleet.gateway.stats import GatewayStats, InFlightMiddleware, RetrievalCacheStats

DOWNSTREAMS = ("retrieval", "llm_proxy", "ingestion")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    stats = GatewayStats(settings.replica_name, settings.stats_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = create_redis(settings)
        app.state.http = create_http_client(settings)
        app.state.stats = stats
        app.state.retrieval_cache_stats = RetrievalCacheStats(
            app.state.http, f"{settings.retrieval_url.rstrip('/')}/v1/cache/stats"
        )
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

    app = create_service_app(
        settings,
        title="ragfleet gateway",
        description="The public API of ragfleet: search, RAG chat (REST, SSE, WebSocket), documents.",
        lifespan=lifespan,
        readiness=readiness,
        observer=stats.observe,
    )
    app.add_middleware(InFlightMiddleware, stats=stats)
    app.include_router(stats_routes.router)
    return app
