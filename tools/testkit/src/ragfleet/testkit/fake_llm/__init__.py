"""A scripted OpenAI-protocol server, the stand-in for a hosted LLM API in tests and benchmarks.

Run it with ``python -m ragfleet.testkit.fake_llm`` (settings ``RAGFLEET_FAKE_UPSTREAM_*``)
and point a model's ``base_url`` at ``http://127.0.0.1:<port>/v1``. It speaks the real protocol
(``/v1/chat/completions`` as JSON and as SSE, ``/v1/embeddings``, ``/v1/models``) over real HTTP,
and misbehaves on demand: each request takes the first queued behaviour that matches its model,
else the default one.

    POST /_control/script   {"behaviours": [{"status": 429, "retry_after": 1, "times": 3}, ...]}
    POST /_control/default  {"ttft_ms": 50, "token_interval_ms": 5}
    POST /_control/reset    forget the script, the default and the request log
    GET  /_control/requests what was received: [{"path", "model", "stream", "behaviour", "body",
                            "client_disconnected"}]

A behaviour: ``status`` (with ``retry_after`` and ``error_message``), ``latency_ms`` before the
response starts, ``ttft_ms`` before a stream's first chunk, ``token_interval_ms`` between chunks,
``hang`` (never answer), ``embedding_dim`` (the length of ``/v1/embeddings`` vectors; default 8), ``malformed_at`` (that chunk is not JSON), ``drop_at`` (the connection
closes after that many chunks; for a JSON answer, after the headers), ``content`` (the answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict
from starlette.responses import JSONResponse, Response, StreamingResponse

from ragfleet.common.app import create_service_app
from ragfleet.common.config import ServiceSettings

DEFAULT_CONTENT = "The fake upstream answers every question the same way."


class FakeUpstreamSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RAGFLEET_FAKE_UPSTREAM_", extra="ignore", frozen=True)

    service_name: str = "fake-upstream"
    port: int = 8099
    access_log: bool = False


class Behaviour(BaseModel):
    model: str | None = Field(None, description="only requests for this model take it")
    times: int = Field(1, ge=1, description="how many requests it applies to (scripted ones)")
    status: int = Field(200, ge=200, le=599)
    retry_after: float | None = None
    error_message: str = "scripted failure"
    latency_ms: float = Field(0, ge=0)
    ttft_ms: float = Field(0, ge=0)
    token_interval_ms: float = Field(0, ge=0)
    hang: bool = False
    malformed_at: int | None = Field(None, ge=0)
    drop_at: int | None = Field(None, ge=0)
    content: str | None = None
    embedding_dim: int | None = Field(None, ge=1, le=8192)


def _embedding_bytes(text: str, dim: int | None) -> bytes:
    """A text's fake vector as bytes, one a dimension: the same text always gets the same one."""
    if dim is None:
        return hashlib.sha256(text.encode()).digest()[:8]
    return hashlib.shake_256(text.encode()).digest(dim)


class Script(BaseModel):
    behaviours: list[Behaviour]


class DroppedConnection(Exception):
    """Raised inside a response body: uvicorn then closes the connection mid-response."""


@dataclass
class Upstream:
    default: Behaviour = field(default_factory=Behaviour)
    queue: list[Behaviour] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    def take(self, model: str | None) -> Behaviour:
        for index, behaviour in enumerate(self.queue):
            if behaviour.model is None or behaviour.model == model:
                if behaviour.times > 1:
                    self.queue[index] = behaviour.model_copy(update={"times": behaviour.times - 1})
                else:
                    del self.queue[index]
                return behaviour
        return self.default


def _error(behaviour: Behaviour) -> JSONResponse:
    headers = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else None
    kind = "rate_limit_exceeded" if behaviour.status == 429 else "server_error"
    body = {"error": {"message": behaviour.error_message, "type": kind, "code": kind}}
    return JSONResponse(body, status_code=behaviour.status, headers=headers)


def _words(text: str) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(text.split(" "))]


def _usage(body: dict[str, Any], pieces: list[str]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}


