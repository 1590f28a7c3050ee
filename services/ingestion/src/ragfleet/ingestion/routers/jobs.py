"""``/v1/jobs``: what became of the documents a ``POST /v1/documents`` accepted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ragfleet.ingestion import jobs
from ragfleet.ingestion.dependencies import SettingsDep, StateRedisDep
from ragfleet.ingestion.routers.params import Tenant

router = APIRouter(tags=["documents"])


@router.get("/v1/jobs/{job_id}", summary="A job's state, with each document's progress and errors")
async def get_job(
    job_id: str, settings: SettingsDep, redis: StateRedisDep, tenant: Tenant = "default"
) -> dict[str, Any]:
    return await jobs.read_job(redis, job_id, tenant, kept_s=settings.job_ttl_s)
