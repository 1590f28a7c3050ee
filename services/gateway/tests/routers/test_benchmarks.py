"""The benchmark API: admin only, off unless configured; in local mode a real child process runs the
suite's command (here a short script standing in for `make bench` that writes two records and exits
with the regression code) and the history is read back with verdicts."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ragfleet.common.errors import install_error_handlers
from ragfleet.gateway.auth import require_key
from ragfleet.gateway.benchmarks import LocalRunner, Runner
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import ADMIN_KEY_ID, Principal
from ragfleet.gateway.routers import benchmarks

# Two runs on one machine; the second's throughput fell while its calibration held: a regression.
SUITE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ragfleet.bench.history import Metric, Record
    from ragfleet.bench.stores import FileStore
    store = FileStore(Path("benchmarks/history"))
    for hour, qps in (("10", 1000.0), ("11", 500.0)):
        metric = Metric(qps, "req/s", "higher", reference="echo_rps")
        store.append(Record(f"2026-12-01T{hour}:00:00Z", f"c{hour}", {"loadtest.qps": metric},
                            fingerprint="m1", calibration={"echo_rps": 2000.0}, profile="full"))
    time.sleep(float(sys.argv[1]))
    sys.exit(4)
    """
)


def app_with(runner: Runner | None, settings: GatewaySettings, key_id: str = ADMIN_KEY_ID) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(benchmarks.router)
    principal = Principal(key_id=key_id, tenant="default", collections=frozenset({"*"}))

    async def caller() -> Principal:
        return principal

    app.dependency_overrides[require_key] = caller
    app.state.benchmark_runner = runner  # what the gateway's lifespan sets
    app.state.settings = settings
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_off_by_default_and_admin_only(tmp_path: Path) -> None:
    settings = GatewaySettings(benchmark_mode="off")
    async with client(app_with(None, settings)) as http:
        off = await http.post("/v1/admin/benchmarks")
    assert off.status_code == 503 and off.json()["error"]["code"] == "benchmarks_disabled"

    runner = LocalRunner(GatewaySettings(benchmark_mode="local", benchmark_workdir=tmp_path))
    async with client(app_with(runner, settings, key_id="k1")) as http:
        forbidden = await http.get("/v1/admin/benchmarks/history")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "admin_only"


@pytest.mark.integration
async def test_a_local_run_starts_reports_its_state_and_the_history_carries_verdicts(tmp_path: Path) -> None:
    script = tmp_path / "suite.py"
    script.write_text(SUITE)
    settings = GatewaySettings(
        benchmark_mode="local",
        benchmark_workdir=tmp_path,
        benchmark_command=[sys.executable, str(script)],
        benchmark_args=["1"],
    )
    runner = LocalRunner(settings)
    async with client(app_with(runner, settings)) as http:
        assert (await http.get("/v1/admin/benchmarks/latest")).status_code == 404
        started = await http.post("/v1/admin/benchmarks")
        assert started.status_code == 202 and started.json()["run"]["state"] == "running"
        again = await http.post("/v1/admin/benchmarks")
        assert again.status_code == 409 and again.json()["error"]["code"] == "benchmark_running"

        for _ in range(200):
            state = (await http.get("/v1/admin/benchmarks/current")).json()["run"]
            if state["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert state["state"] == "regressed" and state["exit_code"] == 4

        history = (await http.get("/v1/admin/benchmarks/history")).json()
        latest = (await http.get("/v1/admin/benchmarks/latest")).json()["result"]
    assert [r["label"] for r in history["results"]] == ["c10", "c11"]
    assert history["results"][0]["regressions"] == [] and history["results"][1]["regressions"] == [
        "loadtest.qps"
    ]
    (row,) = latest["rows"]
    assert (row["basis"], row["status"], row["baseline"]) == ("same machine", "regression", 1000.0)
    assert "bench-api-" in state["log"]
