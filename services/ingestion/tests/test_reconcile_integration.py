"""A task the broker lost (the document stays queued with nothing left to run it) is sent again by
the API's reconciler and the document ends indexed; lost every time, it ends failed with a reason."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis

pytestmark = pytest.mark.integration


def reconciling_api(stack: Any, run_service: Any, **settings: str) -> Any:
    """A second ingestion API on the same Redis whose reconciler looks every half second."""
    env = {**stack.worker_env, "RECONCILE_INTERVAL_S": "0.5", "RECONCILE_AFTER_S": "2", **settings}
    return run_service("ingestion-reconciling", "ragfleet.ingestion", "RAGFLEET_INGESTION_", env)


def accept(api: Any, document_id: str) -> str:
    response = httpx.post(
        f"{api.url}/v1/documents",
        params={"collection": "lost"},
        json={"documents": [{"id": document_id, "text": f"The {document_id} lighthouse stands on a cliff."}]},
        headers={"X-Ragfleet-Tenant": "acme"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_a_lost_task_is_sent_again_and_the_document_ends_indexed(
    stack: Any, run_service: Any, redis_url: str
) -> None:
    api = reconciling_api(stack, run_service)
    broker = redis.Redis.from_url(redis_url)
    stack.worker.stop()
    job_id = accept(api, "resent")
    broker.delete("ingestion", "ingestion.small")  # the queues: the broker no longer has the task
    time.sleep(3)  # silent longer than reconcile_after_s, with nothing to run it
    stack.start_worker()

    job = stack.wait_for_job(job_id, timeout_s=120)
    assert job["state"] == "succeeded", job
    with stack.retrieval_client() as client:
        assert client.get("/internal/v1/collections/lost/documents/resent").json()["chunks"] == 1
    assert broker.zscore("ingestion:pending", f"{job_id}:resent") is None


def test_a_task_lost_every_time_ends_failed_with_a_reason(
    stack: Any, run_service: Any, redis_url: str
) -> None:
    api = reconciling_api(stack, run_service, MAX_RESUBMITS="1")
    broker = redis.Redis.from_url(redis_url)
    stack.worker.stop()
    job_id = accept(api, "doomed")
    deadline = time.monotonic() + 60
    with stack.client() as client:
        while time.monotonic() < deadline:
            broker.delete("ingestion", "ingestion.small")  # every copy sent is lost too
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] == "failed":
                break
            time.sleep(0.2)
    (doc,) = job["documents"]
    assert (doc["state"], doc["code"]) == ("failed", "task_lost"), job
    assert "sent 2 times" in doc["error"]
    assert broker.get(f"ingestion:payload:{job_id}:doomed") is None
