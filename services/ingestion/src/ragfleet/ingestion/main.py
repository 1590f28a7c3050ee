"""The ingestion API: takes documents in and hands the work to Celery workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import State

from ragfleet.common.app import create_service_app
from ragfleet.common.clients import create_http_client, create_redis
from ragfleet.common.health import ReadinessCheck, redis_check
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.metrics import QUEUE_DEPTH, QUEUE_UNACKED
from ragfleet.ingestion.reconcile import reconcile_forever
from ragfleet.ingestion.routers import collections, documents, jobs, worker_check

log = logging.getLogger("ragfleet.ingestion")


async def sample_queue_depth(redis: Redis, settings: IngestionSettings) -> None:
    """Export the broker's queue lengths (both lanes) as gauges, so an HPA or KEDA can scale workers on them."""
    while True:
        try:
            # Kombu's Redis transport keeps a queue as a list named after it, and tasks taken
            # but not yet acknowledged in the ``unacked`` hash.
            queues = settings.document_queues
            *waiting, unacked = await asyncio.gather(*(redis.llen(q) for q in queues), redis.hlen("unacked"))
            for queue, depth in zip(queues, waiting, strict=True):
                QUEUE_DEPTH.labels(queue).set(depth)
            QUEUE_UNACKED.set(unacked)
        except RedisError as exc:
            log.warning("cannot sample the queue depth: %s", exc)
        await asyncio.sleep(settings.queue_depth_interval_s)


def create_app(settings: IngestionSettings | None = None) -> FastAPI:
    settings = settings or IngestionSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ragfleet.ingestion.celery_app import celery_app

        app.state.celery = celery_app
        app.state.redis = create_redis(settings, "state")  # job records and staged documents
        app.state.broker = create_redis(settings, "state", url=settings.broker)
        app.state.retrieval = create_http_client(settings, base_url=settings.retrieval_url.rstrip("/"))
        sampler = asyncio.create_task(sample_queue_depth(app.state.broker, settings))
        reconciler = asyncio.create_task(
            reconcile_forever(app.state.redis, celery_app, settings, settings.replica_name)
        )
        try:
            yield
        finally:
            for task in (sampler, reconciler):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.retrieval.aclose()
            await app.state.redis.aclose()
            await app.state.broker.aclose()

    def readiness(state: State) -> dict[str, ReadinessCheck]:
        return {"redis": redis_check(state.redis), "broker": redis_check(state.broker)}

    app = create_service_app(
        settings,
        title="ragfleet ingestion",
        description="Documents in (text, Markdown, HTML, PDF), chunked, embedded and indexed by Celery workers.",
        lifespan=lifespan,
        readiness=readiness,
    )
    for module in (documents, jobs, collections, worker_check):
        app.include_router(module.router)

    return app