async def _stream(body: dict[str, Any], behaviour: Behaviour, content: str) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    pieces = _words(content)
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(body, pieces)})
    await asyncio.sleep(behaviour.ttft_ms / 1000)
    for index, chunk in enumerate(chunks):
        if behaviour.drop_at is not None and index >= behaviour.drop_at:
            raise DroppedConnection("scripted dropped connection")
        if index and behaviour.token_interval_ms:
            await asyncio.sleep(behaviour.token_interval_ms / 1000)
        if index == behaviour.malformed_at:
            yield b'data: {"choices": [ this is not json\n\n'
            continue
        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _dropped_body() -> AsyncIterator[bytes]:
    raise DroppedConnection("scripted dropped connection")
    yield b""  # an async generator, so the headers go out before the drop


def create_app(settings: FakeUpstreamSettings | None = None) -> FastAPI:
    settings = settings or FakeUpstreamSettings()
    app = create_service_app(settings, title="fake OpenAI-compatible upstream")
    upstream = Upstream()

    async def behave(request: Request, body: dict[str, Any]) -> Behaviour | Response:
        behaviour = upstream.take(body.get("model"))
        record = {
            "path": request.url.path,
            "model": body.get("model"),
            "stream": bool(body.get("stream")),
            "behaviour": behaviour.model_dump(exclude_defaults=True),
            "body": body,
            "client_disconnected": False,
        }
        upstream.received.append(record)
        if behaviour.hang:
            # Never answer; note when the caller gives up, so tests can see that it did.
            while (await request.receive())["type"] != "http.disconnect":
                pass
            record["client_disconnected"] = True
            return Response(status_code=499)
        await asyncio.sleep(behaviour.latency_ms / 1000)
        if behaviour.status != 200:
            return _error(behaviour)
        return behaviour

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        behaviour = await behave(request, body)
        if isinstance(behaviour, Response):
            return behaviour
        content = behaviour.content or DEFAULT_CONTENT
        if body.get("stream"):
            return StreamingResponse(_stream(body, behaviour, content), media_type="text/event-stream")
        if behaviour.drop_at is not None:
            return StreamingResponse(_dropped_body(), media_type="application/json")
        pieces = _words(content)
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": _usage(body, pieces),
        }
        if behaviour.malformed_at is not None:
            return Response(b'{"choices": [ not json', media_type="application/json")
        return JSONResponse(completion)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = orjson.loads(await request.body())
        behaviour = await behave(request, body)
        if isinstance(behaviour, Response):
            return behaviour
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [b / 255 for b in _embedding_bytes(t, behaviour.embedding_dim)],
            }
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "fake"}],
        }

    @app.post("/_control/script")
    async def script(body: Script) -> dict[str, int]:
        upstream.queue.extend(body.behaviours)
        return {"queued": len(upstream.queue)}

    @app.post("/_control/default")
    async def default(body: Behaviour) -> dict[str, str]:
        upstream.default = body
        return {"status": "ok"}

    @app.post("/_control/reset")
    async def reset() -> dict[str, str]:
        upstream.default, upstream.queue, upstream.received = Behaviour(), [], []
        return {"status": "ok"}

    @app.get("/_control/requests")
    async def requests() -> dict[str, Any]:
        return {"count": len(upstream.received), "requests": upstream.received}

    return app


class FakeUpstreamControl:
    """Drives a running fake upstream from a test (sync, so it fits any test style)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=5)

    def script(self, *behaviours: dict[str, Any]) -> None:
        """Queue behaviours; each request takes the first one matching its model (see the module doc)."""
        self.http.post("/_control/script", json={"behaviours": list(behaviours)}).raise_for_status()

    def default(self, **behaviour: Any) -> None:
        """The behaviour of every request no queued one matches, from now on (see the module doc)."""
        self.http.post("/_control/default", json=behaviour).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_control/reset").raise_for_status()

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = self.http.get("/_control/requests").json()["requests"]
        return [r for r in received if model is None or r["model"] == model]

    def close(self) -> None:
        self.http.close()
