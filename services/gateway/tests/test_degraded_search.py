"""A degraded search answer (retrieval answered a hybrid search BM25-only: its embedder could not
embed the query in time) is relayed with its ``X-Search-Degraded`` header and never kept in the
edge tier: the same bytes again go to retrieval, not to this replica's memory. Real processes:
retrieval embeds through the testkit's fake OpenAI-compatible server, told to take seconds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

pytestmark = pytest.mark.integration


def fake_embeddings(run_service: ServiceStarter) -> RunningService:
    """The fake server, answering vectors of the store's dimension before retrieval checks it."""
    fake = run_service("fake-upstream", "ragfleet.testkit.fake_llm", "RAGFLEET_FAKE_UPSTREAM_")
    assert httpx.post(f"{fake.url}/_control/default", json={"embedding_dim": 384}).status_code == 200
    return fake


QUERY = {"query": "Which animal barks?", "collection": "docs", "mode": "hybrid", "top_k": 2}


async def test_a_degraded_answer_is_relayed_marked_and_never_kept_at_the_edge(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path, start_gateway, make_key
) -> None:
    fake = fake_embeddings(run_service)
    provider = {"EMBEDDING_PROVIDER": "openai", "EMBEDDING_URL": f"{fake.url}/v1", "EMBEDDING_MODEL": "fake"}
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"), "EMBEDDING_DIM": "384", **provider},
        ready_path="/readyz",
    )
    chunks = [
        {"id": "dogs:0", "document_id": "dogs", "text": "Dogs are loyal companions; they bark at strangers."},
        {"id": "cats:0", "document_id": "cats", "text": "Cats are small domesticated mammals that purr."},
    ]
    async with httpx.AsyncClient(timeout=60) as client:
        written = await client.post(
            f"{retrieval.url}/internal/v1/collections/docs/upsert",
            json={"chunks": chunks},
            headers={"X-Ragfleet-Tenant": "acme"},
        )
        assert written.status_code == 200, written.text
        gateway = start_gateway("gw", {"RETRIEVAL_URL": retrieval.url})
        key = await make_key("acme", ["docs"], rate_per_s=1000, burst=1000)
        # Every embedding now takes 3 s, far past the 100 ms a hybrid search gives its query.
        slow = await client.post(
            f"{fake.url}/_control/default", json={"latency_ms": 3000, "embedding_dim": 384}
        )
        assert slow.status_code == 200

        for _ in range(3):  # the same bytes each time: an edge hit would answer the repeats
            response = await client.post(f"{gateway.url}/v1/search", json=QUERY, headers={"X-API-Key": key})
            assert response.status_code == 200, response.text
            assert response.headers["x-search-degraded"] == "embedder_busy"
            assert response.headers["x-cache"] == "miss"
            body = response.json()
            assert body["degraded"] == "embedder_busy" and body["mode"] == "bm25"
            assert body["results"][0]["document_id"] == "dogs"
