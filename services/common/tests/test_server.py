"""A real service process with several uvicorn workers: connections reach every worker, metrics add
up across workers, and a port already served is refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragfleet.devstack.processes import free_port
from ragfleet.testkit.pytest_plugin import ServiceStarter

pytestmark = pytest.mark.integration


def healthz_count(metrics_text: str) -> float:
    pattern = re.compile(
        r'^ragfleet_http_requests_total\{[^}]*route="/healthz"[^}]*status="200"[^}]*\} (\S+)$', re.M
    )
    return sum(float(value) for value in pattern.findall(metrics_text))


def test_metrics_are_aggregated_across_workers(run_service: ServiceStarter, redis_url: str) -> None:
    service = run_service(
        "gateway", "ragfleet.gateway", "RAGFLEET_GATEWAY_", {"WORKERS": "2", "REDIS_URL": redis_url}
    )
    before = healthz_count(httpx.get(f"{service.url}/metrics").text)  # the start-up probe's
    for _ in range(60):
        # A new connection each time, so that both workers answer some of them.
        assert httpx.get(f"{service.url}/healthz").status_code == 200
    # Whichever worker answers the scrape, it reports all 60 (each worker alone saw about half).
    for _ in range(6):
        assert healthz_count(httpx.get(f"{service.url}/metrics").text) == before + 60


def test_a_metrics_port_serves_every_workers_samples_and_the_main_port_does_not(
    run_service: ServiceStarter, redis_url: str
) -> None:
    metrics_port = free_port()
    service = run_service(
        "gateway",
        "ragfleet.gateway",
        "RAGFLEET_GATEWAY_",
        {"WORKERS": "2", "REDIS_URL": redis_url, "METRICS_PORT": str(metrics_port)},
    )
    scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
    before = healthz_count(httpx.get(scrape_url).text)
    for _ in range(40):
        assert httpx.get(f"{service.url}/healthz").status_code == 200
    assert healthz_count(httpx.get(scrape_url).text) == before + 40
    main = httpx.get(f"{service.url}/metrics")
    assert main.status_code == 404
    assert main.json()["error"]["code"] == "not_found"


def socket_pids(port: int, state: str) -> list[int]:
    """The pid holding each socket of the port in `state` (listening, established), from `ss`."""
    output = subprocess.run(
        ["ss", "-tnpH", "state", state, f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return [int(pid) for pid in re.findall(r"pid=(\d+)", output)]


def children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()}


def test_connections_are_spread_over_every_worker(run_service: ServiceStarter, redis_url: str) -> None:
    service = run_service(
        "gateway", "ragfleet.gateway", "RAGFLEET_GATEWAY_", {"WORKERS": "2", "REDIS_URL": redis_url}
    )
    deadline = time.monotonic() + 60  # ready means one worker listens; wait for the second too
    while len(set(socket_pids(service.port, "listening"))) < 2:
        assert time.monotonic() < deadline, "the second worker never listened"
        time.sleep(0.2)
    workers = set(socket_pids(service.port, "listening"))
    assert workers <= children(service.process.pid)  # each worker's own socket; none in the supervisor
    clients = [httpx.Client(base_url=service.url) for _ in range(24)]
    try:
        for client in clients:  # each client holds its keep-alive connection open
            assert client.get("/healthz").status_code == 200
        serving = socket_pids(service.port, "established")
    finally:
        for client in clients:
            client.close()
    # The kernel deals connections by a hash: all 24 on one of two workers is a 1-in-8-million
    # chance, where one shared socket gave whichever worker was awake most of them.
    assert set(serving) == workers
    assert len(serving) == 24


def test_a_port_already_served_is_refused_at_start(run_service: ServiceStarter, redis_url: str) -> None:
    first = run_service(
        "gateway", "ragfleet.gateway", "RAGFLEET_GATEWAY_", {"WORKERS": "2", "REDIS_URL": redis_url}
    )
    # A second copy with SO_REUSEPORT sockets would share the port (and its connections) silently.
    second = subprocess.run(
        [sys.executable, "-m", "ragfleet.gateway"],
        env={
            **os.environ,
            "RAGFLEET_GATEWAY_PORT": str(first.port),
            "RAGFLEET_GATEWAY_WORKERS": "2",
            "RAGFLEET_GATEWAY_REDIS_URL": redis_url,
            "RAGFLEET_GATEWAY_ENVIRONMENT": "development",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3, second.stderr[-2000:]  # uvicorn's STARTUP_FAILURE
    assert "cannot serve" in second.stderr
    assert httpx.get(f"{first.url}/healthz").status_code == 200
