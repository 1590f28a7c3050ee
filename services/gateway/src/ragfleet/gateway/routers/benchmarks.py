"""``/v1/admin/benchmarks``: start a benchmark run, read its state, the latest results and the history.

Admin key only (RAGFLEET_GATEWAY_ADMIN_KEY); answers 503 while ``benchmark_mode`` is off.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ragfleet.common.errors import Forbidden, NotFound, ServiceUnavailable
from ragfleet.common.responses import OrjsonResponse
from ragfleet.gateway.auth import Authenticated
from ragfleet.gateway.benchmarks import Runner, verdicts
from ragfleet.gateway.dependencies import BenchmarkRunnerDep, SettingsDep
from ragfleet.gateway.keys import ADMIN_KEY_ID

router = APIRouter(prefix="/v1/admin/benchmarks", tags=["admin"])


async def require_runner(principal: Authenticated, runner: BenchmarkRunnerDep) -> Runner:
    if principal.key_id != ADMIN_KEY_ID:
        raise Forbidden("the benchmark API needs the admin key", code="admin_only")
    if runner is None:
        raise ServiceUnavailable(
            "the benchmark API is off on this gateway (RAGFLEET_GATEWAY_BENCHMARK_MODE=local or kubernetes)",
            code="benchmarks_disabled",
        )
    return runner


AdminRunner = Annotated[Runner, Depends(require_runner)]


@router.post("", status_code=202, summary="Start a benchmark run (409 while one is running)")
async def start_run(runner: AdminRunner) -> OrjsonResponse:
    run = await runner.start()
    return OrjsonResponse({"run": run.to_json()}, status_code=202)


@router.get("/current", summary="The state of the run this gateway started last")
async def current_run(runner: AdminRunner) -> dict[str, Any]:
    run = await runner.current()
    if run is None:
        raise NotFound("no benchmark run was started here yet", code="no_benchmark_run")
    return {"run": run.to_json()}


@router.get("/latest", summary="The newest stored result, each metric with its verdict against the history")
async def latest(runner: AdminRunner, settings: SettingsDep) -> dict[str, Any]:
    records = await runner.records()
    if not records:
        raise NotFound("no benchmark result is stored yet", code="no_benchmark_result")
    return {"result": verdicts(records, settings.benchmark_tolerance)[-1]}


@router.get("/history", summary="Every stored result, oldest first, each judged against the earlier ones")
async def history(runner: AdminRunner, settings: SettingsDep) -> dict[str, Any]:
    judged = verdicts(await runner.records(), settings.benchmark_tolerance)
    return {
        "results": [{k: v for k, v in result.items() if k != "rows"} for result in judged],
        "count": len(judged),
    }
