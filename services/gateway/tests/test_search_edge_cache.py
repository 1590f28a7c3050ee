"""The edge tier of the search cache: two real gateways in front of a real retrieval and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

pytestmark = pytest.mark.integration

QUERY = {"query": "Which animal purrs?", "collection": "docs", "top_k": 3}
TEXTS = {
    "acme": {
        "cats": "Cats are small domesticated mammals that purr.",
        "dogs": "Dogs are loyal companions bred from wolves.",
    },
    # Same collection name, same document ids, other words: a leak would show.
    "globex": {
        "cats": "Globex sells industrial purring machines for cats.",
        "dogs": "Globex dog food, now in bulk.",
    },
}


@pytest.fixture
def retrieval(run_service: ServiceStarter, redis_url: str, tmp_path: Path) -> RunningService:
    settings = {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"), "EMBED_THREADS": "1"}
    service = run_service("retrieval", "ragfleet.retrieval", "RAGFLEET_RETRIEVAL_", settings)
    for tenant, texts in TEXTS.items():
        chunks = [
            {"id": f"{doc}:0", "document_id": doc, "text": text, "position": 0, "metadata": {}}
            for doc, text in texts.items()
        ]
        written = write(service, tenant, "upsert", {"chunks": chunks})
        assert written["written"] == 2
    return service


def write(retrieval: RunningService, tenant: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{retrieval.url}/internal/v1/collections/docs/{action}",
        json=body,
        headers={"X-Ragfleet-Tenant": tenant},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def post_search(gateway: RunningService, key: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/search", json=QUERY, headers={"X-API-Key": key}, timeout=30)


def search(gateway: RunningService, key: str) -> tuple[list[str], str]:
    response = post_search(gateway, key)
    assert response.status_code == 200, response.text
    return [hit["text"] for hit in response.json()["results"]], response.headers["x-cache"]


def edge_hits(gateway: RunningService) -> float:
    exposition = httpx.get(f"{gateway.url}/metrics").text
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "ragfleet_cache_requests_total" and sample.labels == {
                "cache": "search",
                "tier": "edge",
                "result": "hit",
            }:
                return sample.value
    return 0.0


async def test_repeated_searches_are_answered_by_the_gateway_and_writes_purge_every_replica(
    retrieval: RunningService, start_gateway, make_key
) -> None:
    env = {"RETRIEVAL_URL": retrieval.url}
    gateways = [start_gateway("gw-a", env), start_gateway("gw-b", env)]
    keys = {tenant: await make_key(tenant, ["docs"], rate_per_s=1000, burst=1000) for tenant in TEXTS}

    for gateway in gateways:
        texts, first_tier = search(gateway, keys["acme"])
        assert first_tier in ("miss", "hit-l1", "hit-l2")
        assert TEXTS["acme"]["cats"] in texts
        again, tier = search(gateway, keys["acme"])
        assert (again, tier) == (texts, "hit-edge")
        assert edge_hits(gateway) == 1

    # The other tenant asks the same thing of the same collection name: its own answer, not a hit.
    globex, tier = search(gateways[0], keys["globex"])
    assert tier != "hit-edge"
    assert set(globex) == set(TEXTS["globex"].values())

    # A delete returns once every replica — both gateways included — has dropped its copies.
    deleted = write(retrieval, "acme", "delete", {"document_ids": ["cats"]})
    assert deleted["replicas_purged"] == deleted["replicas"] == 3
    for gateway in gateways:
        texts, tier = search(gateway, keys["acme"])
        assert tier != "hit-edge"
        assert texts == [TEXTS["acme"]["dogs"]]
    # globex's collection was not written: its entry survives.
    assert search(gateways[0], keys["globex"])[1] == "hit-edge"


async def test_a_key_without_the_collection_gets_no_cached_answer(
    retrieval: RunningService, start_gateway, make_key
) -> None:
    gateway = start_gateway("gw", {"RETRIEVAL_URL": retrieval.url})
    allowed = await make_key("acme", ["docs"], rate_per_s=1000, burst=1000)
    assert search(gateway, allowed)[0]
    assert search(gateway, allowed)[1] == "hit-edge"
    assert search(gateway, allowed)[1] == "hit-edge"  # the exact bytes again: the fast path
    other = await make_key("acme", ["elsewhere"], rate_per_s=1000, burst=1000)
    refused = post_search(gateway, other)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "collection_forbidden"


async def test_repeats_of_the_exact_bytes_take_the_fast_path_with_auth_rate_limit_and_purge(
    retrieval: RunningService, start_gateway, make_key
) -> None:
    # Every answer here is small: gzip them all.
    gateway = start_gateway("gw", {"RETRIEVAL_URL": retrieval.url, "EDGE_GZIP_MIN_BYTES": "1"})
    key = await make_key("acme", ["docs"], rate_per_s=0.001, burst=5)
    body = orjson.dumps(QUERY)
    headers = {"X-API-Key": key, "content-type": "application/json"}

    def send(extra: dict[str, str] | None = None, key_header: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/search",
            content=body,
            headers={**headers, **(extra or {}), **(key_header or {})},
        )

    answers = [send() for _ in range(3)]  # miss, hit (alias filed), hit through the alias
    assert [a.headers["x-cache"] for a in answers][1:] == ["hit-edge", "hit-edge"]
    assert answers[2].json()["results"] == answers[0].json()["results"]
    assert answers[2].json()["took_ms"] >= 0
    # gzip, when the client takes it: made once, then served as ready bytes with a fresh took_ms.
    zipped = send({"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["x-cache"] == "hit-edge"
    assert zipped.json()["results"] == answers[0].json()["results"]  # httpx decompressed it
    # A wrong key on the same bytes is refused, not answered from memory.
    wrong = send(key_header={"X-API-Key": "rfk_nope_nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    # The burst (5) runs out: the fast path enforces the limit too.
    statuses = [send() for _ in range(3)]
    assert statuses[0].status_code == 200
    limited = statuses[-1]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "retry-after" in limited.headers

    # A write purges the alias with the rest of the collection's entries.
    other = await make_key("acme", ["docs"], rate_per_s=1000, burst=1000)
    write(retrieval, "acme", "delete", {"document_ids": ["cats"]})
    after = send(key_header={"X-API-Key": other})
    assert after.headers["x-cache"] != "hit-edge"
    assert [hit["text"] for hit in after.json()["results"]] == [TEXTS["acme"]["dogs"]]
