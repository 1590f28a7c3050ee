"""The chat answer cache on the whole platform: the real worker ingests, retrieval's semantic
cache matches paraphrases, llm-proxy's ``extractive`` model answers (chat_cache.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ragfleet.devstack.processes import wait_until

pytestmark = pytest.mark.integration

COLLECTION = "chat-cache"
QUESTION = "How many vacation days do new employees get per year?"
# MiniLM's cosine with QUESTION is well above the semantic threshold (0.80).
PARAPHRASE = "How many days of vacation do new employees get each year?"


def ingest(client: httpx.Client, text: str) -> None:
    document = {"documents": [{"id": "leave", "text": text}]}
    response = client.post("/v1/documents", params={"collection": COLLECTION}, json=document)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    def succeeded() -> bool:
        job = client.get(f"/v1/jobs/{job_id}", params={"collection": COLLECTION}).json()
        assert job["state"] != "failed", job
        return bool(job["state"] == "succeeded")

    wait_until(succeeded, timeout_s=120, what=f"ingestion job {job_id}")


def chat(client: httpx.Client, message: str) -> httpx.Response:
    response = client.post("/v1/chat", json={"message": message, "collection": COLLECTION})
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == response.json()["cache"]
    return response


def semantic_hits(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('ragfleet_semantic_cache_requests_total{cache="chat",result="hit"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_paraphrase_hits_the_chat_cache_until_the_source_document_changes(platform: Any) -> None:
    key = platform.create_key("acme", [COLLECTION], rate_per_s=1e6, burst=1_000_000)
    with httpx.Client(base_url=platform.url, headers={"X-API-Key": key}, timeout=60) as client:
        ingest(client, "New employees get 25 vacation days per year. Unused days expire in March.")
        hits_before = semantic_hits(client)

        first = chat(client, QUESTION)
        assert first.headers["x-cache"] == "miss"
        assert "25" in first.json()["answer"]
        again = chat(client, QUESTION)
        assert again.headers["x-cache"] in ("hit-l1", "hit-l2")
        assert again.json()["answer"] == first.json()["answer"]

        paraphrased = chat(client, PARAPHRASE)
        assert paraphrased.headers["x-cache"] == "hit-semantic"
        assert paraphrased.json()["answer"] == first.json()["answer"]
        assert paraphrased.json()["sources"] == first.json()["sources"]
        # Each turn still has its own conversation, holding the answer it was given.
        session = client.get(f"/v1/sessions/{paraphrased.json()['session_id']}").json()
        assert [m["content"] for m in session["messages"]] == [PARAPHRASE, first.json()["answer"]]
        assert semantic_hits(client) == hits_before + 1

        # The source document changes: ingestion bumps the collection's version, so neither the
        # question nor its paraphrase finds the old answer any more.
        ingest(client, "New employees get 30 vacation days per year. Unused days expire in March.")
        after = chat(client, PARAPHRASE)
        assert after.headers["x-cache"] == "miss"
        assert "30" in after.json()["answer"] and "25" not in after.json()["answer"]
        # The original question is now the paraphrase's paraphrase, answered from the new version.
        original = chat(client, QUESTION)
        assert original.headers["x-cache"] == "hit-semantic"
        assert original.json()["answer"] == after.json()["answer"]


def test_a_later_turn_of_a_conversation_is_not_answered_from_the_cache(platform: Any) -> None:
    key = platform.create_key("acme", [COLLECTION], rate_per_s=1e6, burst=1_000_000)
    with httpx.Client(base_url=platform.url, headers={"X-API-Key": key}, timeout=60) as client:
        ingest(client, "The office opens at 8 am. Parking is free for employees.")
        opening = chat(client, "When does the office open?")
        follow_up = {"message": "When does the office open?", "collection": COLLECTION}
        follow_up["session_id"] = opening.json()["session_id"]
        second = client.post("/v1/chat", json=follow_up)
        assert second.status_code == 200, second.text
        # The same words, but after a turn: its answer may depend on that turn, so it is made anew.
        assert second.headers["x-cache"] == "miss"
