"""The completions/embeddings fast path on its own (no process, no Redis): what it answers itself,
through the route functions and the extractive model, and what it hands on to the ordinary route."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
from redis.asyncio import Redis

from ragfleet.llm_proxy.breaker import BreakerBoard, BreakerConfig
from ragfleet.llm_proxy.config import LlmProxySettings
from ragfleet.llm_proxy.dispatcher import Dispatcher
from ragfleet.llm_proxy.fast_path import ChatCompletionsFastPath, EmbeddingsFastPath
from ragfleet.llm_proxy.quotas import Limiter
from ragfleet.llm_proxy.registry import ModelRegistry

PATHS = {ChatCompletionsFastPath: "/v1/chat/completions", EmbeddingsFastPath: "/v1/embeddings"}


def app_state() -> SimpleNamespace:
    """What the lifespan builds, for the built-in extractive model only. The Redis client is never
    reached: the extractive model has no breaker, no limits are set and the cache is off."""
    settings = LlmProxySettings(environment="development", cache_enabled=False, embeddings_builtin=False)
    redis = Redis.from_url("redis://127.0.0.1:9/0")
    registry = ModelRegistry(settings.deployments, None)  # type: ignore[arg-type]  # no HTTP upstream
    breakers = BreakerBoard(redis, BreakerConfig(4, 30, 15, 30))
    return SimpleNamespace(
        settings=settings,
        registry=registry,
        breakers=breakers,
        dispatcher=Dispatcher(registry, breakers, settings),
        limiter=Limiter(redis, retention_days=1),
        response_cache=None,
        builtin_embeddings=None,
    )


async def call(
    fast_path: type[ChatCompletionsFastPath | EmbeddingsFastPath],
    body: bytes,
    *,
    length: bool = True,
    content_type: bytes = b"application/json",
) -> dict[str, Any]:
    headers = [(b"content-type", content_type)]
    if length:
        headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATHS[fast_path],
        "headers": headers,
        "app": SimpleNamespace(state=app_state()),
    }
    handed_on: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()  # the ordinary route re-reads the bytes the fast path took
        handed_on.append(message["body"])

    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays: the route's disconnect watcher is cancelled
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await fast_path(inner)(scope, receive, send)
    return {"handed_on": handed_on, "sent": sent, "route": scope.get("route")}


def chat(**body: Any) -> bytes:
    return orjson.dumps(
        {"model": "extractive", "messages": [{"role": "user", "content": "Cats purr."}], **body}
    )


async def test_a_completion_is_answered_by_the_route_function_without_the_framework() -> None:
    result = await call(ChatCompletionsFastPath, chat())
    assert result["handed_on"] == []
    start, body = result["sent"]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"x-ragfleet-served-by"] == b"extractive" and b"x-proxy-overhead-ms" in headers
    payload = orjson.loads(body["body"])
    assert payload["object"] == "chat.completion" and payload["choices"][0]["message"]["content"]
    assert result["route"].path == "/v1/chat/completions"  # the request metrics see the route's template


async def test_a_stream_is_answered_as_server_sent_events() -> None:
    result = await call(ChatCompletionsFastPath, chat(stream=True))
    assert result["handed_on"] == []
    start, *bodies = result["sent"]
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    text = b"".join(m.get("body", b"") for m in bodies)
    assert text.startswith(b"data: {") and text.endswith(b"data: [DONE]\n\n")


async def test_a_domain_error_of_the_route_gets_the_error_model() -> None:
    result = await call(ChatCompletionsFastPath, chat(model="nope"))
    assert result["handed_on"] == []
    start, body = result["sent"]
    assert start["status"] == 404
    assert orjson.loads(body["body"])["error"]["code"] == "model_not_found"
    result = await call(EmbeddingsFastPath, orjson.dumps({"model": "x", "input": []}))
    start, body = result["sent"]
    assert start["status"] == 400 and "non-empty" in orjson.loads(body["body"])["error"]["message"]


async def test_what_it_is_not_sure_of_goes_to_the_ordinary_route_with_its_bytes() -> None:
    for fast_path, body, kwargs in [
        (ChatCompletionsFastPath, chat(messages=[]), {}),  # the route answers the 422 with its fields
        (ChatCompletionsFastPath, chat(temperature=3), {}),
        (ChatCompletionsFastPath, b"{not json", {}),
        (ChatCompletionsFastPath, b"[]", {}),
        (ChatCompletionsFastPath, chat(), {"length": False}),  # chunked: no Content-Length
        (ChatCompletionsFastPath, chat(), {"content_type": b"text/plain"}),
        (ChatCompletionsFastPath, b" " * (1024 * 1024 + 1), {}),  # over the fast path's limit
        (EmbeddingsFastPath, orjson.dumps({"model": "m", "input": [1, 2]}), {}),
    ]:
        result = await call(fast_path, body, **kwargs)
        assert result["handed_on"] == [body], body[:60]
        assert result["sent"] == [] and result["route"] is None
