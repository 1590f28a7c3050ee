"""Liveness (``/healthz``) and readiness (``/readyz``) endpoints.

Liveness says the process serves. Readiness says this pod can serve its own requests: its
listeners are up (uvicorn answers only once the lifespan has opened its clients and loaded what it
owns, an index for instance) and the checks it names pass — checks of what the process itself
holds, never of Redis or of another service. A dependency other pods own is not a reason to take
this pod out of its Service: when one is down, the features that need it answer a clear 503 and
the others keep serving (the gateway's edge cache answers cached searches with retrieval gone).
Checks run in parallel with a timeout, each reported by name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from redis.asyncio import Redis

from ragfleet.common.responses import OrjsonResponse

ReadinessCheck = Callable[[], Awaitable[dict[str, Any] | None]]

CHECK_TIMEOUT_S = 2.0


async def _run_check(check: ReadinessCheck) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        result: dict[str, Any] = {"status": "ok"}
        if detail:
            result.update(detail)
    except TimeoutError:
        result = {"status": "error", "error": f"no answer within {CHECK_TIMEOUT_S:.0f}s"}
    except Exception as exc:
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def health_router(service: str, checks: Callable[[], dict[str, ReadinessCheck]]) -> APIRouter:
    """``checks`` is called per request, so it can read clients the lifespan created."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", summary="Readiness: this pod can serve its own requests")
    async def readyz() -> OrjsonResponse:
        named = checks()
        results = await asyncio.gather(*(_run_check(check) for check in named.values()))
        report = dict(zip(named, results, strict=True))
        ready = all(r["status"] == "ok" for r in report.values())
        body = {"status": "ready" if ready else "not_ready", "service": service, "checks": report}
        return OrjsonResponse(body, status_code=200 if ready else 503)

    return router


def redis_check(redis: Redis) -> ReadinessCheck:
    """Kept for the ingestion API only until its readiness drops Redis too (see this module's
    docstring): Redis is another pod and belongs to no service's readiness."""

    async def check() -> dict[str, Any] | None:
        await redis.ping()
        return None

    return check
