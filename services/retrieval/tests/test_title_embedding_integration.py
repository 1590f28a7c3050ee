"""Document ranking embeds its candidates' titles once, however many searches meet them at once.

On a cold cache every concurrent search finds the same titles missing; each used to embed them
for itself, so N searches queued N batches of the same titles behind one embedder thread (up to
3.4 s per search in the first seconds of the search-tail load). Real processes: retrieval embeds
through an OpenAI-compatible server (the testkit's fake upstream), slow enough that the searches
overlap, and its request log says which texts were embedded how many times."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from .conftest import FakeEmbedderStack, upsert_chunks

pytestmark = pytest.mark.integration

TENANT = {"X-Ragfleet-Tenant": "acme"}
TITLES = [f"Guide number {n} to running the platform" for n in range(12)]
SEARCHES = 8
# Vector mode: a hybrid search this slow to embed would degrade to BM25, which needs no titles.
VECTOR = {"mode": "vector"}


def test_concurrent_searches_embed_each_missing_title_once(
    retrieval_on_fake_embedder: Callable[..., FakeEmbedderStack],
) -> None:
    fake, retrieval = retrieval_on_fake_embedder()
    chunks = [
        {
            "id": f"doc{n}:0",
            "document_id": f"doc{n}",
            "text": f"How to run part {n} of the platform on a small cluster.",
            "metadata": {"title": title},
            "vector": [1.0 if i == n else 0.01 for i in range(384)],
        }
        for n, title in enumerate(TITLES)
    ]
    upsert_chunks(retrieval, "guides", chunks, tenant="acme")
    fake.reset()  # the log from here on
    # Every embedding request takes 400 ms from here on, so the searches' title lookups overlap.
    fake.default(latency_ms=400, embedding_dim=384)

    async def search_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=retrieval.url, headers=TENANT, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/search",
                        json={"query": f"the platform, question {n}", "collection": "guides", **VECTOR},
                    )
                    for n in range(SEARCHES)
                )
            )

    responses = asyncio.run(search_all())
    assert [r.status_code for r in responses] == [200] * SEARCHES, [r.text for r in responses]
    assert all(r.json()["results"] and "degraded" not in r.json() for r in responses)

    embedded: Counter[str] = Counter()
    for request in fake.requests():
        texts = request["body"]["input"]
        embedded.update([texts] if isinstance(texts, str) else texts)
    # Each question once, and each title once: not once per search that met it.
    assert {title: embedded[title] for title in TITLES} == dict.fromkeys(TITLES, 1)
    assert sum(embedded.values()) == SEARCHES + len(TITLES)
