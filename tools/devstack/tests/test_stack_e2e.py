"""The whole suite started the way ``make run`` starts it, exercised through NGINX."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from ragfleet.devstack.nginx import AFFINITY_COOKIE
from ragfleet.devstack.processes import StartupError, free_port
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def stack_settings(run_dir: Path) -> DevstackSettings:
    return DevstackSettings(
        run_dir=run_dir,
        nginx_port=free_port(),
        gateway_ports=(free_port(), free_port()),
        retrieval_port=free_port(),
        llm_proxy_port=free_port(),
        ingestion_port=free_port(),
        redis_port=free_port(),
        load_sample_corpus=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack"))).start()
    assert running.nginx_enabled, "nginx is required for the end-to-end test (make deps installs it)"
    yield running
    running.stop()


def test_readyz_through_nginx_reports_every_dependency(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert set(checks) == {"redis", "retrieval", "llm-proxy", "ingestion"}
    assert all(check["status"] == "ok" for check in checks.values())


def test_one_trace_id_crosses_every_service(stack: Stack) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    assert httpx.get(f"{stack.url}/readyz", headers={"traceparent": traceparent}).status_code == 200
    logs = stack.run_dir / "logs"
    deadline = time.monotonic() + 5
    missing = ["gateway", "retrieval", "llm-proxy", "ingestion"]
    while missing and time.monotonic() < deadline:
        seen = {
            path.stem.split("-")[0] if path.stem.startswith("gateway") else path.stem
            for path in logs.glob("*.log")
            if trace_id in path.read_text()
        }
        missing = [name for name in missing if name not in seen]
        time.sleep(0.2)
    assert not missing, f"trace {trace_id} not found in the logs of {missing}"


def test_affinity_cookie_pins_a_client_and_others_spread(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url) as client:
        first = client.get("/healthz")
        assert AFFINITY_COOKIE in first.cookies
        pinned = {client.get("/healthz").headers["x-ragfleet-replica"] for _ in range(20)}
    assert pinned == {first.headers["x-ragfleet-replica"]}

    spread = {httpx.get(f"{stack.url}/healthz").headers["x-ragfleet-replica"] for _ in range(40)}
    assert spread == {"gateway-1", "gateway-2"}


def test_websocket_through_nginx(stack: Stack) -> None:
    ws_url = stack.url.replace("http://", "ws://") + "/v1/stats/ws"
    with connect(ws_url, open_timeout=10) as websocket:
        message = json.loads(websocket.recv(timeout=15))
    assert isinstance(message, dict)
    assert message


def test_a_second_stack_on_the_same_run_dir_is_refused(stack: Stack) -> None:
    with pytest.raises(StartupError, match="already running"):
        Stack(stack.settings).start()


def test_ports_in_use_are_named(stack: Stack, tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(update={"redis_port": stack.settings.redis_port})
    with pytest.raises(StartupError, match=rf"{stack.settings.redis_port} \(RAGFLEET_DEV_REDIS_PORT\)"):
        Stack(settings).start()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path).model_copy(update={"worker": False})
    stack = Stack(settings).start()
    groups = [process.pid for process in stack.processes]
    stack.stop()
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
