"""What a document costs the workers: identical chunk texts are embedded once, and a small
document is indexed while long ones hold every bulk worker slot (the small-document lane).

Real API, Redis, Celery worker (with its small-lane child) and retrieval, as the rest of the suite.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def worker_metric(stack: Any, name: str) -> float:
    port = stack.worker_env["RAGFLEET_INGESTION_WORKER_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_identical_chunks_are_embedded_once(stack: Any) -> None:
    # One character repeated: every chunk is the same 400 characters under the same title.
    before = worker_metric(stack, "ragfleet_ingestion_texts_embedded_total")
    with stack.client() as client:
        accepted = client.post(
            "/v1/documents",
            params={"collection": "dedup"},
            json={"documents": [{"id": "brackets", "text": "[" * 40_000}]},
        )
        assert accepted.status_code == 202, accepted.text
        job = stack.wait_for_job(accepted.json()["job_id"])
        assert job["state"] == "succeeded", job
        assert job["chunks"] == 100
        # Each chunk is still its own entry, with its own position and the shared vector.
        document = client.get("/v1/documents/brackets", params={"collection": "dedup"}).json()
        assert document["chunks"] == 100
    assert worker_metric(stack, "ragfleet_ingestion_texts_embedded_total") - before == 1
    assert worker_metric(stack, "ragfleet_ingestion_chunks_total") >= 100

    with stack.retrieval_client() as client:
        found = client.post(
            "/v1/search", json={"query": "[[[[", "collection": "dedup", "mode": "vector", "top_k": 3}
        )
    assert found.status_code == 200, found.text
    assert {hit["document_id"] for hit in found.json()["results"]} == {"brackets"}


def long_document(name: str) -> str:
    """About 280 chunks of distinct text at this stack's 400 characters: tens of seconds of embedding."""
    return " ".join(
        f"Entry {n} of the {name} ledger: cargo {n * 7 % 101} left port {n % 13}." for n in range(1_900)
    )


# Five headed sections of ~250 characters: 1.3 KB (estimated 4 chunks, the lane's limit here) that
# chunk into 5, one per section (a section that does not fit the chunk being built starts its own).
SECTIONED = "\n\n".join(
    f"# Part {n}\n\n" + " ".join(f"Section {n} sentence {i} is about tides." for i in range(6))
    for n in range(5)
)


def documents(stack: Any, job_id: str) -> dict[str, dict[str, Any]]:
    with stack.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    return {d["document_id"]: d for d in job["documents"]}


def post(stack: Any, docs: list[dict[str, str]]) -> str:
    with stack.client() as client:
        accepted = client.post("/v1/documents", params={"collection": "lanes"}, json={"documents": docs})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["job_id"])


@pytest.mark.parametrize("stack_settings", [{"RAGFLEET_INGESTION_SMALL_LANE_MAX_CHUNKS": "4"}], indirect=True)
def test_a_small_document_is_indexed_while_long_ones_hold_every_bulk_process(stack: Any) -> None:
    assert len(SECTIONED.encode()) <= 4 * (400 - 60) < len(long_document("x").encode())
    long_job = post(
        stack, [{"id": "long-a", "text": long_document("a")}, {"id": "long-b", "text": long_document("b")}]
    )
    deadline = time.monotonic() + 120
    while {d["state"] for d in documents(stack, long_job).values()} != {"embedding"}:
        assert time.monotonic() < deadline, documents(stack, long_job)
        time.sleep(0.2)

    # Both bulk processes (this stack's worker_concurrency) are embedding a long document now.
    small_job = post(
        stack,
        [
            {"id": "sectioned", "text": SECTIONED, "format": "markdown"},
            {"id": "small", "text": "The lighthouse on Skerry Point was automated in 1987."},
        ],
    )
    moved_note = None
    while (small := documents(stack, small_job)["small"])["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, small
        note = documents(stack, small_job)["sectioned"].get("error") or ""
        moved_note = moved_note or (note if "moved to the bulk lane" in note else None)
        time.sleep(0.1)
    longs = documents(stack, long_job)
    assert small["state"] == "succeeded", small
    # Indexed while neither long document had ended: it did not wait for a bulk process.
    assert {d["state"] for d in longs.values()} <= {"embedding", "upserting"}, longs

    # The small lane took the sectioned document, found 5 texts to embed where it takes 4, and moved
    # it to the bulk lane, where it ends indexed after a long one.
    sectioned = stack.wait_for_job(small_job, timeout_s=180)
    assert sectioned["state"] == "succeeded", sectioned
    assert moved_note and "5 texts to embed" in moved_note and "small_lane_max_chunks" in moved_note
    assert stack.wait_for_job(long_job, timeout_s=180)["state"] == "succeeded"

    metrics = httpx.get(f"{stack.api.url}/metrics").text
    assert 'ragfleet_ingestion_queue_depth{queue="ingestion.small"}' in metrics
