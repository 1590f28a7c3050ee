"""The retrieval service as real processes: real embeddings, the embedded index, a real Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from ragfleet.testkit.pytest_plugin import RedisServer, RunningService, ServiceStarter

pytestmark = pytest.mark.integration

CHUNKS = [
    (
        "cats",
        "Cats are small domesticated carnivorous mammals that purr.",
        {"topic": "animals", "year": 2021},
    ),
    ("dogs", "Dogs are loyal companions and were bred from wolves.", {"topic": "animals", "year": 2019}),
    ("paris", "Paris is the capital of France, on the river Seine.", {"topic": "geography", "year": 2020}),
    ("python", "Python is a programming language with dynamic typing.", {"topic": "software", "year": 2023}),
    ("redis", "Redis is an in-memory key-value store used as a cache.", {"topic": "software", "year": 2022}),
]


def start_retrieval(run_service: ServiceStarter, redis_url: str, data_dir: Path, name: str) -> RunningService:
    return run_service(
        name,
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {
            "REDIS_URL": redis_url,
            "DATA_DIR": str(data_dir),
            "REPLICA_NAME": name,
            "EMBED_THREADS": "1",
            "ACCESS_LOG": "false",
            "REDIS_SOCKET_TIMEOUT_S": "0.5",
            "REDIS_CONNECT_TIMEOUT_S": "0.5",
        },
    )


def seed(client: httpx.Client, collection: str = "docs", tenant: str = "acme") -> dict[str, Any]:
    chunks = [
        {"id": f"{doc}:0", "document_id": doc, "text": text, "position": 0, "metadata": meta}
        for doc, text, meta in CHUNKS
    ]
    response = client.post(
        f"/internal/v1/collections/{collection}/upsert",
        json={"chunks": chunks},
        headers={"X-Ragfleet-Tenant": tenant},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def search(client: httpx.Client, tenant: str = "acme", **body: Any) -> httpx.Response:
    return client.post(
        "/v1/search", json={"collection": "docs", **body}, headers={"X-Ragfleet-Tenant": tenant}
    )


def doc_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["document_id"] for r in response.json()["results"]]


def test_search_end_to_end(run_service: ServiceStarter, redis_url: str, tmp_path: Path) -> None:
    service = start_retrieval(run_service, redis_url, tmp_path / "data", "r1")
    with httpx.Client(base_url=service.url, timeout=30) as client:
        written = seed(client)
        assert written["written"] == 5 and written["version"] == 1 and written["replicas_purged"] == 1

        first = search(client, query="Which animal purrs?", top_k=2)
        assert doc_ids(first)[0] == "cats"
        assert first.headers["x-cache"] == "miss"
        body = first.json()
        assert body["mode"] == "hybrid" and body["collection"] == "docs" and body["took_ms"] >= 0
        assert set(body["results"][0]) == {"id", "document_id", "text", "score", "metadata"}
        # Case and whitespace do not make a different query.
        again = search(client, query="  which ANIMAL   purrs? ", top_k=2)
        assert again.headers["x-cache"] == "hit-l1"
        assert doc_ids(again) == doc_ids(first)

        assert doc_ids(search(client, query="capital of France", mode="bm25"))[0] == "paris"
        hybrid = search(client, query="in-memory cache", mode="hybrid", alpha=0.3, fusion="rrf", top_k=3)
        assert doc_ids(hybrid)[0] == "redis"
        filtered = search(client, query="a pet", filters={"topic": "software", "year": {"gte": 2023}})
        assert doc_ids(filtered) == ["python"]
        vector = search(client, vector=[0.1] * 384, top_k=3)
        assert len(doc_ids(vector)) == 3
        # Another tenant sees nothing of acme's.
        assert search(client, tenant="other", query="cats").status_code == 404

        collections = client.get("/v1/collections", headers={"X-Ragfleet-Tenant": "acme"}).json()
        assert collections == {"collections": [{"name": "docs", "chunks": 5, "documents": 5, "version": 1}]}
        document = client.get(
            "/internal/v1/collections/docs/documents/cats", headers={"X-Ragfleet-Tenant": "acme"}
        )
        assert document.status_code == 200 and document.json()["chunks"] == 1
        missing = client.get(
            "/internal/v1/collections/docs/documents/nope", headers={"X-Ragfleet-Tenant": "acme"}
        )
        assert missing.status_code == 404

        stats = client.get("/v1/cache/stats").json()["caches"]
        assert stats["search"]["l1"]["hits"] >= 1
        assert stats["embedding"]["requests"] >= 1


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"query": "   "}, 422, "query must not be empty"),
        ({"query": "x", "top_k": 0}, 422, "top_k"),
        ({"query": "x", "top_k": 10000}, 422, "top_k"),
        ({"query": "x", "collection": "nope"}, 404, "collection 'nope' does not exist"),
        ({"vector": [0.1] * 3}, 400, "vector has 3 dimensions"),
        ({"query": "x", "filters": {"year": {"near": 3}}}, 400, "unknown filter operator"),
        ({"query": "x", "filters": {"tag": list(range(257))}}, 422, "at most 256 values in 'in'"),
        ({"query": "x", "filters": {f"f{i}": 1 for i in range(17)}}, 422, "at most 16 fields"),
        ({"query": "x", "mode": "sideways"}, 422, "mode"),
        ({"query": "x", "centroid_weight": 3}, 422, "centroid_weight"),
        ({"vector": [0.1] * 384, "mode": "bm25"}, 422, "needs a query text"),
        ({}, 422, "give a query text or a vector"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    retrieval_with_docs: RunningService, body: dict[str, Any], status: int, says: str
) -> None:
    response = httpx.post(
        f"{retrieval_with_docs.url}/v1/search",
        json={"collection": "docs", **body},
        headers={"X-Ragfleet-Tenant": "acme"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "tenant"),
    [
        ({"query": "Which animal purrs?", "top_k": 2}, "acme"),
        ({"query": "Which animal purrs?", "centroid_weight": 1.5}, "acme"),  # the store's centroids
        ({"query": "capital of France", "mode": "bm25", "filters": {"topic": "geography"}}, "acme"),
        ({"vector": [0.05] * 384, "top_k": 3}, "acme"),
        ({"query": "x", "collection": "nope"}, "acme"),  # 404 from the search itself
        ({"vector": [0.1] * 3}, "acme"),  # 400 from the search itself
        ({"query": "x", "top_k": 0}, "acme"),  # 422: the body does not validate
        ({"query": "x"}, "Not A Tenant!"),  # 400: the tenant header does not validate
    ],
)
def test_the_search_fast_path_answers_as_the_ordinary_route_does(
    retrieval_with_docs: RunningService, body: dict[str, Any], tenant: str
) -> None:
    """A body with a Content-Length takes the fast path (search/fast_path.py); the same body sent
    chunked, without one, takes FastAPI's route. Status, error and results must not differ."""
    payload = orjson.dumps({"collection": "docs", **body})
    headers = {"X-Ragfleet-Tenant": tenant, "Content-Type": "application/json"}
    with httpx.Client(base_url=retrieval_with_docs.url, timeout=30, headers=headers) as client:
        fast = client.post("/v1/search", content=payload)
        ordinary = client.post("/v1/search", content=iter([payload]))  # chunked: no Content-Length
    assert "content-length" not in ordinary.request.headers and "content-length" in fast.request.headers
    assert fast.status_code == ordinary.status_code, (fast.text, ordinary.text)
    assert fast.headers["content-type"] == ordinary.headers["content-type"] == "application/json"
    fast_body, ordinary_body = fast.json(), ordinary.json()
    if fast.status_code == 200:
        assert fast.headers["x-cache"] in ("miss", "hit-l1", "hit-l2", "hit-semantic")
        assert fast_body["results"] == ordinary_body["results"]
        assert set(fast_body) == set(ordinary_body)
    else:
        for answer in (fast_body, ordinary_body):
            answer["error"].pop("request_id")
        assert fast_body == ordinary_body


