"""The semantic cache through retrieval's API (a real process, a real Redis): a paraphrase of a
cached question is answered from the cache; once the source document is updated it is not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragfleet.testkit.pytest_plugin import ServiceStarter

from .conftest import start_retrieval

pytestmark = pytest.mark.integration

TENANT = {"X-Ragfleet-Tenant": "acme"}
DOCS = {
    "cats": "Cats are small domesticated carnivorous mammals that purr.",
    "dogs": "Dogs are loyal companions and were bred from wolves; they bark.",
    "paris": "Paris is the capital of France, on the river Seine.",
}


def upsert(client: httpx.Client, docs: dict[str, str], collection: str = "pets") -> None:
    chunks = [
        {"id": f"{doc}:0", "document_id": doc, "text": text, "metadata": {"title": doc}}
        for doc, text in docs.items()
    ]
    response = client.post(
        f"/internal/v1/collections/{collection}/upsert", json={"chunks": chunks}, headers=TENANT
    )
    assert response.status_code == 200, response.text


def ask(
    client: httpx.Client, query: str, collection: str = "pets", tenant: dict[str, str] = TENANT
) -> httpx.Response:
    response = client.post(
        "/v1/search", json={"query": query, "collection": collection, "top_k": 3}, headers=tenant
    )
    assert response.status_code == 200, response.text
    return response


def first(response: httpx.Response) -> Any:
    return response.json()["results"][0]


def test_a_paraphrase_hits_until_the_source_document_changes(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    service = start_retrieval(run_service, redis_url, tmp_path / "data")
    with httpx.Client(base_url=service.url, timeout=60) as client:
        upsert(client, DOCS)
        asked = ask(client, "Which animal purrs?")
        assert asked.headers["x-cache"] == "miss" and first(asked)["document_id"] == "cats"

        paraphrase = ask(client, "What animal is it that purrs?")
        assert paraphrase.headers["x-cache"] == "hit-semantic"
        assert paraphrase.json()["results"] == asked.json()["results"]
        # A question about something else is not a paraphrase, and another tenant shares nothing.
        assert ask(client, "What is the capital of France?").headers["x-cache"] == "miss"
        upsert_other = client.post(
            "/internal/v1/collections/pets/upsert",
            json={"chunks": [{"id": "cats:0", "document_id": "cats", "text": DOCS["cats"]}]},
            headers={"X-Ragfleet-Tenant": "other"},
        )
        assert upsert_other.status_code == 200
        other = ask(client, "What animal is it that purrs?", tenant={"X-Ragfleet-Tenant": "other"})
        assert other.headers["x-cache"] == "miss"

        # The source document changes: the collection's version moves on, nothing cached before
        # it is matched again.
        upsert(client, {"cats": "Cats are small domesticated mammals; a content cat purrs and kneads."})
        after = ask(client, "What kind of animal purrs")
        assert after.headers["x-cache"] == "miss"
        assert "kneads" in first(after)["text"]
        # Questions asked after the update are cached again.
        assert ask(client, "Which animals purr?").headers["x-cache"] == "hit-semantic"

        metrics = client.get("/metrics").text
        assert 'ragfleet_semantic_cache_requests_total{cache="search",result="hit"}' in metrics


def test_questions_asked_again_after_their_answers_expired_are_answered(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    # A question stays in the semantic index after its exact answer expired. Asked again, it
    # found itself there and waited for its own key's computation — the one it was running — and
    # hung for good, and so did every question near it (so did two paraphrases asked at once).
    service = start_retrieval(
        run_service,
        redis_url,
        tmp_path / "data",
        "retrieval-expiry",
        CACHE_L1_TTL_S="0.5",
        CACHE_L2_TTL_S="0.5",
    )
    with httpx.Client(base_url=service.url, timeout=10) as client:
        upsert(client, DOCS, collection="expiry")
        assert ask(client, "Which animal purrs?", "expiry").headers["x-cache"] == "miss"
        assert ask(client, "What animal is it that purrs?", "expiry").headers["x-cache"] == "hit-semantic"
        time.sleep(1.0)  # both tiers let the answer go; the semantic index still has the question
        again = ask(client, "Which animal purrs?", "expiry")
        assert again.headers["x-cache"] == "miss" and first(again)["document_id"] == "cats"
        assert ask(client, "What animal is it that purrs?", "expiry").headers["x-cache"] == "hit-semantic"


def test_a_paraphrase_hits_on_another_replica(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    """Each replica (and worker) has its own semantic index; the questions one answers are shared
    over the cache Redis, so a paraphrase hits whichever replica it reaches."""
    replicas = [
        start_retrieval(run_service, redis_url, tmp_path / name, f"retrieval-{name}") for name in ("a", "b")
    ]
    with (
        httpx.Client(base_url=replicas[0].url, timeout=60) as a,
        httpx.Client(base_url=replicas[1].url, timeout=60) as b,
    ):
        for client in (a, b):  # two embedded stores (their own data), one Redis
            upsert(client, DOCS, collection="shared")
        asked = ask(a, "Which animal purrs?", "shared")
        assert asked.headers["x-cache"] == "miss"
        # The share crosses the cache Redis's pub/sub (milliseconds). Asking b before it arrived
        # would be a miss that files the paraphrase itself, so wait rather than poll.
        time.sleep(1.0)
        paraphrase = ask(b, "What animal is it that purrs?", "shared")
        assert paraphrase.headers["x-cache"] == "hit-semantic"
        assert paraphrase.json()["results"] == asked.json()["results"]
