"""Is an ingestion worker connected and consuming? (``POST /v1/worker-check``; ``make run`` waits on it.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from ragfleet.common.errors import ServiceUnavailable
from ragfleet.ingestion.config import IngestionSettings


async def check_workers(settings: IngestionSettings, celery: Celery, *, run_task: bool) -> dict[str, Any]:
    """Celery's remote-control ping (answered by a worker's main process, however busy its pool), or
    with ``run_task`` a task through the queue (the route's docstring says when to use which)."""
    started = time.perf_counter()
    timeout_s = settings.worker_check_timeout_s
    if run_task:
        from ragfleet.ingestion.tasks import ping

        result = ping.apply_async(args=[time.time()])
        try:
            answer = await asyncio.to_thread(result.get, timeout=timeout_s)
        except CeleryTimeout as exc:
            raise ServiceUnavailable(
                f"no ingestion worker ran the check task within {timeout_s:.0f}s",
                code="worker_unavailable",
            ) from exc
        return {**answer, "round_trip_ms": round((time.perf_counter() - started) * 1000, 2)}
    try:
        replies = await asyncio.to_thread(celery.control.ping, timeout=timeout_s, limit=1)
    except Exception as exc:  # the broker is down: kombu raises its own connection errors
        raise ServiceUnavailable(
            f"cannot reach the broker: {type(exc).__name__}", code="broker_unavailable"
        ) from exc
    if not replies:
        raise ServiceUnavailable(
            f"no ingestion worker answered within {timeout_s:.0f}s", code="worker_unavailable"
        )
    return {
        "workers": sorted(name for reply in replies for name in reply),
        "round_trip_ms": round((time.perf_counter() - started) * 1000, 2),
    }