@pytest.fixture(scope="module")
def retrieval_with_docs(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One service for the many small validation cases (module scope: they write nothing)."""
    from ragfleet.devstack.processes import free_port, start_service

    port = free_port()
    directory = tmp_path_factory.mktemp("validation")
    env = {
        "RAGFLEET_RETRIEVAL_PORT": str(port),
        "RAGFLEET_RETRIEVAL_ENVIRONMENT": "development",
        "RAGFLEET_RETRIEVAL_REDIS_URL": redis_server.url,
        "RAGFLEET_RETRIEVAL_DATA_DIR": str(directory / "data"),
        "RAGFLEET_RETRIEVAL_EMBED_THREADS": "1",
    }
    process = start_service(
        "retrieval-validation", "ragfleet.retrieval", port=port, env=env, log_dir=directory
    )
    service = RunningService("retrieval-validation", port, process)
    with httpx.Client(base_url=service.url, timeout=30) as client:
        seed(client)
    yield service
    process.stop()


def test_writes_reach_every_replica_cache_before_returning(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    """Two replicas, one Redis. The embedded index is one per process (single writer per data
    directory), so each replica has its own, and the test writes to both, as it would to two
    embedded replicas; what is shared, and checked, is the cache: a write through one replica
    drops every replica's cached results before it returns."""
    a = start_retrieval(run_service, redis_url, tmp_path / "a", "replica-a")
    b = start_retrieval(run_service, redis_url, tmp_path / "b", "replica-b")
    with httpx.Client(base_url=a.url, timeout=30) as ca, httpx.Client(base_url=b.url, timeout=30) as cb:
        seed(ca)
        seed(cb)
        query: dict[str, Any] = {"query": "an animal that purrs", "top_k": 5}
        assert "cats" in doc_ids(search(ca, **query))
        assert "cats" in doc_ids(search(cb, **query))
        assert search(ca, **query).headers["x-cache"] == "hit-l1"
        assert search(cb, **query).headers["x-cache"] == "hit-l1"

        deleted = ca.post(
            "/internal/v1/collections/docs/delete",
            json={"document_ids": ["cats"]},
            headers={"X-Ragfleet-Tenant": "acme"},
        ).json()
        assert deleted["written"] == 1
        # Every retrieval process on this Redis listens (other tests' may be up too); all acked.
        assert deleted["replicas"] >= 2 and deleted["replicas_purged"] == deleted["replicas"]

        after_a = search(ca, **query)
        assert after_a.headers["x-cache"] == "miss" and "cats" not in doc_ids(after_a)
        # B dropped its cached result before A answered: its next search is not served from its
        # stale L1, but from the result A stored in L2 under the new version.
        after_b = search(cb, **query)
        assert after_b.headers["x-cache"] == "hit-l2" and "cats" not in doc_ids(after_b)

        cb.post(
            "/internal/v1/collections/docs/delete",
            json={"document_ids": ["cats"]},
            headers={"X-Ragfleet-Tenant": "acme"},
        )
        assert "cats" not in doc_ids(search(cb, **query))

        # An update (same chunk id, new text) replaces the old text in results and caches.
        paris: dict[str, Any] = {"query": "capital of France", "top_k": 1}
        assert search(ca, **paris).json()["results"][0]["text"].startswith("Paris is the capital")
        for client in (ca, cb):
            response = client.post(
                "/internal/v1/collections/docs/upsert",
                json={
                    "chunks": [
                        {"id": "paris:0", "document_id": "paris", "text": "Paris, capital city of France."}
                    ]
                },
                headers={"X-Ragfleet-Tenant": "acme"},
            )
            assert response.json()["replicas_purged"] == response.json()["replicas"] >= 2
        for client in (ca, cb):
            updated = search(client, **paris)
            assert updated.json()["results"][0]["text"] == "Paris, capital city of France."


def test_a_query_vector_is_cached_per_process_and_a_text_in_redis_too(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    """A text query's results go to L2, so another replica answers them from Redis; a query given
    only as a vector stays in the process that answered it (L1): the same vector again there is
    a hit, another replica computes its own, and nothing of it is written to Redis."""
    a = start_retrieval(run_service, redis_url, tmp_path / "a", "vector-a")
    b = start_retrieval(run_service, redis_url, tmp_path / "b", "vector-b")
    with httpx.Client(base_url=a.url, timeout=30) as ca, httpx.Client(base_url=b.url, timeout=30) as cb:
        seed(ca)
        seed(cb)
        text = {"query": "a pet that barks", "top_k": 3}
        assert search(ca, **text).headers["x-cache"] == "miss"
        assert search(cb, **text).headers["x-cache"] == "hit-l2"

        vector = [0.0] * 384
        vector[7] = 1.0
        first = search(ca, vector=vector, top_k=3)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        again = search(ca, vector=vector, top_k=3)
        assert again.headers["x-cache"] == "hit-l1"
        assert again.json()["results"] == first.json()["results"]
        elsewhere = search(cb, vector=vector, top_k=3)
        assert elsewhere.headers["x-cache"] == "miss"
        assert doc_ids(elsewhere) == doc_ids(first)
        # A vector query for a collection that does not exist is still a clear 404.
        missing = search(ca, vector=vector, collection="no-such-collection")
        assert missing.status_code == 404, missing.text


def test_searches_answer_while_redis_is_down_and_cache_recovers(
    run_service: ServiceStarter, redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    service = start_retrieval(run_service, redis_url, tmp_path / "data", "r1")
    with httpx.Client(base_url=service.url, timeout=30) as client:
        seed(client)
        assert search(client, query="dogs and wolves").headers["x-cache"] == "miss"

        redis_server.stop()
        try:
            for query in ("dogs and wolves", "a new question while redis is away", "capital of France"):
                response = search(client, query=query)
                assert response.status_code == 200, response.text
            assert search(client, query="capital of France", mode="bm25").status_code == 200
            assert client.get("/readyz").json()["checks"]["cache"]["redis"] != "ok"
        finally:
            redis_server.restart()

        deadline = time.monotonic() + 15
        while client.get("/readyz").json()["checks"]["cache"]["redis"] != "ok":
            assert time.monotonic() < deadline, "the cache did not reconnect to Redis"
            time.sleep(0.1)
        assert search(client, query="which river flows through Paris").headers["x-cache"] == "miss"
        r = redis.Redis.from_url(redis_url)
        try:
            assert r.keys("retrieval:search:acme:docs:*"), "L2 is filled again"
        finally:
            r.close()
        assert search(client, query="which river flows through Paris").headers["x-cache"] == "hit-l1"


def test_a_search_among_many_new_titles_is_not_shed_as_a_queue(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> None:
    """Document ranking embeds the candidates' titles: as one batch, not as many single texts,
    which the micro-batcher's load shedding (a queue of 1 here) would refuse with a 503."""
    service = run_service(
        "r-titles",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {"REDIS_URL": redis_url, "DATA_DIR": str(tmp_path / "data"), "EMBED_THREADS": "1",
         "EMBED_MAX_QUEUE": "1", "ACCESS_LOG": "false"},
    )  # fmt: skip
    chunks = [
        {"id": f"d{i}:0", "document_id": f"d{i}", "text": f"Passage {i} about tea and brewing.",
         "position": 0, "metadata": {"title": f"Tea guide part {i}"}}
        for i in range(20)
    ]  # fmt: skip
    with httpx.Client(base_url=service.url, timeout=30, headers={"X-Ragfleet-Tenant": "acme"}) as client:
        assert client.post("/internal/v1/collections/docs/upsert", json={"chunks": chunks}).status_code == 200
        response = client.post("/v1/search", json={"collection": "docs", "query": "how to brew tea"})
        assert response.status_code == 200, response.text
        assert len({r["document_id"] for r in response.json()["results"]}) == 10  # one chunk each
