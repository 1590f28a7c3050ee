"""Uploads are streamed to staging, never held whole: the API stages each file in Redis piece by
piece while it arrives, refuses a body at the byte that crosses a limit, and leaves nothing staged
when it refuses; the worker reads a staged document back in pieces of the same size.

The API app runs in this process (through ASGI, without its lifespan) so that its memory can be
traced, against a real Redis and a real Celery app publishing to it (no worker is needed: these
tests end once the job is queued)."""

from __future__ import annotations

import hashlib
import math
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis

from ragfleet.devstack.processes import free_port
from ragfleet.ingestion import jobs
from ragfleet.ingestion.celery_app import create_celery
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.main import create_app
from ragfleet.ingestion.staging import read_staged

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CHUNK = 256 * 1024  # stage_chunk_bytes
NETWORK_CHUNK = 64 * 1024  # what a client's body arrives in
BOUNDARY = "ragfleet-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def settings_for(redis_url: str, **overrides: Any) -> IngestionSettings:
    return IngestionSettings(
        redis_url=redis_url,
        environment="development",
        max_document_bytes=8 * MIB,
        max_request_bytes=20 * MIB,
        max_documents_per_request=4,
        stage_chunk_bytes=CHUNK,
        **overrides,
    )


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@asynccontextmanager
async def api(settings: IngestionSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    app.state.settings = settings
    app.state.redis = Redis.from_url(settings.state_redis)
    app.state.celery = create_celery(settings)
    app.state.retrieval = None  # never reached by an upload
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://ingestion",
        headers={"X-Ragfleet-Tenant": "acme"},
    ) as http:
        yield http
    await app.state.redis.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api(settings_for(redis_url)) as http:
        yield http


