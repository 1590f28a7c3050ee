"""A real service process with several uvicorn workers: metrics add up across workers."""

from __future__ import annotations

import re

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
