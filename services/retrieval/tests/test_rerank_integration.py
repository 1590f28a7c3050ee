"""The remote rerank stage against a real HTTP server speaking the rerank protocols and computing
real scores (ragfleet.testkit.rerank_server: MiniLM cosines, in its own process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ragfleet.testkit.pytest_plugin import ServiceStarter

from .conftest import start_retrieval

pytestmark = pytest.mark.integration

TENANT = {"X-Ragfleet-Tenant": "acme"}
# BM25 alone puts "brew" (the word) first; a relevance model puts the tea instructions first.
CHUNKS = [
    ("brew", "Brew is also the name of a package manager; brew install adds software, brew brew brew."),
    ("tea", "Green tea steeps at 80 degrees for two minutes; boiling water makes it bitter."),
    ("coffee", "Espresso is pressed through finely ground coffee at nine bars of pressure."),
]


@pytest.mark.parametrize("api", ["cohere", "tei"])
def test_rerank_rescores_the_fused_top_results(
    api: str, run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    reranker = run_service("rerank", "ragfleet.testkit.rerank_server", "RAGFLEET_RERANK_SERVER_")
    url = f"{reranker.url}/v1" if api == "cohere" else reranker.url
    retrieval = start_retrieval(
        run_service,
        redis_url,
        tmp_path / "data",
        RERANK_URL=url,
        RERANK_API=api,
        SEMANTIC_CACHE_THRESHOLD="0",
    )
    with httpx.Client(base_url=retrieval.url, headers=TENANT, timeout=60) as client:
        chunks = [{"id": f"{d}:0", "document_id": d, "text": t} for d, t in CHUNKS]
        assert client.post("/internal/v1/collections/docs/upsert", json={"chunks": chunks}).status_code == 200
        question = {"query": "how to brew tea", "collection": "docs", "mode": "bm25", "top_k": 3}
        plain = client.post("/v1/search", json=question).json()["results"]
        assert plain[0]["document_id"] == "brew"

        reranked = client.post("/v1/search", json={**question, "rerank": True})
        assert reranked.status_code == 200, reranked.text
        results = reranked.json()["results"]
        assert results[0]["document_id"] == "tea"
        assert results[0]["score"] > results[1]["score"]  # the reranker's scores are reported
        # Cached with the search: the same request again is a hit, and the server is not asked again.
        again = client.post("/v1/search", json={**question, "rerank": True})
        assert again.headers["x-cache"] == "hit-l1" and again.json()["results"] == results
        assert len(httpx.get(f"{reranker.url}/received").json()) == 1
        assert "ragfleet_retrieval_rerank_duration_seconds_count" in client.get("/metrics").text

    reranker.process.stop()  # a reranker that is down is a clear 503, not a silent plain ranking
    with httpx.Client(base_url=retrieval.url, headers=TENANT, timeout=60) as client:
        down = client.post("/v1/search", json={"query": "tea", "collection": "docs", "rerank": True})
        assert down.status_code == 503 and down.json()["error"]["code"] == "rerank_unavailable"


def test_rerank_without_a_reranker_is_a_clear_400(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"), "EMBED_THREADS": "1"},
        ready_path="/readyz",
    )
    response = httpx.post(
        f"{retrieval.url}/v1/search", json={"query": "tea", "rerank": True}, headers=TENANT, timeout=30
    )
    assert response.status_code == 400 and "no reranker is configured" in response.json()["error"]["message"]


def test_a_collection_can_rerank_by_default(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    reranker = run_service("rerank", "ragfleet.testkit.rerank_server", "RAGFLEET_RERANK_SERVER_")
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {
            "REDIS_URL": redis_url,
            "DATA_DIR": str(tmp_path / "data"),
            "EMBED_THREADS": "1",
            "RERANK_URL": f"{reranker.url}/v1",
            "SEMANTIC_CACHE_THRESHOLD": "0",
        },
        ready_path="/readyz",
    )
    with httpx.Client(base_url=retrieval.url, headers=TENANT, timeout=60) as client:
        chunks = [{"id": f"{d}:0", "document_id": d, "text": t} for d, t in CHUNKS]
        for collection in ("tickets", "logs"):
            upsert = client.post(f"/internal/v1/collections/{collection}/upsert", json={"chunks": chunks})
            assert upsert.status_code == 200
        settings = "/internal/v1/collections/tickets/settings"
        assert client.get(settings).json()["settings"] == {"rerank": None, "rerank_depth": None}
        question = {"query": "how to brew tea", "collection": "tickets", "mode": "bm25", "top_k": 3}
        assert client.post("/v1/search", json=question).json()["results"][0]["document_id"] == "brew"

        put = client.put(settings, json={"rerank": True, "rerank_depth": 2})
        assert put.status_code == 200, put.text
        assert client.get(settings).json()["settings"] == {"rerank": True, "rerank_depth": 2}
        # The same request again: not the cached plain ranking (the change bumped the version).
        reranked = client.post("/v1/search", json=question)
        assert reranked.headers["x-cache"] == "miss"
        assert reranked.json()["results"][0]["document_id"] == "tea"
        assert httpx.get(f"{reranker.url}/received").json()[-1]["documents"] == 2  # the collection's depth
        # The request still decides when it says; another collection keeps the service default.
        assert (
            client.post("/v1/search", json={**question, "rerank": False}).json()["results"][0]["document_id"]
            == "brew"
        )
        other = client.post("/v1/search", json={**question, "collection": "logs"}).json()["results"]
        assert other[0]["document_id"] == "brew"

        bad = client.put(settings, json={"rerank": "sometimes"})
        assert bad.status_code == 422 and "rerank" in bad.text
        assert client.put(settings, json={"rerank_depth": 1}).status_code == 422
        missing = client.put("/internal/v1/collections/nope/settings", json={"rerank": True})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "collection_not_found"

        # Deleting the collection forgets its settings: made again, it starts with none.
        assert client.delete("/internal/v1/collections/tickets").status_code == 200
        assert (
            client.post("/internal/v1/collections/tickets/upsert", json={"chunks": chunks}).status_code == 200
        )
        assert client.get(settings).json()["settings"] == {"rerank": None, "rerank_depth": None}


def test_rerank_by_default_needs_a_reranker(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"), "EMBED_THREADS": "1"},
        ready_path="/readyz",
    )
    with httpx.Client(base_url=retrieval.url, headers=TENANT, timeout=60) as client:
        chunks = [{"id": "a:0", "document_id": "a", "text": "tea"}]
        assert client.post("/internal/v1/collections/docs/upsert", json={"chunks": chunks}).status_code == 200
        refused = client.put("/internal/v1/collections/docs/settings", json={"rerank": True})
        assert refused.status_code == 400 and "needs a reranker" in refused.json()["error"]["message"]
        assert client.put("/internal/v1/collections/docs/settings", json={"rerank": False}).status_code == 200
