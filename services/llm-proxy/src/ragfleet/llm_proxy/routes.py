"""The OpenAI-compatible endpoints: chat completions (JSON or SSE), embeddings, models; and usage."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ragfleet.common.errors import BadRequest
from ragfleet.common.routing import OrjsonRoute
from ragfleet.llm_proxy import metrics
from ragfleet.llm_proxy.breaker import BreakerBoard, Permit
from ragfleet.llm_proxy.config import BUILTIN_EMBEDDING_MODEL
from ragfleet.llm_proxy.dependencies import (
    BreakersDep,
    BuiltinEmbeddingsDep,
    DispatcherDep,
    LimiterDep,
    RegistryDep,
    ResponseCacheDep,
    SettingsDep,
)
from ragfleet.llm_proxy.dispatcher import Dispatched, Dispatcher, OpenedStream, open_stream
from ragfleet.llm_proxy.providers.base import UpstreamFailure
from ragfleet.llm_proxy.providers.extractive import count_tokens
from ragfleet.llm_proxy.quotas import Caller, Limiter, identify
from ragfleet.llm_proxy.registry import Deployment
from ragfleet.llm_proxy.response_cache import CachePolicy, ResponseCache, XCache, cache_policy
from ragfleet.llm_proxy.schemas import ChatCompletionRequest, EmbeddingRequest
from ragfleet.llm_proxy.streaming import (
    DONE_EVENT,
    EventStreamResponse,
    cancel_on_disconnect,
    sse_data,
    sse_error,
)

log = logging.getLogger("ragfleet.llm_proxy")

JSON = "application/json"


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OrjsonRoute)


def received_at(request: Request) -> float:
    """When the request reached the proxy (set by the outermost middleware, before body parsing)."""
    return float(request.scope.get("state", {}).get("proxy_received_at", time.perf_counter()))


def proxy_headers(
    request: Request, *, upstream_s: float, x_cache: XCache, served_by: str | None
) -> dict[str, str]:
    overhead_s = max(0.0, time.perf_counter() - received_at(request) - upstream_s)
    metrics.OVERHEAD.labels(request.scope["path"]).observe(overhead_s)
    headers = {"X-Proxy-Overhead-Ms": f"{overhead_s * 1000:.3f}", "X-Cache": x_cache}
    if served_by:
        headers["X-Ragfleet-Served-By"] = served_by
    return headers


def estimate_usage(request: ChatCompletionRequest, completion_text: str) -> dict[str, int]:
    """For upstreams that report no usage: the extractive provider's word-and-punctuation count."""
    prompt = sum(count_tokens(m.text()) for m in request.messages)
    completion = count_tokens(completion_text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@router.get("/models", summary="The models this proxy serves")
async def list_models(registry: RegistryDep, builtin: BuiltinEmbeddingsDep) -> dict[str, Any]:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": deployments[0].config.provider}
        for name, deployments in registry.groups.items()
    ]
    if builtin is not None:
        data.append({"id": BUILTIN_EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "builtin"})
    return {"object": "list", "data": data}


@router.get("/usage", summary="The caller's token usage per model for one day (UTC)")
async def usage(
    request: Request, limiter: LimiterDep, day: Annotated[dt.date | None, Query()] = None
) -> dict[str, Any]:
    caller = identify(request.headers)
    when = day or dt.datetime.now(dt.UTC).date()
    return {"key": caller.key, "day": when.isoformat(), "models": await limiter.usage(caller, when)}


