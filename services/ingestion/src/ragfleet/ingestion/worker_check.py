"""``POST /v1/worker-check``: is an ingestion worker connected and consuming? (``make run`` waits on it.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from fastapi import APIRouter

from ragfleet.common.errors import ServiceUnavailable
from ragfleet.ingestion.dependencies import CeleryDep, SettingsDep

router = APIRouter(tags=["health"])


@router.post("/v1/worker-check", summary="Is a worker connected and consuming?")
async def worker_check(settings: SettingsDep, celery: CeleryDep, run_task: bool = False) -> dict[str, Any]:
    """A remote-control ping, answered by a worker's main process even while every pool process
    is busy and the queue is long: start-up (``make run``) never waits behind queued documents.
    ``run_task=true`` sends a task through the queue instead and waits for a pool process to run
    it (how long the queue takes, not whether a worker is there)."""
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
