"""The retrieval service: embeds queries, searches the index, caches results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import State

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_redis
from ragfleet.common.health import ReadinessCheck, redis_check
from ragfleet.retrieval.config import RetrievalSettings


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = create_redis(settings)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    def readiness(state: State) -> dict[str, ReadinessCheck]:
        return {"redis": redis_check(state.redis)}

    return create_service_app(
        settings,
        title="ragfleet retrieval",
        description="Vector, BM25 and hybrid search over the embedded index or Weaviate, with a two-tier cache.",
        lifespan=lifespan,
        readiness=readiness,
    )