class Body:
    """A multipart body generated as it is sent, in network-sized chunks, so the test itself never
    holds a whole document; each file's SHA-256 is kept to compare with what was staged."""

    def __init__(self, files: list[tuple[str, int, str]], metadata_after: str | None = None) -> None:
        self.files = files
        self.metadata_after = metadata_after  # the metadata field, sent after the files
        self.digests: dict[str, str] = {}

    async def chunks(self) -> AsyncIterator[bytes]:
        for filename, size, content_type in self.files:
            yield (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            digest = hashlib.sha256()
            for index in range(math.ceil(size / NETWORK_CHUNK)):
                piece = bytes([65 + index % 26]) * min(NETWORK_CHUNK, size - index * NETWORK_CHUNK)
                digest.update(piece)
                yield piece
            self.digests[filename] = digest.hexdigest()
            yield b"\r\n"
        if self.metadata_after is not None:
            yield (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
                f"{self.metadata_after}\r\n"
            ).encode()
        yield f"--{BOUNDARY}--\r\n".encode()


async def upload(client: httpx.AsyncClient, body: Body) -> httpx.Response:
    return await client.post("/v1/documents", content=body.chunks(), headers={"content-type": MULTIPART})


def command_calls(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def staged_keys(client: redis.Redis) -> list[bytes]:
    return sorted(client.scan_iter("ingestion:payload:*")) + sorted(client.scan_iter("ingestion:job:*"))


async def test_a_document_near_the_limit_is_staged_in_pieces_never_held_whole(
    client: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    warm_up = await upload(client, Body([("warm-up.txt", 1000, "text/plain")]))
    assert warm_up.status_code == 202, warm_up.text  # first use imports kombu's transport: not measured

    size = 8 * MIB - 1000
    body = Body([("big.txt", size, "text/plain")])
    sync_redis.config_resetstat()
    tracemalloc.start()
    try:
        response = await upload(client, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 202, response.text
    # Held whole (the body, then the file read from the form, then the command to Redis), an 8 MiB
    # document costs several times its size; streamed, a few staging pieces.
    assert peak < 2 * MIB, f"peak traced memory {peak} bytes while uploading {size}"

    calls = command_calls(sync_redis)
    assert calls.get("append") == math.ceil(size / CHUNK), calls  # no write bigger than one piece
    assert "set" not in calls, calls
    key = jobs.payload_key(response.json()["job_id"], "big.txt")
    assert sync_redis.ttl(key) > 24 * 3600  # accepted: it waits payload_ttl_s for a worker

    # The worker's side: read back in pieces of the same size, byte for byte what was sent.
    sync_redis.config_resetstat()
    data = read_staged(sync_redis, key, CHUNK)
    assert data is not None and hashlib.sha256(data).hexdigest() == body.digests["big.txt"]
    calls = command_calls(sync_redis)
    assert calls.get("getrange") == math.ceil(size / CHUNK) and "get" not in calls, calls
    assert read_staged(sync_redis, jobs.payload_key("gone", "big.txt"), CHUNK) is None


async def test_a_refused_upload_leaves_nothing_staged(
    client: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    # The second file crosses max_document_bytes after the first was staged whole.
    too_big = await upload(client, Body([("a.txt", 3 * MIB, "text/plain"), ("b.txt", 9 * MIB, "text/plain")]))
    assert too_big.status_code == 413, too_big.text
    error = too_big.json()["error"]
    assert "'b.txt'" in error["message"] and "max_document_bytes" in error["message"]
    assert error["details"] == {"limit": "max_document_bytes", "max": 8 * MIB}
    assert staged_keys(sync_redis) == []

    # A body without Content-Length crossing max_request_bytes on its third file.
    files = [(f"{name}.txt", 7 * MIB, "text/plain") for name in "abc"]
    over = await upload(client, Body(files))
    assert over.status_code == 413 and "max_request_bytes" in over.json()["error"]["message"], over.text
    assert staged_keys(sync_redis) == []

    # Refusals found at a part's start or end, after other files were staged.
    cases = [
        ([("a.txt", 1000, "text/plain"), ("tool.exe", 10, "application/octet-stream")], 415, "tool.exe"),
        ([("a.txt", 1000, "text/plain"), ("empty.txt", 0, "text/plain")], 400, "empty.txt"),
        ([("a.txt", 1000, "text/plain"), ("a.txt", 1000, "text/plain")], 400, "more than once"),
        # At the first file past the limit (Starlette's form parser made this a 400).
        ([(f"{i}.txt", 10, "text/plain") for i in range(5)], 413, "max_documents_per_request"),
    ]
    for files, status, named in cases:
        response = await upload(client, Body(files))
        assert response.status_code == status and named in response.json()["error"]["message"], response.text
        assert staged_keys(sync_redis) == [], files

    # Metadata sent after the files is checked once the body is read: what was staged goes too.
    reserved = await upload(client, Body([("a.txt", 1000, "text/plain")], metadata_after='{"_x": 1}'))
    assert reserved.status_code == 422 and "reserved" in reserved.json()["error"]["message"], reserved.text
    assert staged_keys(sync_redis) == []
    assert sync_redis.zcard(jobs.PENDING_KEY) == 0


async def test_a_truncated_or_malformed_body_is_a_400(
    client: httpx.AsyncClient, sync_redis: redis.Redis
) -> None:
    async def truncated() -> AsyncIterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        ).encode()
        yield b"no closing boundary"

    response = await client.post("/v1/documents", content=truncated(), headers={"content-type": MULTIPART})
    assert response.status_code == 400 and "closing boundary" in response.json()["error"]["message"]
    no_boundary = await client.post(
        "/v1/documents", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400 and "boundary" in no_boundary.json()["error"]["message"]
    assert staged_keys(sync_redis) == []


async def test_a_job_the_broker_cannot_take_is_withdrawn(redis_url: str, sync_redis: redis.Redis) -> None:
    # The broker on its own Redis, and that Redis away: staging works, queueing does not.
    settings = settings_for(redis_url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    async with api(settings) as client:
        response = await upload(client, Body([("a.txt", 3 * MIB, "text/plain")]))
    assert response.status_code == 503, response.text
    assert "broker is unavailable" in response.json()["error"]["message"]
    assert staged_keys(sync_redis) == [] and sync_redis.zcard(jobs.PENDING_KEY) == 0


async def test_a_json_body_is_held_whole_so_it_has_its_own_lower_limit(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    # A JSON value cannot be validated before its end: the API holds the body whole while parsing,
    # so a JSON body gets max_json_request_bytes (far below the streamed multipart limit).
    async with api(settings_for(redis_url, max_json_request_bytes=1 * MIB)) as client:
        document = {"documents": [{"id": "doc", "text": "x" * (2 * MIB)}]}
        declared = await client.post("/v1/documents", json=document)
        assert declared.status_code == 413, declared.text
        error = declared.json()["error"]
        assert "max_json_request_bytes" in error["message"] and "multipart" in error["message"]
        assert error["details"] == {"limit": "max_json_request_bytes", "max": 1 * MIB}

        async def undeclared() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
            yield b'{"documents": [{"id": "doc", "text": "'
            for _ in range(32):
                yield b"x" * NETWORK_CHUNK
            yield b'"}]}'

        streamed = await client.post(
            "/v1/documents", content=undeclared(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413 and "max_json_request_bytes" in streamed.text, streamed.text
        assert staged_keys(sync_redis) == []

        # The same document as a multipart file is under every limit that applies to it.
        accepted = await upload(client, Body([("doc.txt", 2 * MIB, "text/plain")]))
        assert accepted.status_code == 202, accepted.text
