"""Bounded work per document, through the real API, Redis, Celery worker and retrieval.

Hostile documents must each end (failed with a code, or indexed) quickly, never pin the worker,
never come back from the broker, and never keep a restarted worker from answering its check.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest
import redis

pytestmark = pytest.mark.integration

NORMAL = ("normal.txt", b"The lighthouse on Skerry Point was automated in 1987.", "text/plain")


def hostile_documents() -> list[tuple[str, bytes, str]]:
    """The shapes that pinned the worker for minutes, and a few more of the same families."""
    return [
        ("unclosed-tags.html", b"<a " * 400_000, "text/html"),
        ("unclosed-tag.html", b"<div" + b"x" * 1_500_000, "text/html"),
        ("heading-spaces.md", b"# a" + b" " * 200_000 + b"#x\n", "text/markdown"),
        ("heading-tabs.md", b"#" + b" \t" * 500_000, "text/markdown"),
        ("deep.html", b"<div>" * 100_000 + b"x" + b"</div>" * 100_000, "text/html"),
        (
            "misnested.html",
            b"".join(b"<b id=%d>" % i for i in range(900)) + b"<p>x</p>" * 150_000,
            "text/html",
        ),
        ("huge-line.txt", b"y" * 1_800_000, "text/plain"),
        ("tiny-lines.md", b"a.\n" * 600_000, "text/markdown"),
        ("tiny-sentences.txt", b"a. " * 600_000, "text/plain"),
        ("spaces.txt", b"\n" + b" " * 1_800_000 + b".\n", "text/plain"),
        ("pdf-garbage.pdf", b"%PDF-1.7\n" + b"1 0 obj << /Kids [" * 50_000, "application/pdf"),
    ]


def post_files(stack: Any, files: list[tuple[str, bytes, str]], collection: str = "bounded") -> str:
    with stack.client() as client:
        response = client.post(
            "/v1/documents",
            params={"collection": collection},
            files=[("files", (name, data, media)) for name, data, media in files],
            timeout=60,
        )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def final_states(job: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {d["document_id"]: (d["state"], d.get("code")) for d in job["documents"]}


def assert_every_document_ended_clearly(job: dict[str, Any]) -> None:
    for doc in job["documents"]:
        # unchanged: a redelivered copy found its document already indexed (a killed worker had
        # written it to retrieval but not yet its job record) — an end state like succeeded.
        assert doc["state"] in ("succeeded", "unchanged", "failed"), doc
        if doc["state"] == "failed":
            assert doc["code"] and doc["error"], doc
            assert not doc.get("dead_lettered"), doc  # a document error, not a worker crash


def test_hostile_documents_end_within_a_minute_and_a_normal_one_gets_in(stack: Any) -> None:
    started = time.monotonic()
    job = stack.wait_for_job(post_files(stack, [*hostile_documents(), NORMAL]), timeout_s=60)
    assert_every_document_ended_clearly(job)
    states = final_states(job)
    assert states["normal.txt"] == ("succeeded", None)
    assert states["deep.html"] == ("failed", "html_too_deep")
    assert states["pdf-garbage.pdf"][0] == "failed"
    assert time.monotonic() - started < 60
    assert stack.worker.alive()
    assert httpx.post(f"{stack.api.url}/v1/worker-check", timeout=15).status_code == 200


@pytest.mark.parametrize(
    "stack_settings",
    [{"RAGFLEET_INGESTION_PARSE_TIME_BASE_S": "0.2", "RAGFLEET_INGESTION_PARSE_TIME_PER_MB_S": "0"}],
    indirect=True,
)
def test_a_document_over_its_parse_budget_fails_once_with_a_clear_error(stack: Any, redis_url: str) -> None:
    # 2 MB of paragraphs parse in about a second here: five times the budget this stack is given.
    slow = ("slow.html", b"<p>word</p>" * 180_000, "text/html")
    job_id = post_files(stack, [slow, NORMAL])
    job = stack.wait_for_job(job_id, timeout_s=60)
    states = final_states(job)
    assert states == {"slow.html": ("failed", "parse_timeout"), "normal.txt": ("succeeded", None)}
    slow_doc = next(d for d in job["documents"] if d["document_id"] == "slow.html")
    assert "within 0.2s" in slow_doc["error"] and "parse_time_base_s" in slow_doc["error"]

    # Once: acknowledged, nothing left for the broker to deliver again, the worker still serving.
    client = redis.Redis.from_url(redis_url)
    time.sleep(3)
    assert client.llen("ingestion") == client.llen("ingestion.small") == client.hlen("unacked") == 0
    with stack.client() as api:
        again = api.get(f"/v1/jobs/{job_id}").json()
    assert next(d for d in again["documents"] if d["document_id"] == "slow.html")["attempt"] == 1
    assert httpx.post(f"{stack.api.url}/v1/worker-check", timeout=15).status_code == 200
    with stack.client() as api:
        follow_up = api.post("/v1/documents", json={"documents": [{"id": "after", "text": "Still working."}]})
    assert stack.wait_for_job(follow_up.json()["job_id"], timeout_s=60)["state"] == "succeeded"


def test_a_worker_restarted_with_hostile_documents_queued_starts_and_finishes_them(stack: Any) -> None:
    job_id = post_files(stack, [*hostile_documents(), NORMAL])
    time.sleep(1.0)  # the worker has taken some of them
    stack.worker.signal(signal.SIGKILL)
    stack.worker.popen.wait(5)
    # start_worker waits for the worker check: it must get through with the documents queued.
    stack.start_worker()
    job = stack.wait_for_job(job_id, timeout_s=90)
    assert_every_document_ended_clearly(job)
    assert final_states(job)["normal.txt"][0] in ("succeeded", "unchanged")


def test_collections_are_capped_per_tenant_and_a_deleted_one_is_gone_everywhere(stack: Any) -> None:
    with stack.retrieval_client() as retrieval:
        for n in range(4):  # with "bounded" below: the stack's limit of 5
            chunk = {"id": f"c{n}:0", "document_id": f"c{n}", "text": f"collection {n} text"}
            written = retrieval.post(f"/internal/v1/collections/c{n}/upsert", json={"chunks": [chunk]})
            assert written.status_code == 200, written.text
    job = stack.wait_for_job(post_files(stack, [NORMAL]), timeout_s=60)
    assert job["state"] == "succeeded"

    # A sixth collection: refused with the limit named, by retrieval and in ingestion's job.
    with stack.retrieval_client() as retrieval:
        chunk = {"id": "x:0", "document_id": "x", "text": "one too many"}
        refused = retrieval.post("/internal/v1/collections/sixth/upsert", json={"chunks": [chunk]})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "too_many_collections"
    assert "max_collections_per_tenant" in refused.json()["error"]["message"]
    job = stack.wait_for_job(post_files(stack, [NORMAL], collection="sixth"), timeout_s=60)
    assert "max_collections_per_tenant" in job["documents"][0]["error"]

    # Deleting one makes room, and its chunks are gone from search, listings and the index.
    with stack.client() as api:
        deleted = api.delete("/v1/collections/bounded")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted_chunks"] >= 1
        assert api.delete("/v1/collections/bounded").status_code == 404
        assert api.get("/v1/documents/normal.txt", params={"collection": "bounded"}).status_code == 404
    with stack.retrieval_client() as retrieval:
        searched = retrieval.post("/v1/search", json={"query": "lighthouse", "collection": "bounded"})
        assert searched.status_code == 404
        names = [c["name"] for c in retrieval.get("/v1/collections").json()["collections"]]
        assert "bounded" not in names
    job = stack.wait_for_job(post_files(stack, [NORMAL], collection="sixth"), timeout_s=60)
    assert job["state"] == "succeeded"
