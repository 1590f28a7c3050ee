"""The ingestion API's routes over in-memory parts, without a process: retrieval's internal API is an
in-memory index behind ``httpx.MockTransport`` (the real client, the real status codes and error
bodies), Celery's control channel a recorder. What needs Redis (uploads, job status) is tested
against a real one in the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.main import create_app


class Index:
    """Retrieval's internal collection API over a dict: {(tenant, collection): {document_id: chunks}}."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, int]] = {("acme", "docs"): {"a.md": 3, "b.md": 1}}
        self.seen: list[httpx.Request] = []
        self.failure: httpx.Response | Exception | None = None

    @staticmethod
    def error(status: int, code: str, message: str) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": code, "message": message, "request_id": "r"}})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if isinstance(self.failure, Exception):
            raise self.failure
        if self.failure is not None:
            return self.failure
        tenant = request.headers["x-ragfleet-tenant"]
        parts = request.url.path.removeprefix("/internal/v1/collections/").split("/")
        collection = self.documents.get((tenant, parts[0]))
        if collection is None:
            return self.error(404, "collection_not_found", f"no collection {parts[0]!r}")
        if request.method == "GET" and parts[1] == "documents":
            if parts[2] not in collection:
                return self.error(404, "document_not_found", "no such document")
            return httpx.Response(200, json={"document_id": parts[2], "chunks": collection[parts[2]]})
        if request.method == "POST" and parts[1] == "delete":
            ids = orjson.loads(request.content)["document_ids"]
            return httpx.Response(200, json={"written": sum(collection.pop(i, 0) for i in ids)})
        if request.method == "DELETE" and len(parts) == 1:
            deleted = sum(self.documents.pop((tenant, parts[0])).values())
            return httpx.Response(200, json={"collection": parts[0], "deleted_chunks": deleted, "version": 7})
        return self.error(405, "method_not_allowed", "not here")


class Control:
    """``celery.control``: the replies a ping gets, or the broker's error."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = [{"celery@worker-1": {"ok": "pong"}}]
        self.broker_down = False

    def ping(self, timeout: float, limit: int) -> list[dict[str, Any]]:
        if self.broker_down:
            raise ConnectionRefusedError("broker unreachable")
        return self.replies


class CeleryApp:
    def __init__(self) -> None:
        self.control = Control()


@pytest.fixture
def index() -> Index:
    return Index()


@pytest.fixture
def celery() -> CeleryApp:
    return CeleryApp()


@pytest.fixture
async def client(index: Index, celery: CeleryApp) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestionSettings(worker_check_timeout_s=0.5)
    app = create_app(settings)
    app.state.settings = settings
    app.state.retrieval = httpx.AsyncClient(transport=httpx.MockTransport(index), base_url="http://retrieval")
    app.state.celery = celery
    app.state.redis = None  # no route here reaches it (a call on None would fail the test)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://ingestion",
        headers={"X-Ragfleet-Tenant": "acme"},
    ) as http:
        yield http
    await app.state.retrieval.aclose()


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"code", "message", "request_id"}
    return error


async def test_a_document_is_read_from_the_index_for_the_callers_tenant(
    client: httpx.AsyncClient, index: Index
) -> None:
    found = await client.get("/v1/documents/a.md", params={"collection": "docs"})
    assert found.status_code == 200
    assert found.json() == {"document_id": "a.md", "chunks": 3, "collection": "docs"}
    assert index.seen[-1].url.path == "/internal/v1/collections/docs/documents/a.md"

    missing = await client.get("/v1/documents/zzz.md", params={"collection": "docs"})
    assert missing.status_code == 404 and error_of(missing)["code"] == "document_not_found"
    assert "'zzz.md'" in error_of(missing)["message"] and "'docs'" in error_of(missing)["message"]

    # Another tenant's collection of the same name is not this one's.
    other = await client.get(
        "/v1/documents/a.md", params={"collection": "docs"}, headers={"X-Ragfleet-Tenant": "globex"}
    )
    assert other.status_code == 404 and index.seen[-1].headers["x-ragfleet-tenant"] == "globex"


async def test_deletes_answer_what_was_removed_or_404(client: httpx.AsyncClient, index: Index) -> None:
    deleted = await client.delete("/v1/documents/a.md", params={"collection": "docs"})
    assert deleted.status_code == 200
    assert deleted.json() == {"document_id": "a.md", "collection": "docs", "deleted_chunks": 3}
    again = await client.delete("/v1/documents/a.md", params={"collection": "docs"})
    assert again.status_code == 404 and error_of(again)["code"] == "document_not_found"

    gone = await client.delete("/v1/collections/docs")
    assert gone.status_code == 200 and gone.json() == {
        "collection": "docs",
        "deleted_chunks": 1,
        "version": 7,
    }
    missing = await client.delete("/v1/collections/docs")
    assert missing.status_code == 404 and error_of(missing)["code"] == "collection_not_found"
    assert "'docs'" in error_of(missing)["message"]


async def test_bad_names_are_refused_before_retrieval_is_called(
    client: httpx.AsyncClient, index: Index
) -> None:
    for response in (
        await client.get("/v1/documents/a.md", params={"collection": "Not/A Name"}),
        await client.delete("/v1/collections/UPPER"),
        await client.get("/v1/documents/a.md", headers={"X-Ragfleet-Tenant": "no tenant"}),
    ):
        assert response.status_code == 422, response.text
        assert error_of(response)["code"] == "validation_error"
    assert index.seen == []


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (
            Index.error(409, "model_mismatch", "the collection holds another model's vectors"),
            409,
            "model_mismatch",
        ),
        (Index.error(422, "validation_error", "bad id"), 422, "validation_error"),
        (httpx.Response(503, text="overloaded"), 503, "unavailable"),
        (httpx.Response(500, text="boom"), 503, "unavailable"),
        (httpx.ConnectError("refused"), 503, "unavailable"),
    ],
)
async def test_retrieval_refusals_keep_their_status_and_outages_are_503(
    client: httpx.AsyncClient, index: Index, failure: httpx.Response | Exception, status: int, code: str
) -> None:
    index.failure = failure
    for response in (
        await client.get("/v1/documents/a.md", params={"collection": "docs"}),
        await client.delete("/v1/documents/a.md", params={"collection": "docs"}),
        await client.delete("/v1/collections/docs"),
    ):
        assert response.status_code == status, response.text
        assert error_of(response)["code"] == code
    if status == 409:
        assert "another model" in error_of(response)["message"]  # retrieval's own words, relayed


async def test_worker_check_says_who_answered_or_why_not(
    client: httpx.AsyncClient, celery: CeleryApp
) -> None:
    answered = await client.post("/v1/worker-check")
    assert answered.status_code == 200 and answered.json()["workers"] == ["celery@worker-1"]

    celery.control.replies = []
    silent = await client.post("/v1/worker-check")
    assert silent.status_code == 503 and error_of(silent)["code"] == "worker_unavailable"

    celery.control.broker_down = True
    down = await client.post("/v1/worker-check")
    assert down.status_code == 503 and error_of(down)["code"] == "broker_unavailable"
    assert "ConnectionRefusedError" in error_of(down)["message"]
