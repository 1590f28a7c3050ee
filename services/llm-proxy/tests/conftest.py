"""Fixtures: a scripted fake upstream and llm-proxy replicas, as real processes on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from ragfleet.devstack.processes import ManagedProcess, free_port, start_service
from ragfleet.testkit.fake_llm import FakeUpstreamControl
from ragfleet.testkit.pytest_plugin import RedisServer

PROXY_MODULE = "ragfleet.llm_proxy"
FAKE_MODULE = "ragfleet.testkit.fake_llm"

# Small numbers so a storm plays out in a second or two.
PROXY_SETTINGS = {
    "RETRY_MAX_ATTEMPTS": "3",
    "RETRY_BASE_DELAY_S": "0.02",
    "RETRY_MAX_DELAY_S": "0.1",
    "RETRY_BUDGET_S": "5",
    "BREAKER_FAILURE_THRESHOLD": "4",
    "BREAKER_WINDOW_S": "30",
    "BREAKER_OPEN_S": "1.5",
    "BREAKER_PROBE_TIMEOUT_S": "5",
    "KEY_LIMITS": json.dumps({"key:tight": {"rpm": 2}}),
    "ACCESS_LOG": "false",
}


def model_list(upstream_url: str) -> list[dict[str, Any]]:
    base = f"{upstream_url}/v1"

    def model(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "base_url": base, "upstream_model": f"{name}-up", **extra}

    return [
        model("plain"),
        model("storm", fallbacks=["backup"]),
        model("backup"),
        model("flaky"),
        model("slow", first_token_timeout_s=0.5, total_timeout_s=5, fallbacks=["extractive"]),
        model("tight", first_token_timeout_s=0.5, total_timeout_s=1.0),
        model("patient", first_token_timeout_s=30, total_timeout_s=60),
        model("capped", max_tokens=5),
    ]


class Proxy:
    def __init__(self, url: str, process: ManagedProcess) -> None:
        self.url = url
        self.process = process
        self.http = httpx.Client(base_url=url, timeout=30)

    def chat(self, model: str, content: str, **body: Any) -> httpx.Response:
        headers = body.pop("headers", None)
        payload = {"model": model, "messages": [{"role": "user", "content": content}], **body}
        return self.http.post("/v1/chat/completions", json=payload, headers=headers)

    def stream_events(self, model: str, content: str, **body: Any) -> tuple[httpx.Response, list[str]]:
        """The response and its SSE ``data:`` payloads, in order."""
        headers = body.pop("headers", None)
        payload = {"model": model, "messages": [{"role": "user", "content": content}], "stream": True, **body}
        with self.http.stream("POST", "/v1/chat/completions", json=payload, headers=headers) as response:
            response.read()
        events = [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]
        return response, events

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for family in text_string_to_metric_families(self.http.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total


def start_proxy(name: str, redis_url: str, upstream_url: str, log_dir: Path, **overrides: str) -> Proxy:
    port = free_port()
    settings = {
        **PROXY_SETTINGS,
        "PORT": str(port),
        "ENVIRONMENT": "development",
        "REDIS_URL": redis_url,
        "MODELS": json.dumps(model_list(upstream_url)),
        "EMBEDDINGS_BUILTIN": "true",  # loads the model only if a test embeds
        **overrides,
    }
    env = {f"RAGFLEET_LLM_PROXY_{key}": value for key, value in settings.items()}
    process = start_service(name, PROXY_MODULE, port=port, env=env, log_dir=log_dir)
    return Proxy(f"http://127.0.0.1:{port}", process)


@pytest.fixture(scope="module")
def fake_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstreamControl]:
    port = free_port()
    env = {"RAGFLEET_FAKE_UPSTREAM_PORT": str(port), "RAGFLEET_FAKE_UPSTREAM_ENVIRONMENT": "development"}
    process = start_service(
        "fake-upstream", FAKE_MODULE, port=port, env=env, log_dir=tmp_path_factory.mktemp("fake-upstream")
    )
    control = FakeUpstreamControl(f"http://127.0.0.1:{port}")
    yield control
    control.close()
    process.stop()


@pytest.fixture(scope="module")
def proxy(
    redis_server: RedisServer, fake_upstream: FakeUpstreamControl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """One proxy replica for the module; tests use their own model names and message texts."""
    started = start_proxy("llm-proxy", redis_server.url, fake_upstream.url, tmp_path_factory.mktemp("proxy"))
    yield started
    started.process.stop()


@pytest.fixture
def clean(redis_server: RedisServer, fake_upstream: FakeUpstreamControl) -> Iterator[None]:
    """Each test starts with an empty Redis (breakers, cache L2, limits) and a well-behaved upstream."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    fake_upstream.reset()
    yield


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout_s}s")


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """Poll until a condition holds (a liveness check with a generous bound, not a timing assertion)."""
    return _wait_for


@pytest.fixture
def proxy_replica(
    redis_server: RedisServer, fake_upstream: FakeUpstreamControl, tmp_path: Path
) -> Iterator[Callable[..., Proxy]]:
    """Start further proxy replicas (same Redis, same upstream), stopped after the test."""
    started: list[Proxy] = []

    def start(name: str = "llm-proxy-b", **overrides: str) -> Proxy:
        replica = start_proxy(name, redis_server.url, fake_upstream.url, tmp_path / name, **overrides)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.process.stop()
