"""The whole suite started the way ``make run`` starts it, exercised through NGINX."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.sync.client import connect

from ragfleet.common.contracts import SERVICE_TOKEN_HEADER as SERVICE_TOKEN
from ragfleet.devstack.nginx import AFFINITY_COOKIE
from ragfleet.devstack.processes import StartupError
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def stack_settings(run_dir: Path) -> DevstackSettings:
    # With a service token, as a cluster runs: internal endpoints refuse calls without it.
    return DevstackSettings.on_free_ports(run_dir, service_token=secrets.token_urlsafe(24))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack"))).start()
    assert running.nginx_enabled, "nginx is required for the end-to-end test (make deps installs it)"
    yield running
    running.stop()


def test_readyz_is_the_gateways_own_and_metrics_are_not_public(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/readyz")
    assert response.status_code == 200
    # No check of Redis or of another service: those are other pods (ragfleet.common.health).
    assert response.json() == {"status": "ready", "service": "gateway", "checks": {}}
    front_door = httpx.get(f"{stack.url}/metrics")
    assert front_door.status_code == 404
    assert front_door.json()["error"]["code"] == "not_found"
    gateway = f"http://127.0.0.1:{stack.settings.gateway_ports[0]}"
    assert "ragfleet_http_requests_total" in httpx.get(f"{gateway}/metrics").text


def test_one_trace_id_crosses_every_service(stack: Stack, api_key: str) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    headers = {"traceparent": traceparent, "Authorization": f"Bearer {api_key}"}
    # A question nobody asked before (no cache answers it): gateway, retrieval and llm-proxy ...
    chat = {"message": f"What happens to unused vacation days ({trace_id})?"}
    assert httpx.post(f"{stack.url}/v1/chat", json=chat, headers=headers, timeout=60).status_code == 200
    # ... and a job's status: gateway and ingestion.
    job = httpx.get(f"{stack.url}/v1/jobs/no-such-job", headers=headers, timeout=30)
    assert job.status_code == 404, job.text
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


PASSAGES = [
    ("handbook", "Employees get twenty-five vacation days per year. Unused days expire in March."),
    ("handbook", "The office is closed on public holidays. Remote work is allowed two days a week."),
    ("security", "API keys are rotated every ninety days. Lost keys must be revoked at once."),
]


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    """A real key made with the gateway's CLI, and a few passages indexed through retrieval."""
    created = subprocess.run(
        [sys.executable, "-m", "ragfleet.gateway.keys", "create", "--tenant", "acme", "--collections", "*",
         "--rate", "1000", "--burst", "1000", "--json"],
        env={**os.environ, "RAGFLEET_GATEWAY_STATE_REDIS_URL": stack.state_redis_url},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    chunks = [
        {"id": f"{doc}:{i}", "document_id": doc, "text": text, "position": i, "metadata": {}}
        for i, (doc, text) in enumerate(PASSAGES)
    ]
    upsert = httpx.post(
        f"http://127.0.0.1:{stack.settings.retrieval_port}/internal/v1/collections/default/upsert",
        json={"chunks": chunks},
        headers=stack.internal_headers("acme"),
        timeout=60,
    )
    assert upsert.status_code == 200, upsert.text
    return str(json.loads(created.stdout)["api_key"])


def test_internal_endpoints_refuse_a_caller_without_the_service_token(stack: Stack) -> None:
    retrieval = f"http://127.0.0.1:{stack.settings.retrieval_port}"
    upsert = f"{retrieval}/internal/v1/collections/default/delete"
    for headers in (
        {"X-Ragfleet-Tenant": "acme"},
        {**stack.internal_headers("acme"), SERVICE_TOKEN: "guess"},
    ):
        refused = httpx.post(upsert, json={"ids": ["handbook:0"]}, headers=headers, timeout=30)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "service_token_required"
    # The tenant header is believed only with the token: search, ingestion and llm-proxy alike.
    for url, body in (
        (f"{retrieval}/v1/search", {"query": "vacation", "mode": "bm25"}),
        (
            f"http://127.0.0.1:{stack.settings.llm_proxy_port}/v1/chat/completions",
            {"model": "extractive", "messages": []},
        ),
    ):
        assert (
            httpx.post(url, json=body, headers={"X-Ragfleet-Tenant": "acme"}, timeout=30).status_code == 401
        )
    jobs = f"http://127.0.0.1:{stack.settings.ingestion_port}/v1/jobs/j1"
    assert httpx.get(jobs, headers={"X-Ragfleet-Tenant": "acme"}, timeout=30).status_code == 401
    # Probes and scrapes stay open.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{retrieval}{path}", timeout=30).status_code == 200, path


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Events with data, as an EventSource would dispatch them (comments and bare retry: skipped)."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field_name, _, value = line.partition(":")
            event[field_name] = value.lstrip()


def test_large_search_answers_reach_clients_compressed(stack: Stack, api_key: str) -> None:
    """Through NGINX, and from a gateway's edge tier directly: a repeated answer's gzip is made once,
    kept beside it and passed through by NGINX (compressing every answer cost NGINX 0.3 ms each)."""
    long_text = "Vacation days accrue monthly and carry over to the next year. " * 50
    upsert = httpx.post(
        f"http://127.0.0.1:{stack.settings.retrieval_port}/internal/v1/collections/long/upsert",
        json={"chunks": [{"id": "long:0", "document_id": "long", "text": long_text, "position": 0}]},
        headers=stack.internal_headers("acme"),
        timeout=60,
    )
    assert upsert.status_code == 200, upsert.text
    headers = {"Authorization": f"Bearer {api_key}", "Accept-Encoding": "gzip"}
    body = {"query": "vacation days", "collection": "long"}  # a 3 KB answer: above the 1400-byte floor
    gateway = f"http://127.0.0.1:{stack.settings.gateway_ports[0]}"
    for base in (stack.url, gateway, gateway):
        answer = httpx.post(f"{base}/v1/search", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers.get("content-encoding") == "gzip", base
        assert answer.json()["results"]  # httpx decodes gzip: the body is intact


def test_websocket_chat_through_nginx_streams_tokens_and_sources(stack: Stack, api_key: str) -> None:
    ws_url = stack.url.replace("http://", "ws://") + f"/v1/chat/ws?api_key={api_key}"
    with connect(ws_url, open_timeout=10) as websocket:
        websocket.send(json.dumps({"type": "chat", "message": "How many vacation days do employees get?"}))
        events = []
        while not events or events[-1]["type"] not in ("done", "error"):
            events.append(json.loads(websocket.recv(timeout=30)))
    kinds = [event["type"] for event in events]
    assert kinds[0] == "sources" and kinds[-1] == "done", kinds
    assert "token" in kinds
    assert any(source["document_id"] == "handbook" for source in events[0]["sources"])
    assert "twenty-five" in events[-1]["answer"]


def wait_until_buffered(redis_url: str, stream_id: str, timeout_s: float = 60.0) -> None:
    """Until the stream's last buffered event is terminal (the gateway's buffer layout, streams.py)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            last = client.xrevrange(f"gw:stream:{stream_id}", count=1)
            if last and last[0][1][b"event"] in (b"done", b"error"):
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"stream {stream_id} was not complete after {timeout_s} s")


def resume_elsewhere(
    client: httpx.Client, headers: dict[str, str], body: dict[str, str], last_event_id: str, dead: str
) -> list[dict[str, str]]:
    """Reconnect with Last-Event-ID through NGINX; the answer must come from the other replica."""
    resumed_headers = {**headers, "Last-Event-ID": last_event_id}
    with client.stream("POST", "/v1/chat", json=body, headers=resumed_headers) as response:
        assert response.status_code == 200
        assert response.headers["x-ragfleet-replica"] != dead
        return list(sse_events(response.iter_lines()))


def test_sse_chat_through_nginx_resumes_on_the_other_replica(stack: Stack, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
    body = {"message": "How often are API keys rotated?"}
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        client.get("/healthz")  # take an affinity cookie: every request below goes to one replica
        with client.stream("POST", "/v1/chat", json=body, headers=headers) as response:
            assert response.status_code == 200
            replica = response.headers["x-ragfleet-replica"]
            seen = []
            for event in sse_events(response.iter_lines()):
                seen.append(event)
                if event.get("event") == "token":
                    break  # the client "loses" its connection after the first token
        assert seen[0]["event"] == "sources"
        # The answer is generated on that replica whether a client listens or not; once it is all in
        # the buffer, the replica can go. (An answer still being generated is taken over by the
        # other replica: the next test.)
        wait_until_buffered(stack.cache_redis_url, seen[-1]["id"].split(":", 1)[0])

        # The replica it was talking to dies; the same client, same cookie, reconnects through NGINX.
        stack.process(replica).kill()
        rest = resume_elsewhere(client, headers, body, seen[-1]["id"], replica)
    kinds = [event.get("event") for event in rest]
    assert kinds[-1] == "done", kinds
    assert "sources" not in kinds  # what was already delivered is not sent again
    last_seen = int(seen[-1]["id"].rsplit(":", 1)[1])
    assert int(rest[0]["id"].rsplit(":", 1)[1]) == last_seen + 1
    assert "ninety days" in json.loads(rest[-1]["data"])["answer"]


def revive_gateways(stack: Stack) -> None:
    """Restart replicas an earlier test killed, and wait until NGINX sends clients to all of them
    (it leaves a replica it failed to reach out of rotation for fail_timeout, 5 s)."""
    names = {f"gateway-{i}": port for i, port in enumerate(stack.settings.gateway_ports, start=1)}
    for name, port in names.items():
        if not stack.process(name).alive():
            stack.restart(name, ready_url=f"{stack.service_url(port)}/readyz")
    deadline = time.monotonic() + 20
    while {httpx.get(f"{stack.url}/healthz").headers.get("x-ragfleet-replica") for _ in range(8)} != set(
        names
    ):
        assert time.monotonic() < deadline, "NGINX does not send clients to every replica again"
        time.sleep(0.5)


def test_sse_chat_whose_replica_dies_mid_generation_is_finished_by_the_other(
    stack: Stack, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
    # The WebSocket test asked this question before, so the chat cache would answer it at once,
    # without the paused model (CI saw the replica die after the cached answer was written, before
    # `done`). A top_k asked nowhere else is another answer shape: a cache miss whatever ran before.
    body = {"message": "How many vacation days do employees get?", "top_k": 4}
    revive_gateways(stack)
    llm_proxy = stack.process("llm-proxy")
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        client.get("/healthz")  # an affinity cookie: the chat goes to one replica, the resume too
        # llm-proxy is paused: the replica sends the sources, then waits for the model — and dies
        # there, mid-generation, whatever the machine's speed.
        llm_proxy.signal(signal.SIGSTOP)
        try:
            with client.stream("POST", "/v1/chat", json=body, headers=headers) as response:
                assert response.status_code == 200
                replica = response.headers["x-ragfleet-replica"]
                seen = [next(sse_events(response.iter_lines()))]
            assert seen[0]["event"] == "sources"
            stack.process(replica).kill()
        finally:
            llm_proxy.signal(signal.SIGCONT)

        rest = resume_elsewhere(client, headers, body, seen[-1]["id"], replica)
    kinds = [event.get("event") for event in rest]
    # The other replica took the stream over once the dead one's lease lapsed: restart, then
    # the whole answer again, numbered on from the client's last event.
    assert kinds[0] == "restart" and kinds[1] == "sources" and kinds[-1] == "done", kinds
    assert json.loads(rest[0]["data"]) == {"reason": "generator_lost", "attempt": 1}
    assert [int(e["id"].rsplit(":", 1)[1]) for e in rest] == list(range(2, len(rest) + 2))
    done = json.loads(rest[-1]["data"])
    assert "twenty-five" in done["answer"]
    assert done["answer"] == "".join(json.loads(e["data"])["text"] for e in rest if e["event"] == "token")
    # One turn in the conversation, whichever replica finished it.
    session = httpx.get(
        f"{stack.url}/v1/sessions/{done['session_id']}", headers={"Authorization": f"Bearer {api_key}"}
    ).json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]


def test_with_ingestion_then_retrieval_stopped_the_gateway_stays_ready_and_serves_what_it_can(
    stack: Stack, api_key: str
) -> None:
    """Readiness never cascades: other pods going away leaves the gateways in rotation."""
    revive_gateways(stack)
    headers = {"Authorization": f"Bearer {api_key}"}
    search = {"query": "how many vacation days", "collection": "default"}
    question = {"message": "Are lost API keys revoked?"}
    gateways = [stack.service_url(port) for port in stack.settings.gateway_ports]
    ports = {"ingestion": stack.settings.ingestion_port, "retrieval": stack.settings.retrieval_port}

    def all_ready() -> bool:
        return all(httpx.get(f"{url}/readyz").status_code == 200 for url in [stack.url, *gateways])

    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as client:
        client.get("/healthz")  # an affinity cookie: this replica's edge cache answers the repeats
        assert client.post("/v1/search", json=search).status_code == 200
        asked = client.post("/v1/chat", json=question)
        assert asked.status_code == 200, asked.text
        try:
            stack.process("ingestion").stop()
            assert all_ready()
            cached = client.post("/v1/search", json=search)
            assert cached.status_code == 200 and cached.headers["x-cache"] == "hit-edge"
            upload = client.post("/v1/documents", json={"documents": [{"id": "d", "text": "t"}]})
            assert upload.status_code == 503
            assert upload.json()["error"]["details"] == {"service": "ingestion"}

            stack.process("retrieval").stop()
            assert all_ready()
            cached = client.post("/v1/search", json=search)
            assert cached.status_code == 200 and cached.headers["x-cache"] == "hit-edge"
            assert cached.json()["results"]
            fresh = client.post("/v1/search", json={**search, "query": "remote work days"})
            assert fresh.status_code == 503
            assert fresh.json()["error"]["details"] == {"service": "retrieval"}
            # Chat retrieves through the same edge cache: a question asked before is answered ...
            again = client.post("/v1/chat", json=question)
            assert again.status_code == 200, again.text
            assert again.json()["answer"] == asked.json()["answer"]
            # ... a new one is a clear 503 (as an error event on a stream).
            new = client.post("/v1/chat", json={"message": "When is the office closed?"})
            assert new.status_code == 503
            assert new.json()["error"]["details"] == {"service": "retrieval"}
        finally:
            for name in ("retrieval", "ingestion"):
                stack.restart(name, ready_url=f"{stack.service_url(ports[name])}/readyz")
    assert client_can_search(stack, headers, search)


def client_can_search(stack: Stack, headers: dict[str, str], search: dict[str, str]) -> bool:
    fresh = {**search, "query": "office closed on public holidays"}
    return httpx.post(f"{stack.url}/v1/search", json=fresh, headers=headers, timeout=60).status_code == 200


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
