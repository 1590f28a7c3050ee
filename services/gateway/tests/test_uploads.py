"""Uploads through a real gateway process: streamed to ingestion as they arrive, the body limit
counted on the way, and a bound on how many one key has in progress (across replicas)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ragfleet.devstack.processes import free_port

pytestmark = pytest.mark.integration


async def until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Ingestion:
    """Stands in for the ingestion API on a real port: reads each upload's body as it streams in
    and counts the bytes, so a test can see what reached it before the client finished."""

    def __init__(self) -> None:
        self.received: list[int] = []  # bytes so far, per upload in arrival order

    async def documents(self, request: Request) -> JSONResponse:
        index = len(self.received)
        self.received.append(0)
        async for part in request.stream():
            self.received[index] += len(part)
        return JSONResponse({"job_id": "j", "status_url": "/v1/jobs/j", "documents": []}, status_code=202)


@pytest.fixture
async def ingestion() -> AsyncIterator[tuple[Ingestion, str]]:
    double = Ingestion()
    app = Starlette(routes=[Route("/v1/documents", double.documents, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    yield double, f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


def held_body(release: asyncio.Event, first: bytes = b'{"documents": [') -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        yield first
        await release.wait()
        yield b'{"text": "hello"}]}'

    return body()


async def test_uploads_stream_through_and_are_bounded_per_key(start_gateway, make_key, ingestion) -> None:
    double, url = ingestion
    env = {"INGESTION_URL": url, "MAX_CONCURRENT_UPLOADS_PER_KEY": "2", "MAX_UPLOAD_BYTES": "65536"}
    first, second = start_gateway("gw-up-a", env), start_gateway("gw-up-b", env)
    key = await make_key("acme", ["default"])
    other_key = await make_key("acme", ["default"])
    json_type = {"content-type": "application/json"}
    release = asyncio.Event()
    async with httpx.AsyncClient(headers={"X-API-Key": key, **json_type}, timeout=30) as client:
        # Two uploads in progress, one per replica; the first bytes reach ingestion before the
        # client has sent the rest (streamed, not buffered whole).
        held = [
            asyncio.create_task(client.post(f"{gw.url}/v1/documents", content=held_body(release)))
            for gw in (first, second)
        ]
        await until(lambda: len(double.received) == 2 and all(double.received))
        assert not any(task.done() for task in held)

        refused = await client.post(f"{first.url}/v1/documents", json={"documents": [{"text": "x"}]})
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "2"
        error = refused.json()["error"]
        assert error["code"] == "too_many_concurrent_uploads"
        assert "max_concurrent_uploads_per_key" in error["message"] and error["details"]["max"] == 2
        assert len(double.received) == 2  # refused before anything was sent on

        # Another key is not held back by this one's uploads.
        other = await client.post(
            f"{second.url}/v1/documents",
            json={"documents": [{"text": "x"}]},
            headers={"X-API-Key": other_key},
        )
        assert other.status_code == 202, other.text

        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [202, 202]
        again = await client.post(f"{first.url}/v1/documents", json={"documents": [{"text": "x"}]})
        assert again.status_code == 202, again.text  # the slots were given back

        async def chunked(parts: int) -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(parts):
                yield b" " * 8192

        fits = await client.post(f"{first.url}/v1/documents", content=chunked(7))
        assert fits.status_code == 202 and double.received[-1] == 7 * 8192
        too_large = await client.post(f"{first.url}/v1/documents", content=chunked(20))
        assert too_large.status_code == 413, too_large.text
        assert "65536" in too_large.json()["error"]["message"]
        assert double.received[-1] <= 65536 + 8192  # never more than the limit went downstream
