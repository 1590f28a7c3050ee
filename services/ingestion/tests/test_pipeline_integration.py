"""Documents through the whole path: API → Redis/Celery → worker → retrieval, all real processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).parents[1] / "sample-corpus"
TENANT = "acme"


def search(stack: Any, query: str, collection: str = "docs") -> list[dict[str, Any]]:
    with stack.retrieval_client() as client:
        response = client.post("/v1/search", json={"query": query, "collection": collection, "top_k": 5})
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results


def collection_chunks(stack: Any, collection: str) -> int:
    with stack.retrieval_client() as client:
        for entry in client.get("/v1/collections").json()["collections"]:
            if entry["name"] == collection:
                return int(entry["chunks"])
    return 0


def post_files(stack: Any, files: list[tuple[str, bytes, str]], collection: str = "docs") -> httpx.Response:
    with stack.client() as client:
        return client.post(
            "/v1/documents",
            params={"collection": collection},
            files=[("files", (name, data, media)) for name, data, media in files],
        )


def test_mixed_files_are_searchable_and_reingest_is_a_no_op(stack: Any) -> None:
    files = [
        (
            "ragfleet-operations-guide.pdf",
            (CORPUS / "ragfleet-operations-guide.pdf").read_bytes(),
            "application/pdf",
        ),
        (
            "cats.md",
            b"# Cats\n\nCats purr when they are content. A purring cat is a happy cat.\n",
            "text/markdown",
        ),
        (
            "tea.html",
            b"<html><head><style>p{color:red}</style><script>var secret='zzz-script-text';</script></head>"
            b"<body><h1>Green tea</h1><p>Green tea is brewed at 80 degrees for two minutes.</p></body></html>",
            "text/html",
        ),
        (
            "rivers.txt",
            b"The Danube flows through ten countries before it reaches the Black Sea.",
            "text/plain",
        ),
    ]
    accepted = post_files(stack, files)
    assert accepted.status_code == 202, accepted.text
    job = stack.wait_for_job(accepted.json()["job_id"])
    assert job["state"] == "succeeded", job
    assert {d["document_id"] for d in job["documents"]} == {
        "ragfleet-operations-guide.pdf",
        "cats.md",
        "tea.html",
        "rivers.txt",
    }

    assert search(stack, "how long to brew green tea")[0]["document_id"] == "tea.html"
    assert search(stack, "which river reaches the Black Sea")[0]["document_id"] == "rivers.txt"
    assert search(stack, "scale ingestion workers on queue depth with KEDA")[0]["document_id"] == (
        "ragfleet-operations-guide.pdf"
    )
    assert not any("zzz-script-text" in r["text"] for r in search(stack, "secret script variable"))

    with stack.client() as client:
        doc = client.get("/v1/documents/cats.md", params={"collection": "docs"}).json()
    assert doc["chunks"] >= 1 and doc["content_hash"]

    # The same files again: every document is recognised as unchanged, nothing is rewritten.
    again = stack.wait_for_job(post_files(stack, files).json()["job_id"])
    assert again["state"] == "succeeded"
    assert {d["state"] for d in again["documents"]} == {"unchanged"}


def test_replacing_a_document_with_fewer_chunks_leaves_no_leftovers(stack: Any) -> None:
    long_text = " ".join(f"Sentence {i} is about lighthouse keeper number {i}." for i in range(120))
    with stack.client() as client:
        job = client.post(
            "/v1/documents",
            params={"collection": "docs"},
            json={"documents": [{"id": "keepers", "text": long_text}]},
        ).json()
        assert stack.wait_for_job(job["job_id"])["state"] == "succeeded"
        before = client.get("/v1/documents/keepers", params={"collection": "docs"}).json()["chunks"]
        assert before > 3
        job = client.post(
            "/v1/documents",
            params={"collection": "docs"},
            json={"documents": [{"id": "keepers", "text": "Only one short sentence now."}]},
        ).json()
        assert stack.wait_for_job(job["job_id"])["state"] == "succeeded"
        assert client.get("/v1/documents/keepers", params={"collection": "docs"}).json()["chunks"] == 1
    assert collection_chunks(stack, "docs") == 1


def test_delete_removes_every_chunk_from_search(stack: Any) -> None:
    text = " ".join(f"The zebrafish fact number {i} concerns fin regeneration." for i in range(60))
    with stack.client() as client:
        job = client.post(
            "/v1/documents",
            params={"collection": "docs"},
            json={
                "documents": [
                    {"id": "zebrafish", "text": text},
                    {"id": "other", "text": "Owls hunt at night."},
                ]
            },
        ).json()
        assert stack.wait_for_job(job["job_id"])["state"] == "succeeded"
        assert search(stack, "zebrafish fin regeneration")[0]["document_id"] == "zebrafish"  # now cached

        deleted = client.delete("/v1/documents/zebrafish", params={"collection": "docs"})
        assert deleted.status_code == 200 and deleted.json()["deleted_chunks"] > 1
        assert not any(r["document_id"] == "zebrafish" for r in search(stack, "zebrafish fin regeneration"))
        assert client.get("/v1/documents/zebrafish", params={"collection": "docs"}).status_code == 404
        assert client.delete("/v1/documents/zebrafish", params={"collection": "docs"}).status_code == 404


def test_tenants_do_not_see_each_others_jobs_or_documents(stack: Any) -> None:
    with stack.client("acme") as acme, stack.client("globex") as globex:
        job = acme.post(
            "/v1/documents", json={"documents": [{"id": "memo", "text": "Acme's private memo."}]}
        ).json()
        assert stack.wait_for_job(job["job_id"], tenant="acme")["state"] == "succeeded"
        assert globex.get(f"/v1/jobs/{job['job_id']}").status_code == 404
        assert globex.get("/v1/documents/memo").status_code == 404
        assert acme.get("/v1/documents/memo").status_code == 200

    # The queue depth an autoscaler reads, sampled by the API from the broker's Redis list.
    metrics = httpx.get(f"{stack.api.url}/metrics").text
    assert 'ragfleet_ingestion_queue_depth{queue="ingestion"} 0.0' in metrics


def test_sigkilled_worker_mid_job_loses_and_duplicates_nothing(stack: Any) -> None:
    documents = [
        {
            "id": f"doc-{n}",
            "text": " ".join(f"Document {n} talks about topic {n}, sentence {i}." for i in range(80)),
        }
        for n in range(24)
    ]
    with stack.client() as client:
        job_id = client.post(
            "/v1/documents", params={"collection": "crash"}, json={"documents": documents}
        ).json()["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["documents_done"] >= 2:
                break
            time.sleep(0.05)
        assert job["state"] == "running", job

    stack.worker.signal(signal.SIGKILL)
    stack.worker.popen.wait(5)
    stack.start_worker()

    job = stack.wait_for_job(job_id, timeout_s=180)
    assert job["state"] == "succeeded", job
    expected = 0
    with stack.retrieval_client() as retrieval:
        for doc in job["documents"]:
            indexed = retrieval.get(f"/internal/v1/collections/crash/documents/{doc['document_id']}").json()
            assert indexed["chunks"] == doc["chunks"], doc
            expected += doc["chunks"]
    assert collection_chunks(stack, "crash") == expected


def test_hostile_inputs_get_clear_errors_and_the_worker_keeps_running(stack: Any) -> None:
    with stack.client() as client:
        empty = post_files(stack, [("empty.txt", b"", "text/plain")])
        assert empty.status_code == 400 and "empty.txt" in empty.json()["error"]["message"]

        huge = post_files(stack, [("huge.txt", b"a" * (50 * 1024 * 1024), "text/plain")])
        assert huge.status_code == 413

        exe = post_files(stack, [("tool.exe", b"MZ\x90\x00", "application/octet-stream")])
        assert exe.status_code == 415 and "tool.exe" in exe.json()["error"]["message"]

        blank = client.post("/v1/documents", json={"documents": [{"id": "blank", "text": "   "}]})
        assert blank.status_code == 400 and "blank" in blank.json()["error"]["message"]

        deep = b"<html><body>" + b"<div>" * 50_000 + b"deep" + b"</div>" * 50_000 + b"</body></html>"
        accepted = post_files(
            stack,
            [
                ("disguised.txt", bytes(range(256)) * 64, "text/plain"),
                ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1") * 10, "text/plain"),
                ("fake.pdf", b"this is not a pdf at all", "application/pdf"),
                ("scanned.pdf", (DATA / "scanned-no-text-layer.pdf").read_bytes(), "application/pdf"),
                ("deep.html", deep, "text/html"),
                ("fine.txt", b"A perfectly fine document about sailing boats.", "text/plain"),
            ],
        )
        assert accepted.status_code == 202, accepted.text
        job = stack.wait_for_job(accepted.json()["job_id"])
    codes = {d["document_id"]: (d["state"], d.get("code")) for d in job["documents"]}
    assert codes == {
        "disguised.txt": ("failed", "binary_content"),
        "latin1.txt": ("failed", "undecodable"),
        "fake.pdf": ("failed", "invalid_pdf"),
        "scanned.pdf": ("failed", "no_text_layer"),
        "deep.html": ("failed", "html_too_deep"),
        "fine.txt": ("succeeded", None),
    }
    assert job["state"] == "failed" and job["documents_failed"] == 5
    assert all(d["error"] for d in job["documents"] if d["state"] == "failed")
    assert stack.worker.alive()
    assert httpx.post(f"{stack.api.url}/v1/worker-check", timeout=15).status_code == 200

    metrics = httpx.get(
        f"http://127.0.0.1:{stack.worker_env['RAGFLEET_INGESTION_WORKER_METRICS_PORT']}/metrics"
    ).text
    assert 'ragfleet_ingestion_failures_total{reason="no_text_layer"} 1.0' in metrics


def test_cli_ingests_the_sample_corpus_and_waits(stack: Any) -> None:
    import subprocess
    import sys

    argv = [
        sys.executable,
        "-m",
        "ragfleet.ingestion.cli",
        "ingest",
        str(CORPUS),
        "--url",
        stack.api.url,
        "--tenant",
        TENANT,
        "--collection",
        "corpus",
        "--batch-files",
        "10",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "0 failed" in done.stdout
    assert search(stack, "what does the circuit breaker do when half-open", "corpus")[0]["document_id"] == (
        "tech-circuit-breaker.md"
    )


def test_retrieval_outage_is_retried_then_dead_lettered(
    stack: Any, run_service: Any, redis_url: str, tmp_path: Path
) -> None:
    import redis

    port = stack.retrieval.port
    stack.retrieval.process.stop()
    with stack.client() as client:
        job_id = client.post(
            "/v1/documents", json={"documents": [{"id": "patient", "text": "Waits for retrieval."}]}
        ).json()["job_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["documents"][0]["state"] != "retrying":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # Back within the retry budget: the document gets in.
        stack.retrieval = run_service(
            "retrieval-again",
            "ragfleet.retrieval",
            "RAGFLEET_RETRIEVAL_",
            {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "index"), "EMBED_THREADS": "1"},
            port=port,
        )
        assert stack.wait_for_job(job_id)["state"] == "succeeded"

        # Gone for good: bounded retries, then a dead letter visible in the job.
        stack.retrieval.process.stop()
        job_id = client.post(
            "/v1/documents", json={"documents": [{"id": "doomed", "text": "Never indexed."}]}
        ).json()["job_id"]
        job = stack.wait_for_job(job_id, timeout_s=120)
    doc = job["documents"][0]
    assert (doc["state"], doc["code"], doc["dead_lettered"]) == ("failed", "retries_exhausted", True)
    records = redis.Redis.from_url(redis_url).lrange("ingestion:deadletter", 0, -1)
    assert any(b'"document_id":"doomed"' in record for record in records)
    assert stack.worker.alive()


def test_folder_through_the_gateway_then_search_finds_it(
    stack: Any, run_service: Any, redis_url: str, tmp_path: Path
) -> None:
    import asyncio
    import shutil
    import subprocess
    import sys

    from redis.asyncio import Redis

    from ragfleet.gateway.keys import KeyStore

    async def create_key() -> str:
        client = Redis.from_url(redis_url)
        try:
            key, _ = await KeyStore(client).create(TENANT, ["handbook"], name="ingestion-test")
            return key
        finally:
            await client.aclose()

    api_key = asyncio.run(create_key())
    gateway = run_service(
        "gateway",
        "ragfleet.gateway",
        "RAGFLEET_GATEWAY_",
        {"REDIS_URL": redis_url, "RETRIEVAL_URL": stack.retrieval.url, "INGESTION_URL": stack.api.url},
    )
    folder = tmp_path / "handbook"
    shutil.copytree(CORPUS / "ragfleet", folder)
    shutil.copy(CORPUS / "vector-search-primer.pdf", folder)
    argv = [
        sys.executable,
        "-m",
        "ragfleet.ingestion.cli",
        "ingest",
        str(folder),
        "--url",
        gateway.url,
        "--api-key",
        api_key,
        "--collection",
        "handbook",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr

    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
    ) as client:
        response = client.post(
            "/v1/search", json={"query": "cookie affinity for WebSocket clients", "collection": "handbook"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["document_id"] == "deployment.html"
        response = client.post(
            "/v1/search",
            json={"query": "HNSW ef parameter trades recall for speed", "collection": "handbook"},
        )
        assert response.json()["results"][0]["document_id"] == "vector-search-primer.pdf"

    # One trace from the gateway's request to the worker's task spans (traceparent in Celery headers).
    import re

    gateway_log = (tmp_path / "logs" / "gateway.log").read_text()
    upload = next(line for line in gateway_log.splitlines() if "POST /v1/documents" in line)
    trace_id = re.search(r'"trace_id":"([0-9a-f]{32})"', upload)
    assert trace_id is not None
    worker_log = (stack.log_dir / "worker-0.log").read_text()
    assert any(trace_id.group(1) in line and "ingest_document" in line for line in worker_log.splitlines())
