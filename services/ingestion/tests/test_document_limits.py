"""Limits the API enforces before anything is staged: each refusal names the limit it hit.

Process-free: the app is driven through ASGI without its lifespan, since every request here is
refused before Redis or Celery would be reached."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.main import create_app


@pytest.fixture
def client() -> httpx.AsyncClient:
    settings = IngestionSettings(max_metadata_bytes=1024, max_metadata_keys=8, max_documents_per_request=3)
    app = create_app(settings)
    app.state.settings = settings
    # Never reached: every request here is refused first (a call on None would fail the test).
    app.state.redis = app.state.celery = app.state.retrieval = None
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingestion")


async def post(client: httpx.AsyncClient, documents: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/documents", json={"documents": documents})


async def test_oversized_metadata_is_a_413_naming_the_limit(client: httpx.AsyncClient) -> None:
    response = await post(client, [{"id": "big", "text": "hello", "metadata": {"note": "x" * 5000}}])
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "metadata_too_large"
    assert "max_metadata_bytes" in error["message"] and "'big'" in error["message"]
    assert error["details"] == {"limit": "max_metadata_bytes", "max": 1024, "actual": 5011}


async def test_too_many_metadata_keys_or_documents_name_their_limits(client: httpx.AsyncClient) -> None:
    keys = await post(client, [{"text": "hello", "metadata": {f"k{i}": i for i in range(9)}}])
    assert keys.status_code == 422 and "max_metadata_keys" in keys.json()["error"]["message"]
    many = await post(client, [{"text": f"doc {i}"} for i in range(4)])
    assert many.status_code == 413 and "max_documents_per_request" in many.json()["error"]["message"]


async def test_multipart_shared_metadata_is_capped_too(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/documents",
        files=[("files", ("a.txt", b"hello", "text/plain"))],
        data={"metadata": '{"blob": "' + "y" * 2000 + '"}'},
    )
    assert response.status_code == 413 and "max_metadata_bytes" in response.json()["error"]["message"]


async def test_multipart_refusals_found_before_anything_is_staged(client: httpx.AsyncClient) -> None:
    def files(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
        return [("files", (f"{i}.txt", b"hello", "text/plain")) for i in range(count)]

    not_json = await client.post("/v1/documents", files=files(1), data={"metadata": "{nope"})
    assert (
        not_json.status_code == 400 and "'metadata' is not valid JSON" in not_json.json()["error"]["message"]
    )
    not_object = await client.post("/v1/documents", files=files(1), data={"metadata": "[1]"})
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["error"]["message"]
    reserved = await client.post("/v1/documents", files=files(1), data={"metadata": '{"_id": 1}'})
    assert reserved.status_code == 422 and "reserved" in reserved.json()["error"]["message"]
    exe = await client.post("/v1/documents", files=[("files", ("x.exe", b"MZ", "application/octet-stream"))])
    assert exe.status_code == 415 and "'x.exe'" in exe.json()["error"]["message"]
    fields = await client.post("/v1/documents", data={f"f{i}": "v" for i in range(101)}, files=files(1))
    assert fields.status_code == 400 and "100 form fields" in fields.json()["error"]["message"]
