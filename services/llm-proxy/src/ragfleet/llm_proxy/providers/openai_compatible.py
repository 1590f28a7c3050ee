"""Any OpenAI-compatible upstream: OpenAI, vLLM, Ollama, llama.cpp server, another proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ragfleet.llm_proxy.config import ModelDeployment
from ragfleet.llm_proxy.providers.base import Chunk, UpstreamFailure, parse_retry_after
from ragfleet.llm_proxy.schemas import ChatCompletionRequest

# Statuses worth another try: the request was fine, the upstream was not (or asked us to slow down).
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})


def failure_from_response(response: httpx.Response) -> UpstreamFailure:
    status = response.status_code
    message = f"upstream answered {status}"
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            message = f"upstream answered {status}: {error['message']}"
        elif isinstance(error, str):
            message = f"upstream answered {status}: {error}"
    except (ValueError, AttributeError):
        pass
    if status in RETRYABLE_STATUSES or status >= 500:
        reason = "http_429" if status == 429 else "http_5xx" if status >= 500 else f"http_{status}"
        return UpstreamFailure(
            reason,
            message,
            status=status,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    return UpstreamFailure(f"http_{status}", message, retryable=False, status=status)


def _transport_failure(exc: httpx.HTTPError, *, streaming: bool) -> UpstreamFailure:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure("timeout", f"upstream timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamFailure("connect", f"cannot connect to upstream: {exc}")
    reason = "dropped" if streaming else "connect"
    return UpstreamFailure(reason, f"upstream connection failed: {type(exc).__name__}: {exc}")


class OpenAICompatibleProvider:
    uses_breaker = True

    def __init__(self, deployment: ModelDeployment, client: httpx.AsyncClient) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self.client = client
        self.base_url = deployment.base_url.rstrip("/")
        key = deployment.read_api_key()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.timeout = httpx.Timeout(deployment.total_timeout_s, connect=deployment.connect_timeout_s)

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            # httpx's timeouts are per operation; wait_for bounds the whole call.
            response = await asyncio.wait_for(
                self.client.post(self.base_url + path, json=body, headers=self.headers, timeout=self.timeout),
                self.deployment.total_timeout_s,
            )
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"upstream gave no answer within {self.deployment.total_timeout_s:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, streaming=False) from exc
        if response.status_code != 200:
            raise failure_from_response(response)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamFailure("malformed", "upstream answered with invalid JSON") from None
        if not isinstance(payload, dict):
            raise UpstreamFailure("malformed", "upstream answered with a JSON value that is not an object")
        return payload

    async def complete(self, request: ChatCompletionRequest, body: dict[str, Any]) -> dict[str, Any]:
        payload = await self._post_json("/chat/completions", body)
        if not isinstance(payload.get("choices"), list):
            raise UpstreamFailure("malformed", "upstream completion has no choices")
        return payload

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._post_json("/embeddings", body)

    async def stream(self, request: ChatCompletionRequest, body: dict[str, Any]) -> AsyncIterator[Chunk]:
        http_request = self.client.build_request(
            "POST", self.base_url + "/chat/completions", json=body, headers=self.headers, timeout=self.timeout
        )
        try:
            response = await self.client.send(http_request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, streaming=False) from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise failure_from_response(response)
            finished = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamFailure("malformed", "upstream sent a chunk that is not JSON") from None
                if not isinstance(parsed, dict):
                    raise UpstreamFailure("malformed", "upstream sent a chunk that is not a JSON object")
                if parsed.get("error"):
                    error = parsed["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise UpstreamFailure("stream_error", f"upstream reported an error mid-stream: {message}")
                yield Chunk(data, parsed)
            if not finished:
                raise UpstreamFailure("dropped", "upstream ended the stream without [DONE]")
        except httpx.HTTPError as exc:
            raise _transport_failure(exc, streaming=True) from exc
        finally:
            await response.aclose()
