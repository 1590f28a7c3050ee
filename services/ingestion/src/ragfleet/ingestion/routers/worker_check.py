"""``POST /v1/worker-check``: is an ingestion worker connected and consuming?"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ragfleet.ingestion.dependencies import CeleryDep, SettingsDep
from ragfleet.ingestion.worker_check import check_workers

router = APIRouter(tags=["health"])


@router.post("/v1/worker-check", summary="Is a worker connected and consuming?")
async def worker_check(settings: SettingsDep, celery: CeleryDep, run_task: bool = False) -> dict[str, Any]:
    """A remote-control ping, answered by a worker's main process even while every pool process
    is busy and the queue is long: start-up (``make run``) never waits behind queued documents.
    ``run_task=true`` sends a task through the queue instead and waits for a pool process to run
    it (how long the queue takes, not whether a worker is there)."""
    return await check_workers(settings, celery, run_task=run_task)
