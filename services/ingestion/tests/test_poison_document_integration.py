"""A poison document — one whose worker process dies each time it runs it (an OOM kill, a native
crash) — fails once with a reason after ``max_worker_crashes`` deliveries and is never delivered
again; the worker keeps serving the documents behind it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

pytestmark = pytest.mark.integration

# ~280 chunks at this stack's 400 characters: embedding them keeps a pool process busy for seconds.
POISON = " ".join(
    f"Fact {n}: the keeper of lighthouse {n % 37} logged the weather at dawn." for n in range(1_600)
)


def pool_processes(worker_pid: int) -> list[int]:
    """The Celery pool's processes: the children of the worker's main process."""
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def document(stack: Any, job_id: str) -> dict[str, Any]:
    with stack.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    return next(d for d in job["documents"] if d["document_id"] == "poison")


def test_a_document_that_kills_its_worker_process_fails_once_and_is_not_redelivered(
    stack: Any, redis_url: str
) -> None:
    with stack.client() as client:
        accepted = client.post("/v1/documents", json={"documents": [{"id": "poison", "text": POISON}]})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    kills, killed_at, deadline = 0, 0.0, time.monotonic() + 240
    while (doc := document(stack, job_id))["state"] != "failed":
        assert time.monotonic() < deadline, f"still {doc} after {kills} kills"
        if doc["state"] == "embedding" and doc["updated_at"] > killed_at:  # a delivery mid-work
            for pid in pool_processes(stack.worker.pid):  # as the kernel's OOM killer would
                os.kill(pid, signal.SIGKILL)
            kills, killed_at = kills + 1, time.time()
        time.sleep(0.1)

    assert doc["code"] == "worker_crashed" and doc.get("dead_lettered"), doc
    assert "worker died 3 times" in doc["error"], doc
    assert kills == 3, kills
    # Once: nothing left in the broker to deliver it again, and the worker serves what comes next.
    broker = redis.Redis.from_url(redis_url)
    time.sleep(3)
    assert broker.llen("ingestion") == broker.llen("ingestion.small") == broker.hlen("unacked") == 0
    assert document(stack, job_id) == doc
    assert stack.worker.alive()
    assert httpx.post(f"{stack.api.url}/v1/worker-check", timeout=15).status_code == 200
    with stack.client() as client:
        after = client.post("/v1/documents", json={"documents": [{"id": "after", "text": "Still serving."}]})
    assert stack.wait_for_job(after.json()["job_id"], timeout_s=90)["state"] == "succeeded"
