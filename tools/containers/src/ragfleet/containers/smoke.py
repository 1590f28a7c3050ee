"""The end-to-end smoke through the NGINX container: what a client and an SRE would try first.

Every check goes through the ingress stand-in on 127.0.0.1, never to a pod directly; faults are
made with podman (kill, pause, restart) the way a node or an OOM would make them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
from websockets.sync.client import connect

if TYPE_CHECKING:
    from ragfleet.containers.harness import Cluster

log = logging.getLogger(__name__)

COLLECTION = "smoke"
RETRY_S = 30
DOCS = {
    "leave": "Employees get twenty-five vacation days per year, and unused days carry over once.",
    "keys": "API keys are rotated every ninety days by the platform team.",
}


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.lstrip()


class Smoke:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.url = cluster.url
        self.key = ""
        self.retried: list[str] = []  # the current check's retried answers, reported with it

    def call(self, method: str, path: str, *, timeout: float = 30, **kwargs: Any) -> httpx.Response:
        """One request through NGINX, retried as a client honouring "retry shortly" would: on a
        502/503/504 or a failed connection, for up to RETRY_S. Eight containers on two shared
        cores miss a 1 s Redis or 2 s connect timeout now and then; every retry is reported
        with the check, and an answer that stays wrong still fails it."""
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                r = httpx.request(
                    method, f"{self.url}{path}", headers=self.headers(), timeout=timeout, **kwargs
                )
                if r.status_code not in (502, 503, 504) or time.monotonic() > deadline:
                    return r
                why = f"{r.status_code} {r.text[:120]}"
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise
                why = f"{type(exc).__name__}"
            self.retried.append(f"{method} {path.split('?')[0]}: {why}")
            log.warning("retrying %s %s after %s", method, path, why)
            time.sleep(1)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def pods(self, component: str) -> list[str]:
        return sorted(
            name
            for name, state in self.cluster.pods.items()
            if state.spec.labels.get("app.kubernetes.io/component") == component
        )

    def create_key(self) -> None:
        gateway = self.cluster.pods[self.pods("gateway")[0]].container
        out = self.cluster.podman(
            "exec",
            gateway,
            "python",
            "-m",
            "ragfleet.gateway.keys",
            "create",
            "--tenant",
            "smoke",
            "--collections",
            "*",
        )
        match = re.search(r"rfk_[A-Za-z0-9_-]+", out)
        assert match, f"no key in: {out}"
        self.key = match.group(0)

    def ingest(self, documents: dict[str, str], timeout_s: float = 240) -> dict[str, Any]:
        body = {"documents": [{"id": k, "text": v} for k, v in documents.items()]}
        # A retried upload after a 504 may have been accepted twice: harmless, ingestion is
        # idempotent by document id, and the job waited for is the one answered.
        r = self.call("POST", "/v1/documents", params={"collection": COLLECTION}, json=body)
        assert r.status_code == 202, r.text
        return self.wait_job(r.json()["job_id"], timeout_s)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/v1/jobs/{job_id}", params={"collection": COLLECTION}, timeout=10)
        assert r.status_code == 200, f"job {job_id}: {r.status_code} {r.text}"
        return dict(r.json())

    def wait_job(self, job_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError, httpx.HTTPError):  # a moment of 503 while it recovers
                job = self.job(job_id)
                if job.get("state") in ("succeeded", "failed"):
                    return job
            time.sleep(1)
        raise AssertionError(f"job {job_id} not done after {timeout_s:.0f} s")

    def search(self, query: str, mode: str) -> list[dict[str, Any]]:
        body = {"query": query, "collection": COLLECTION, "mode": mode, "top_k": 3}
        r = self.call("POST", "/v1/search", json=body)
        assert r.status_code == 200, f"{mode}: {r.status_code} {r.text}"
        return list(r.json()["results"])

    # ---- the checks ----
    def upload_job_searchable(self) -> str:
        self.create_key()
        job = self.ingest(DOCS)
        assert job["state"] == "succeeded", job
        hits = self.search("how many vacation days", "hybrid")
        assert hits and hits[0]["document_id"] == "leave", hits
        return f"job {job['job_id']} succeeded; searchable"

    def search_every_mode(self) -> str:
        for mode in ("vector", "bm25", "hybrid"):
            hits = self.search("How often are API keys rotated?", mode)
            assert hits and hits[0]["document_id"] == "keys", (mode, hits)
        return "vector, bm25, hybrid"

    def chat_rest(self) -> str:
        body = {"message": "How many vacation days do employees get?", "collection": COLLECTION}
        r = self.call("POST", "/v1/chat", json=body, timeout=60)
        assert r.status_code == 200, r.text
        assert "twenty-five" in r.json()["answer"], r.json()
        return "answer cites the document"

    def chat_sse(self) -> str:
        body = {"message": "How often are API keys rotated?", "collection": COLLECTION}
        headers = {**self.headers(), "Accept": "text/event-stream"}
        with httpx.stream("POST", f"{self.url}/v1/chat", json=body, headers=headers, timeout=60) as r:
            assert r.status_code == 200
            kinds = [e.get("event") for e in sse_events(r.iter_lines())]
        assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds, kinds
        return f"{len(kinds)} events"

    def chat_websocket(self) -> str:
        ws_url = self.url.replace("http://", "ws://") + f"/v1/chat/ws?api_key={self.key}"
        with connect(ws_url, open_timeout=10) as ws:
            ws.send(
                json.dumps({"type": "chat", "message": "How many vacation days?", "collection": COLLECTION})
            )
            events: list[dict[str, Any]] = []
            while not events or events[-1]["type"] not in ("done", "error"):
                events.append(json.loads(ws.recv(timeout=60)))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "sources" and kinds[-1] == "done", kinds
        return f"{len(kinds)} frames"

    def stream_resumed_on_other_gateway(self) -> str:
        body = {"message": "How many vacation days do employees get?", "collection": COLLECTION}
        headers = {**self.headers(), "Accept": "text/event-stream"}
        llm = self.cluster.pods[self.pods("llm-proxy")[0]]
        with httpx.Client(base_url=self.url, timeout=120) as client:
            client.get("/healthz")  # the affinity cookie
            # llm-proxy paused: the gateway sends the sources, then waits for the model and dies there.
            llm.held = True
            self.cluster.podman("pause", llm.container)
            try:
                with client.stream("POST", "/v1/chat", json=body, headers=headers) as r:
                    assert r.status_code == 200
                    replica = r.headers["x-ragfleet-replica"]
                    first = next(sse_events(r.iter_lines()))
                dead = self.cluster.pods[replica]
                dead.held = True
                self.cluster.podman("kill", "--signal", "KILL", dead.container)
                self.cluster.set_ready(dead, False)
            finally:
                self.cluster.podman("unpause", llm.container, check=False)
                llm.held = False
            with client.stream(
                "POST", "/v1/chat", json=body, headers={**headers, "Last-Event-ID": first["id"]}
            ) as r:
                assert r.status_code == 200, r.status_code
                other = r.headers["x-ragfleet-replica"]
                rest = list(sse_events(r.iter_lines()))
        dead.held = False  # the supervisor restarts it, as kubelet would
        kinds = [e.get("event") for e in rest]
        assert other != replica, (other, replica)
        assert kinds[-1] == "done" and "twenty-five" in json.loads(rest[-1]["data"])["answer"], kinds
        self.cluster.wait_pod_ready(replica)
        return f"{replica} killed mid-stream, {other} finished it ({len(kinds)} events); {replica} back"

    def worker_killed_mid_ingest(self) -> str:
        # Enough work that the kill lands mid-ingest even on a fast machine, few enough that the
        # redelivered rest finishes well inside the wait: ~10 chunks a document, every sentence its
        # own (ingestion embeds each distinct text once, so a repeated sentence is one embedding),
        # and the kill once the first document is done, so the worker is busy with the others.
        docs = {
            f"bulk-{i}": " ".join(
                f"Bulk document {i}, paragraph {j}: topic {i * 31 + j} has {j * 7 + i} details "
                f"of its own, numbered {i}-{j}, filed under shelf {(i * j) % 13}."
                for j in range(60)
            )
            for i in range(16)
        }
        body = {"documents": [{"id": k, "text": v} for k, v in docs.items()]}
        r = self.call("POST", "/v1/documents", params={"collection": COLLECTION}, json=body)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        worker = self.cluster.pods[self.pods("ingestion-worker")[0]]
        deadline = time.monotonic() + 30
        while self.job(job_id)["documents_done"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # the tasks are taken and running
        self.cluster.podman("kill", "--signal", "KILL", worker.container)
        killed_at = time.monotonic()
        at_kill = self.job(job_id)
        # A job already finished when the worker died would prove nothing.
        assert at_kill["documents_done"] < len(docs), f"the job was done before the kill: {at_kill['state']}"
        job = self.wait_job(job_id, timeout_s=300)
        assert job["state"] == "succeeded", job
        r = self.call("GET", "/v1/collections", timeout=10)
        assert r.status_code == 200, f"GET /v1/collections: {r.status_code} {r.text}"
        sizes = {c["name"]: c["documents"] for c in r.json()["collections"]}
        assert sizes.get(COLLECTION) == len(DOCS) + len(docs), sizes
        return f"worker SIGKILLed; job finished {time.monotonic() - killed_at:.0f} s later, {sizes[COLLECTION]} documents"

    def redis_restarted(self) -> str:
        notes = []
        for component in ("redis-state", "redis-cache"):
            for name in self.pods(component):
                state = self.cluster.pods[name]
                with self.cluster.lock:  # not while the supervisor restarts it too
                    self.cluster.restart(state, "smoke: Redis restarted", force=True)
                self.cluster.wait_pod_ready(name)
                notes.append(name)
        # Keys and jobs live in the state Redis (AOF on a volume): the same key still works.
        deadline = time.monotonic() + 60
        while True:
            try:
                hits = self.search("vacation days", "hybrid")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert hits and hits[0]["document_id"] == "leave", hits
        # Up to 6 minutes: a task lost to a stale connection right after the restart is sent again
        # by the API's reconciler (140 s of silence with containers-values, plus its 30 s sweep).
        job = self.ingest({"after-restart": "Written after Redis came back: the queue works again."}, 360)
        assert job["state"] == "succeeded", job
        return f"restarted {', '.join(notes)}; the key, search and ingestion work again"


def run_all(cluster: Cluster) -> list[tuple[str, bool, str]]:
    smoke = Smoke(cluster)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("upload -> job -> searchable", smoke.upload_job_searchable),
        ("search in every mode", smoke.search_every_mode),
        ("chat over REST", smoke.chat_rest),
        ("chat over SSE", smoke.chat_sse),
        ("chat over WebSocket", smoke.chat_websocket),
        ("stream resumed on the other gateway", smoke.stream_resumed_on_other_gateway),
        ("worker SIGKILLed mid-ingest, nothing lost", smoke.worker_killed_mid_ingest),
        ("Redis restarted", smoke.redis_restarted),
    ]
    results = []
    for name, check in checks:
        started = time.monotonic()
        smoke.retried = []
        try:
            detail = check()
            ok = True
        except Exception as exc:  # every check runs; the verdict counts them all
            detail, ok = f"{type(exc).__name__}: {exc}", False
        if smoke.retried:
            detail += f" [retried {len(smoke.retried)}x: {'; '.join(smoke.retried[:3])}]"
        results.append((name, ok, detail))
        log.info("%s %s (%.1f s): %s", "PASS" if ok else "FAIL", name, time.monotonic() - started, detail)
        if not ok and not smoke.key:
            break  # without a key nothing else can run
    return results
