"""The ingestion API: takes documents in and hands the work to Celery workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from fastapi import FastAPI, Request
from starlette.datastructures import State

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_redis
from ragfleet.common.errors import ServiceUnavailable
from ragfleet.common.health import ReadinessCheck, redis_check
from ragfleet.ingestion.config import IngestionSettings


def create_app(settings: IngestionSettings | None = None) -> FastAPI:
    settings = settings or IngestionSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ragfleet.ingestion.celery_app import celery_app

        app.state.celery = celery_app
        app.state.redis = create_redis(settings, url=settings.broker)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    def readiness(state: State) -> dict[str, ReadinessCheck]:
        return {"broker": redis_check(state.redis)}

    app = create_service_app(
        settings,
        title="ragfleet ingestion",
        description="Documents in (text, Markdown, HTML, PDF), chunked, embedded and indexed by Celery workers.",
        lifespan=lifespan,
        readiness=readiness,
    )

    @app.post("/v1/worker-check", tags=["health"], summary="Run a task on a real worker and wait for it")
    async def worker_check(request: Request) -> dict[str, Any]:
        from ragfleet.ingestion.tasks import ping

        started = time.perf_counter()
        result = ping.apply_async(args=[time.time()])
        try:
            answer = await asyncio.to_thread(result.get, timeout=settings.worker_check_timeout_s)
        except CeleryTimeout as exc:
            raise ServiceUnavailable(
                f"no ingestion worker answered within {settings.worker_check_timeout_s:.0f}s",
                code="worker_unavailable",
            ) from exc
        return {**answer, "round_trip_ms": round((time.perf_counter() - started) * 1000, 2)}

    return app