@router.post("/chat/completions", summary="Chat completion (stream=true for Server-Sent Events)")
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    dispatcher: DispatcherDep,
    breakers: BreakersDep,
    limiter: LimiterDep,
    cache: ResponseCacheDep,
) -> Response:
    caller = identify(request.headers)
    registry.deployments(body.model)  # an unknown model is a 404 before anything is counted
    await limiter.admit(caller, settings.limits_for(caller.key))
    policy = cache_policy(request.headers, body, cache is not None)
    stream = "true" if body.stream else "false"

    if policy.read and cache is not None:
        hit = await cache.lookup(caller.tenant, body)
        if hit is not None:
            entry, tier = hit
            metrics.REQUESTS.labels(body.model, "chat", stream, "cache_hit").inc()
            headers = proxy_headers(request, upstream_s=0.0, x_cache=tier, served_by=entry.get("served_by"))
            if body.stream:
                return EventStreamResponse(_replay(entry["chunks"]), headers=headers)
            return Response(orjson.dumps(entry["body"]), media_type=JSON, headers=headers)

    x_cache: XCache = "miss" if policy.used else "bypass"
    if body.stream:
        return await _stream_completion(
            body, request, dispatcher, Accounting(limiter, cache, breakers, caller, policy), x_cache
        )

    def call(deployment: Deployment) -> Coroutine[Any, Any, dict[str, Any]]:
        upstream_body = body.upstream_body(deployment.upstream_model, deployment.config.max_tokens)
        return deployment.provider.complete(body, upstream_body)

    dispatched = await _dispatch(request, dispatcher, body.model, "chat", stream, call)
    payload = dispatched.result
    served_by = dispatched.deployment.name
    usage = payload.get("usage") or estimate_usage(
        body, "".join(str((c.get("message") or {}).get("content") or "") for c in payload["choices"])
    )
    limiter.record(caller, served_by, usage)
    if policy.write and cache is not None and _finished_normally(payload):
        # Stored before answering, so that the same request right after is a hit.
        entry = {"body": payload, "served_by": served_by}
        await cache.store(caller.tenant, body, entry, replace=not policy.read)
    metrics.REQUESTS.labels(body.model, "chat", stream, "ok").inc()
    headers = proxy_headers(request, upstream_s=dispatched.upstream_s, x_cache=x_cache, served_by=served_by)
    return Response(orjson.dumps(payload), media_type=JSON, headers=headers)


def _finished_normally(payload: dict[str, Any]) -> bool:
    return all(
        c.get("finish_reason") in ("stop", "length", "tool_calls") for c in payload.get("choices") or []
    )


async def _dispatch(
    request: Request, dispatcher: Dispatcher, model: str, endpoint: str, stream: str, call: Any
) -> Dispatched[Any]:
    try:
        return await cancel_on_disconnect(request, dispatcher.dispatch(model, call))
    except Exception as exc:
        metrics.REQUESTS.labels(model, endpoint, stream, getattr(exc, "code", "internal_error")).inc()
        raise


async def _replay(chunks: list[str]) -> AsyncIterator[bytes]:
    yield b"".join(map(sse_data, chunks)) + DONE_EVENT  # the same events, in one write


@dataclass(frozen=True)
class Accounting:
    """What a streamed answer settles once its last chunk is relayed: usage, the cache, the breaker."""

    limiter: Limiter
    cache: ResponseCache | None
    breakers: BreakerBoard
    caller: Caller
    policy: CachePolicy


async def _stream_completion(
    body: ChatCompletionRequest,
    request: Request,
    dispatcher: Dispatcher,
    accounting: Accounting,
    x_cache: XCache,
) -> Response:
    def call(deployment: Deployment) -> Coroutine[Any, Any, OpenedStream]:
        upstream_body = body.upstream_body(deployment.upstream_model, deployment.config.max_tokens)
        return open_stream(deployment, deployment.provider.stream(body, upstream_body))

    dispatched = await _dispatch(request, dispatcher, body.model, "chat", "true", call)
    metrics.TIME_TO_FIRST_TOKEN.labels(body.model).observe(time.perf_counter() - received_at(request))
    served_by = dispatched.deployment.name
    headers = proxy_headers(request, upstream_s=dispatched.upstream_s, x_cache=x_cache, served_by=served_by)
    relay = _relay(body, accounting, dispatched.deployment, dispatched.result)
    return EventStreamResponse(relay, headers=headers)


