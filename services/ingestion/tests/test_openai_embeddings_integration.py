"""Ingestion and search with the `openai` embedding provider, against a real OpenAI-compatible
server computing real embeddings (llm-proxy's built-in /v1/embeddings), all real processes.

Then the same collection, searched by a retrieval that embeds with another model, is refused
with 409 instead of answering with meaningless cosine scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragfleet.devstack.processes import ManagedProcess, free_port, python_module, wait_until
from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

pytestmark = pytest.mark.integration

TENANT = "acme"
DOCS = {
    "tea.md": b"# Green tea\n\nGreen tea is brewed at 80 degrees for two minutes, never with boiling water.\n",
    "rivers.md": b"# Rivers\n\nThe Danube flows through ten countries before it reaches the Black Sea.\n",
    "cats.md": b"# Cats\n\nCats purr when they are content. A purring cat is usually a happy cat.\n",
}


@pytest.fixture
def openai_stack(run_service: ServiceStarter, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    proxy = run_service("llm-proxy", "ragfleet.llm_proxy", "RAGFLEET_LLM_PROXY_", {"REDIS_URL": redis_url})
    provider = {
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_URL": f"{proxy.url}/v1",
        "EMBEDDING_MODEL": "all-minilm-l6-v2",
        "EMBEDDING_DIM": "384",
        "EMBEDDING_BATCH_SIZE": "2",  # three documents: more than one request per batch
    }
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "index"), "ACCESS_LOG": "false", **provider},
        ready_path="/readyz",
    )
    ingestion_env = {
        "REDIS_URL": redis_url,
        "RETRIEVAL_URL": retrieval.url,
        "ACCESS_LOG": "false",
        **provider,
    }
    api = run_service("ingestion", "ragfleet.ingestion", "RAGFLEET_INGESTION_", ingestion_env)
    worker_env = {f"RAGFLEET_INGESTION_{k}": v for k, v in ingestion_env.items()} | {
        "RAGFLEET_INGESTION_ENVIRONMENT": "development",
        "RAGFLEET_INGESTION_WORKER_CONCURRENCY": "1",
        "RAGFLEET_INGESTION_WORKER_METRICS_PORT": str(free_port()),
        "RAGFLEET_INGESTION_METRICS_DIR": str(tmp_path / "worker-metrics"),
    }
    worker = ManagedProcess(
        "worker", python_module("ragfleet.ingestion.worker"), tmp_path / "logs" / "worker.log", env=worker_env
    ).start()

    def answered() -> bool:
        try:
            return httpx.post(f"{api.url}/v1/worker-check", timeout=15).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answered, timeout_s=90, what="ingestion worker", process=worker)
    yield {"proxy": proxy, "retrieval": retrieval, "api": api, "run_service": run_service}
    worker.stop()


def _ingest(api: RunningService, collection: str) -> dict[str, Any]:
    with httpx.Client(base_url=api.url, headers={"X-Ragfleet-Tenant": TENANT}, timeout=60) as client:
        accepted = client.post(
            "/v1/documents",
            params={"collection": collection},
            files=[("files", (name, data, "text/markdown")) for name, data in DOCS.items()],
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _search(url: str, query: str, collection: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/search",
        json={"query": query, "collection": collection, "mode": "vector", "top_k": 3},
        headers={"X-Ragfleet-Tenant": TENANT},
        timeout=60,
    )


def test_ingestion_and_search_through_an_openai_compatible_server(
    openai_stack: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    job = _ingest(openai_stack["api"], "remote")
    assert job["state"] == "succeeded", job

    retrieval = openai_stack["retrieval"]
    response = _search(retrieval.url, "how hot should the water be for tea", "remote")
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["document_id"] == "tea.md"
    assert (
        _search(retrieval.url, "which river reaches the Black Sea", "remote").json()["results"][0][
            "document_id"
        ]
        == "rivers.md"
    )

    # The same index and Redis, served by a retrieval that embeds with the in-process ONNX model:
    # the collection was embedded by another model, so a vector search is refused, clearly.
    other = openai_stack["run_service"](
        "retrieval-onnx",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "index"), "ACCESS_LOG": "false"},
        ready_path="/readyz",
    )
    refused = _search(other.url, "how hot should the water be for tea", "remote")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "embedding_model_mismatch"
    assert "all-minilm-l6-v2" in error["message"] and "all-MiniLM-L6-v2-onnx-int8" in error["message"]
    # BM25 needs no vectors: still served.
    bm25 = httpx.post(
        f"{other.url}/v1/search",
        json={"query": "Danube", "collection": "remote", "mode": "bm25"},
        headers={"X-Ragfleet-Tenant": TENANT},
        timeout=30,
    )
    assert bm25.status_code == 200 and bm25.json()["results"][0]["document_id"] == "rivers.md"
    # And writing the other model's vectors into it is refused as well.
    vector = [0.0] * 383 + [1.0]
    write = httpx.post(
        f"{other.url}/internal/v1/collections/remote/upsert",
        json={
            "chunks": [{"id": "x:0", "document_id": "x", "text": "x", "vector": vector}],
            "model": "another-model",
        },
        headers={"X-Ragfleet-Tenant": TENANT},
        timeout=30,
    )
    assert write.status_code == 409 and write.json()["error"]["code"] == "embedding_model_mismatch"
