"""A hybrid search whose query cannot be embedded in time is answered BM25-only — marked, counted
and cached nowhere — while a vector search with nothing to fall back on is refused with 503 and
``Retry-After``. Real processes: retrieval embeds through an OpenAI-compatible server (the testkit's
fake upstream) told to take seconds per request, the stand-in for an embedder starved by misses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragfleet.testkit.fake_llm import FakeUpstreamControl
from ragfleet.testkit.pytest_plugin import RunningService

from .conftest import FakeEmbedderStack, upsert_chunks

pytestmark = pytest.mark.integration

TENANT = {"X-Ragfleet-Tenant": "acme"}
DOCS = {
    "cats": "Cats are small domesticated mammals that purr.",
    "dogs": "Dogs are loyal companions bred from wolves; they bark at strangers.",
}
BARKS = {"query": "Which animal barks?", "collection": "pets", "mode": "hybrid", "top_k": 2}


def start_stack(start: Callable[..., FakeEmbedderStack]) -> FakeEmbedderStack:
    fake, retrieval = start(EMBED_DEGRADE_AFTER_MS="200")
    chunks = [{"id": f"{doc}:0", "document_id": doc, "text": text} for doc, text in DOCS.items()]
    upsert_chunks(retrieval, "pets", chunks, tenant="acme")
    return fake, retrieval


def embedder_latency(fake: FakeUpstreamControl, ms: float) -> None:
    """Every embedding request to the fake server takes ``ms`` from now on (384-d vectors)."""
    fake.default(latency_ms=ms, embedding_dim=384)


def counter(service: RunningService, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{service.url}/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def undegraded(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    """The first answer that is not degraded: once the embedder has drained what it was given."""
    deadline = time.monotonic() + 60
    while True:
        response = client.post("/v1/search", json=body, headers=TENANT)
        assert response.status_code == 200, response.text
        if "x-search-degraded" not in response.headers or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_a_hybrid_search_degrades_to_bm25_uncached_and_a_vector_search_is_refused(
    retrieval_on_fake_embedder: Callable[..., FakeEmbedderStack],
) -> None:
    fake, retrieval = start_stack(retrieval_on_fake_embedder)
    embedder_latency(fake, 3000)  # far past the 200 ms the hybrid search gives its embedding
    with httpx.Client(base_url=retrieval.url, timeout=60) as client:
        # A vector search waits (no deadline of its own below the 0.5 s queue bound, and nothing
        # is queued ahead of it); the micro-batcher learns from it that a text takes seconds.
        slow = client.post("/v1/search", json={**BARKS, "mode": "vector", "query": "slow"}, headers=TENANT)
        assert slow.status_code == 200 and "x-search-degraded" not in slow.headers
        for _ in range(2):  # and again: the degraded answer was not kept by any tier
            degraded = client.post("/v1/search", json=BARKS, headers=TENANT)
            assert degraded.status_code == 200, degraded.text
            assert degraded.headers["x-search-degraded"] == "embedder_busy"
            assert degraded.headers["x-cache"] == "miss"
            answer = degraded.json()
            assert answer["degraded"] == "embedder_busy" and answer["mode"] == "bm25"
            assert answer["results"][0]["document_id"] == "dogs"  # BM25 found it: "bark"
        assert (
            counter(retrieval, "ragfleet_retrieval_search_degraded_total", {"reason": "embedder_busy"}) == 2
        )
        assert counter(retrieval, "ragfleet_embed_refused_total", {"reason": "deadline"}) >= 1

    async def vector_searches() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=retrieval.url, timeout=60) as client:
            bodies = [{**BARKS, "mode": "vector", "query": f"animal number {i}"} for i in range(3)]
            return await asyncio.gather(*(client.post("/v1/search", json=b, headers=TENANT) for b in bodies))

    # A vector search cannot degrade: behind a batch of seconds, the texts that would queue are
    # refused at once (the first opens the next batch and waits for it).
    refused = [r for r in asyncio.run(vector_searches()) if r.status_code != 200]
    assert refused, "no vector search was refused"
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "embedder_busy"
        assert int(response.headers["retry-after"]) >= 1

    embedder_latency(fake, 0)
    with httpx.Client(base_url=retrieval.url, timeout=60) as client:
        recovered = undegraded(client, BARKS)
        assert "x-search-degraded" not in recovered.headers
        assert recovered.json()["mode"] == "hybrid" and "degraded" not in recovered.json()
        assert client.post("/v1/search", json=BARKS, headers=TENANT).headers["x-cache"] == "hit-l1"


def test_behind_a_degraded_answer_the_full_one_is_stored_and_the_question_hits_next_time(
    retrieval_on_fake_embedder: Callable[..., FakeEmbedderStack],
) -> None:
    fake, retrieval = start_stack(retrieval_on_fake_embedder)
    embedder_latency(fake, 1000)  # past the 200 ms deadline: the ask degrades; the fill waits it out
    stored = {"outcome": "stored"}
    with httpx.Client(base_url=retrieval.url, timeout=60) as client:
        degraded = client.post("/v1/search", json=BARKS, headers=TENANT)
        assert degraded.headers["x-search-degraded"] == "embedder_busy", degraded.text
        deadline = time.monotonic() + 60
        while counter(retrieval, "ragfleet_retrieval_search_fills_behind_total", stored) < 1:
            assert time.monotonic() < deadline, "the full answer was never stored behind the degraded one"
            time.sleep(0.2)
        # Still slow, yet the question now hits: its full answer, not computed again.
        again = client.post("/v1/search", json=BARKS, headers=TENANT)
        assert again.headers["x-cache"] in ("hit-l1", "hit-l2"), again.headers
        assert "x-search-degraded" not in again.headers
        assert again.json()["mode"] == "hybrid" and "degraded" not in again.json()
        assert (
            counter(retrieval, "ragfleet_retrieval_search_degraded_total", {"reason": "embedder_busy"}) == 1
        )
