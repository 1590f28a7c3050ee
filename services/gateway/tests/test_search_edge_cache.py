"""The edge tier of the search cache: two real gateways in front of a real retrieval and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
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
    other = await make_key("acme", ["elsewhere"], rate_per_s=1000, burst=1000)
    refused = post_search(gateway, other)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "collection_forbidden"