async def _relay(
    body: ChatCompletionRequest,
    accounting: Accounting,
    deployment: Deployment,
    opened: OpenedStream,
) -> AsyncIterator[bytes]:
    """Relay the upstream's chunks unchanged; on a failure after the first token, end with an error event."""
    wants_usage = body.stream_options is not None and body.stream_options.include_usage
    sent: list[str] = []
    text: list[str] = []
    usage: dict[str, Any] | None = None
    try:
        async for batch in opened.batches():
            out: list[bytes] = []
            for chunk in batch:
                if chunk.parsed.get("usage"):
                    usage = chunk.parsed["usage"]
                    if chunk.usage_only and not wants_usage:
                        continue  # we asked for it for accounting; the caller did not
                for choice in chunk.parsed.get("choices") or ():
                    text.append(str((choice.get("delta") or {}).get("content") or ""))
                sent.append(chunk.data)
                out.append(sse_data(chunk.data))
            if out:
                yield b"".join(out)  # the chunks that arrived together: one write to the client
        cache, policy = accounting.cache, accounting.policy
        if policy.write and cache is not None:
            # The upstream finished the stream: store it before the client can ask again.
            entry = {"chunks": sent, "served_by": deployment.name}
            await cache.store(accounting.caller.tenant, body, entry, replace=not policy.read)
        yield DONE_EVENT
        metrics.REQUESTS.labels(body.model, "chat", "true", "ok").inc()
    except asyncio.CancelledError:  # the client left; closing the upstream stream below cancels it
        metrics.REQUESTS.labels(body.model, "chat", "true", "client_disconnected").inc()
        raise
    except UpstreamFailure as failure:
        metrics.STREAM_ERRORS.labels(body.model, failure.reason).inc()
        metrics.REQUESTS.labels(body.model, "chat", "true", "stream_error").inc()
        if deployment.provider.uses_breaker:
            await accounting.breakers.record(deployment.upstream_id, Permit(True), ok=False)
        log.warning("stream failed after the first token: %s", failure.message)
        yield sse_error("upstream_stream_error", f"the upstream stream failed: {failure.message}")
    finally:
        await opened.aclose()
        # Tokens the upstream produced count even when the client left half-way.
        accounting.limiter.record(
            accounting.caller, deployment.name, usage or estimate_usage(body, "".join(text))
        )


@router.post("/embeddings", summary="Embeddings (built-in all-minilm-l6-v2, or a configured upstream)")
async def embeddings(
    body: EmbeddingRequest,
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    dispatcher: DispatcherDep,
    limiter: LimiterDep,
    builtin: BuiltinEmbeddingsDep,
) -> Response:
    caller = identify(request.headers)
    texts = body.texts
    if not texts or any(not isinstance(t, str) for t in texts):
        raise BadRequest("input must be a non-empty string or list of strings")
    if body.model == BUILTIN_EMBEDDING_MODEL and builtin is not None:
        await limiter.admit(caller, settings.limits_for(caller.key))
        started = time.perf_counter()
        payload = await cancel_on_disconnect(request, builtin.embed(texts, body.encoding_format))
        # The model's time is the "upstream" here: overhead is what the proxy adds around it.
        upstream_s, served_by = time.perf_counter() - started, BUILTIN_EMBEDDING_MODEL
    else:
        registry.deployments(body.model)
        await limiter.admit(caller, settings.limits_for(caller.key))

        def call(deployment: Deployment) -> Coroutine[Any, Any, dict[str, Any]]:
            upstream_body = {**body.model_dump(exclude_none=True), "model": deployment.upstream_model}
            return deployment.provider.embed(upstream_body)

        dispatched = await _dispatch(request, dispatcher, body.model, "embeddings", "false", call)
        payload, upstream_s, served_by = dispatched.result, dispatched.upstream_s, dispatched.deployment.name
    limiter.record(caller, served_by, payload.get("usage"))
    metrics.REQUESTS.labels(body.model, "embeddings", "false", "ok").inc()
    headers = proxy_headers(request, upstream_s=upstream_s, x_cache="bypass", served_by=served_by)
    return Response(orjson.dumps(payload), media_type=JSON, headers=headers)
