"""The llm-proxy: an OpenAI-compatible front for any OpenAI-compatible upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import State

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_http_client, create_redis
from ragfleet.common.health import ReadinessCheck, redis_check
from ragfleet.llm_proxy.config import LlmProxySettings


def create_app(settings: LlmProxySettings | None = None) -> FastAPI:
    settings = settings or LlmProxySettings()

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
        return {"redis": redis_check(state.redis)}

    return create_service_app(
        settings,
        title="ragfleet llm-proxy",
        description="OpenAI-compatible chat completions and embeddings with retries, breaker and cache.",
        lifespan=lifespan,
        readiness=readiness,
    )
