"""A key of one tenant never reads anything of another, through any route.

Both tenants hold a document with the same id, in a collection with the same name, each with a
secret word (see ``conftest.py``). Every test looks for the other tenant's secret and ids in what
one tenant gets back: search results and their caches, chat sources and answers, job status,
conversation memory, stream resumption, document routes.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.integration

COLLECTION = "handbook"
TENANT, OTHER = "acme", "globex"


@pytest.fixture
def clients(seeded: Any) -> Any:
    with (
        httpx.Client(base_url=seeded.url, headers=seeded.headers(TENANT), timeout=30) as mine,
        httpx.Client(base_url=seeded.url, headers=seeded.headers(OTHER), timeout=30) as theirs,
    ):
        yield mine, theirs


@pytest.fixture(scope="module")
def secrets(seeded: Any) -> Any:
    return seeded.secrets


def assert_only_own(secrets: Any, tenant: str, text: str) -> None:
    other = OTHER if tenant == TENANT else TENANT
    assert secrets[tenant] in text, f"{tenant} does not see its own document: {text[:300]}"
    assert secrets[other] not in text and other not in text, f"{tenant} sees {other}'s data: {text[:300]}"


def test_same_search_in_two_tenants_answers_each_from_its_own_data_and_cache(
    clients: Any, secrets: Any
) -> None:
    mine, theirs = clients
    # A query no earlier test sent, so the first answer of each tenant is computed, not cached.
    query = {"query": f"vacation approval codeword {uuid.uuid4().hex[:8]}", "collection": COLLECTION}
    first = mine.post("/v1/search", json=query)
    assert first.status_code == 200, first.text
    assert_only_own(secrets, TENANT, first.text)
    assert mine.post("/v1/search", json=query).headers["x-cache"].startswith("hit")

    # The identical request from the other tenant is not served from the first tenant's entry.
    other_first = theirs.post("/v1/search", json=query)
    assert other_first.status_code == 200, other_first.text
    assert other_first.headers["x-cache"] == "miss"
    assert_only_own(secrets, OTHER, other_first.text)
    other_again = theirs.post("/v1/search", json=query)
    assert other_again.headers["x-cache"].startswith("hit")
    assert_only_own(secrets, OTHER, other_again.text)


@pytest.mark.parametrize("mode", ["vector", "bm25", "hybrid"])
def test_filters_cannot_select_another_tenants_chunks(clients: Any, secrets: Any, mode: str) -> None:
    mine, _ = clients
    for filters in ({"owner": OTHER}, {"owner": {"in": [TENANT, OTHER]}}, {"tenant": OTHER}):
        response = mine.post(
            "/v1/search",
            json={"query": "vacation codeword", "collection": COLLECTION, "mode": mode, "filters": filters},
        )
        assert response.status_code == 200, response.text
        assert secrets[OTHER] not in response.text and OTHER not in response.text, filters


def test_chat_sources_and_answers_come_from_the_own_tenant_only(clients: Any, secrets: Any) -> None:
    for tenant, client in zip((TENANT, OTHER), clients, strict=True):
        response = client.post(
            "/v1/chat", json={"message": "What is the vacation approval codeword?", "collection": COLLECTION}
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert_only_own(secrets, tenant, "".join(source["text"] for source in answer["sources"]))
        assert secrets[OTHER if tenant == TENANT else TENANT] not in answer["answer"]


def test_a_job_of_another_tenant_is_not_found(seeded: Any, clients: Any) -> None:
    mine, theirs = clients
    job_id = seeded.jobs[TENANT]
    assert mine.get(f"/v1/jobs/{job_id}", params={"collection": COLLECTION}).status_code == 200
    response = theirs.get(f"/v1/jobs/{job_id}", params={"collection": COLLECTION})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "job_not_found"
    assert TENANT not in response.text


def test_session_ids_are_the_servers_and_a_conversation_is_its_keys(seeded: Any, clients: Any) -> None:
    mine, theirs = clients
    asked = mine.post("/v1/chat", json={"message": "What is the codeword?", "collection": COLLECTION})
    assert asked.status_code == 200, asked.text
    session_id = asked.json()["session_id"]
    assert len(session_id) == 32  # made by the server (uuid4 hex)

    # A key of the same tenant bound to another collection, and a key of another tenant: neither
    # can read, delete, extend or re-prompt it.
    same_tenant = {"X-API-Key": seeded.create_key(TENANT, ("other",), rate_per_s=1e6, burst=1_000_000)}
    for client, headers, collection in ((mine, same_tenant, "other"), (theirs, {}, COLLECTION)):
        assert client.get(f"/v1/sessions/{session_id}", headers=headers).status_code == 404
        assert client.delete(f"/v1/sessions/{session_id}", headers=headers).status_code == 404
        for body in (
            {"message": "And what did I ask before?", "collection": collection, "session_id": session_id},
            {
                "message": "Say it",
                "collection": collection,
                "session_id": session_id,
                "system_prompt": "Leak",
            },
        ):
            refused = client.post("/v1/chat", json=body, headers=headers)
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "session_not_found"

    # An id the server never gave out is refused, not adopted.
    planted = mine.post(
        "/v1/chat", json={"message": "hi", "collection": COLLECTION, "session_id": f"mine-{uuid.uuid4().hex}"}
    )
    assert planted.status_code == 404 and planted.json()["error"]["code"] == "session_not_found"

    # The owner continues it: resumption of a conversation keeps working.
    continued = mine.post(
        "/v1/chat",
        json={"message": "And what did I ask before?", "collection": COLLECTION, "session_id": session_id},
    )
    assert continued.status_code == 200, continued.text
    mine_view = mine.get(f"/v1/sessions/{session_id}").json()
    assert [m["content"] for m in mine_view["messages"] if m["role"] == "user"] == [
        "What is the codeword?",
        "And what did I ask before?",
    ]


def test_a_job_is_readable_only_by_keys_that_may_read_its_collection(seeded: Any, clients: Any) -> None:
    mine, _ = clients
    job_id = seeded.jobs[TENANT]
    other_collection = {"X-API-Key": seeded.create_key(TENANT, ("other",), rate_per_s=1e6, burst=1_000_000)}
    response = mine.get(f"/v1/jobs/{job_id}", params={"collection": "other"}, headers=other_collection)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "job_not_found"


def test_a_stream_of_another_tenant_cannot_be_resumed(seeded: Any, clients: Any, secrets: Any) -> None:
    mine, theirs = clients
    streamed = mine.post(
        "/v1/chat",
        json={"message": "What is the vacation approval codeword?", "collection": COLLECTION},
        headers={"Accept": "text/event-stream"},
    )
    assert streamed.status_code == 200
    assert secrets[TENANT] in streamed.text
    stream_id = streamed.headers["x-ragfleet-stream-id"]
    first_event = f"{stream_id}:1"

    for response in (
        theirs.post("/v1/chat", headers={"Last-Event-ID": first_event}),
        theirs.get(f"/v1/chat/streams/{stream_id}"),
        theirs.get(f"/v1/chat/streams/{stream_id}", params={"after": 1}),
    ):
        assert response.status_code == 410, response.text  # exactly as for a stream that is gone
        assert response.json()["error"]["code"] == "stream_gone"
        assert secrets[TENANT] not in response.text

    with connect(f"{seeded.ws_url}/v1/chat/ws", additional_headers=seeded.headers(OTHER)) as ws:
        ws.send(orjson.dumps({"type": "resume", "last_event_id": first_event}).decode())
        event = orjson.loads(ws.recv(timeout=10))
    assert event["type"] == "error" and event["code"] == "stream_gone"

    # The owner still resumes it.
    resumed = mine.get(f"/v1/chat/streams/{stream_id}", params={"after": 1})
    assert resumed.status_code == 200 and secrets[TENANT] in resumed.text


def test_document_routes_see_only_the_own_tenants_document(seeded: Any, clients: Any, secrets: Any) -> None:
    mine, theirs = clients
    params = {"collection": COLLECTION}
    own = mine.get(f"/v1/documents/{seeded.document_id}", params=params).json()
    other = theirs.get(f"/v1/documents/{seeded.document_id}", params=params).json()
    # Same id, same collection name, two different documents.
    assert own["content_hash"] != other["content_hash"]

    def document_counts() -> dict[str, int]:
        return {
            tenant: next(c["documents"] for c in client.get("/v1/collections").json()["collections"])
            for tenant, client in ((TENANT, mine), (OTHER, theirs))
        }

    before = document_counts()
    only_mine = f"acme-only-{uuid.uuid4().hex[:8]}"
    accepted = mine.post(
        "/v1/documents",
        params=params,
        json={"documents": [{"id": only_mine, "text": f"Only acme knows {secrets[TENANT]}."}]},
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    seeded.wait_for_job(mine, job_id)
    assert mine.get(f"/v1/documents/{only_mine}", params=params).status_code == 200

    for response in (
        theirs.get(f"/v1/documents/{only_mine}", params=params),
        theirs.delete(f"/v1/documents/{only_mine}", params=params),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "document_not_found"
    # The other tenant's delete removed nothing, and only the owner's listing counts the document.
    assert mine.get(f"/v1/documents/{only_mine}", params=params).status_code == 200
    assert document_counts() == {TENANT: before[TENANT] + 1, OTHER: before[OTHER]}
    assert mine.delete(f"/v1/documents/{only_mine}", params=params).status_code == 200


def test_collection_settings_are_the_tenants_own(clients: Any) -> None:
    mine, theirs = clients
    path = f"/v1/collections/{COLLECTION}/settings"
    put = mine.put(path, json={"rerank": False, "rerank_depth": 7})
    assert put.status_code == 200, put.text
    assert mine.get(path).json()["settings"] == {"rerank": False, "rerank_depth": 7}
    # The other tenant's collection of the same name keeps its own (none).
    assert theirs.get(path).json()["settings"] == {"rerank": None, "rerank_depth": None}
    bad = theirs.put(path, json={"rerank_depth": 0})
    assert bad.status_code == 422, bad.text
    assert mine.put(path, json={}).status_code == 200  # back to the service defaults
