"""Any OpenAI-compatible upstream: OpenAI, vLLM, Ollama, llama.cpp server, another proxy.

The upstream client is the proxy's own (``upstream_http``: an asyncio protocol with httptools),
not httpx nor aiohttp: measured on the 2-vCPU benchmark machine, an httpx request cost ~4 ms of
CPU, an aiohttp one ~1 ms at 200 req/s open loop, the lean client a fraction of that
(docs/benchmarks/llm-proxy.md) — the client was the largest share of a proxied request each time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ragfleet.common.context import current_request_id
from ragfleet.common.telemetry import inject_context
from ragfleet.llm_proxy.config import ModelDeployment
from ragfleet.llm_proxy.providers.base import Chunk, UpstreamFailure, parse_retry_after
from ragfleet.llm_proxy.schemas import ChatCompletionRequest
from ragfleet.llm_proxy.upstream_http import (
    Origin,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamProtocolError,
)

# Statuses worth another try: the request was fine, the upstream was not (or asked us to slow down).
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})
# The longest SSE line accepted: a chunk (a long tool call) may be big.
MAX_LINE_BYTES = 2 << 20


def failure_from_response(status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
    message = f"upstream answered {status}"
    try:
        error = orjson.loads(content).get("error")
        if isinstance(error, dict) and error.get("message"):
            message = f"upstream answered {status}: {error['message']}"
        elif isinstance(error, str):
            message = f"upstream answered {status}: {error}"
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status in RETRYABLE_STATUSES or status >= 500:
        reason = "http_429" if status == 429 else "http_5xx" if status >= 500 else f"http_{status}"
        return UpstreamFailure(
            reason, message, status=status, retry_after_s=parse_retry_after(headers.get("retry-after"))
        )
    return UpstreamFailure(f"http_{status}", message, retryable=False, status=status)


def _transport_failure(exc: Exception, *, streaming: bool) -> UpstreamFailure:
    if isinstance(exc, UpstreamConnectError):
        return UpstreamFailure("connect", f"cannot connect to upstream: {exc}")
    if isinstance(exc, ResponseTooLarge):
        return UpstreamFailure("malformed", str(exc))
    reason = "dropped" if streaming else "connect"
    return UpstreamFailure(reason, f"upstream connection failed: {exc}")


class OpenAICompatibleProvider:
    uses_breaker = True

    def __init__(self, deployment: ModelDeployment, client: UpstreamClient) -> None:
        assert deployment.base_url is not None
        self.deployment = deployment
        self.client = client
        self.origin = Origin.parse(deployment.base_url)
        key = deployment.read_api_key()
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def _request_headers(self) -> dict[str, str]:
        """Every outgoing call carries the caller's trace context and request id."""
        headers = dict(self.headers)
        inject_context(headers)
        request_id = current_request_id()
        if request_id:
            headers["X-Request-Id"] = request_id
        return headers

    async def _post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deployment = self.deployment
        try:
            # A JSON answer is bounded as a whole, the pool wait and the connect included.
            response = await self.client.post(
                self.origin,
                path,
                self._request_headers(),
                orjson.dumps(body),
                connect_timeout_s=deployment.connect_timeout_s,
                total_timeout_s=deployment.total_timeout_s,
            )
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"upstream gave no answer within {deployment.total_timeout_s:g}s"
            ) from None
        except (UpstreamConnectError, UpstreamProtocolError) as exc:
            raise _transport_failure(exc, streaming=False) from exc
        if response.status != 200:
            raise failure_from_response(response.status, response.body, response.headers)
        try:
            payload = orjson.loads(response.body)
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

    async def stream(
        self, request: ChatCompletionRequest, body: dict[str, Any]
    ) -> AsyncIterator[list[Chunk]]:
        deployment = self.deployment
        try:
            # A stream's total and first-token bounds are the dispatcher's (OpenedStream): here
            # only the connect and the between-reads bounds apply.
            response = await self.client.open_stream(
                self.origin,
                "/chat/completions",
                self._request_headers(),
                orjson.dumps(body),
                connect_timeout_s=deployment.connect_timeout_s,
                read_timeout_s=deployment.total_timeout_s,
            )
        except TimeoutError:
            raise UpstreamFailure("timeout", "upstream timed out before answering") from None
        except (UpstreamConnectError, UpstreamProtocolError) as exc:
            raise _transport_failure(exc, streaming=False) from exc
        finished = False
        try:
            if response.status != 200:
                raise failure_from_response(response.status, await response.read(), response.headers)
            # Whatever has arrived is parsed and handed on as one batch (``readany`` waits only
            # when nothing is buffered): a token alone is not delayed, and tokens that arrived
            # together cost one write to the client instead of one each.
            partial = b""
            while True:
                received = await response.readany()
                if received:
                    lines = (partial + received).split(b"\n")
                    partial = lines.pop()  # an incomplete line waits for the rest of it
                    if len(partial) > MAX_LINE_BYTES:
                        raise UpstreamFailure(
                            "malformed", f"upstream sent a line over {MAX_LINE_BYTES} bytes"
                        )
                else:  # the end of the body: its last line may have no newline
                    lines, partial = [partial], b""
                batch, finished, failure = parse_events(lines)
                if batch:
                    yield batch  # what came before a failure still reaches the client, as before
                if failure is not None:
                    raise failure
                if finished:
                    return
                if not received:
                    raise UpstreamFailure("dropped", "upstream ended the stream without [DONE]")
        except TimeoutError:
            raise UpstreamFailure("timeout", "upstream stream stalled") from None
        except UpstreamProtocolError as exc:
            raise _transport_failure(exc, streaming=True) from exc
        finally:
            # Back to the pool when the stream ended ([DONE]); closed (which the upstream sees as
            # a disconnect, cancelling its work) when the client left or the stream broke.
            response.release(finished=finished)


def parse_events(lines: list[bytes]) -> tuple[list[Chunk], bool, UpstreamFailure | None]:
    """The chunks in complete SSE lines; whether ``[DONE]`` ended them (what follows is ignored);
    the failure that ended them early, if one did (the chunks before it still count)."""
    batch: list[Chunk] = []
    for raw in lines:
        if not raw.startswith(b"data:"):
            continue  # comments, event names, blank separators
        data = raw[5:].strip()
        if data == b"[DONE]":
            return batch, True, None
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return batch, False, UpstreamFailure("malformed", "upstream sent a chunk that is not JSON")
        if not isinstance(parsed, dict):
            return (
                batch,
                False,
                UpstreamFailure("malformed", "upstream sent a chunk that is not a JSON object"),
            )
        if parsed.get("error"):
            error = parsed["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            return (
                batch,
                False,
                UpstreamFailure("stream_error", f"upstream reported an error mid-stream: {message}"),
            )
        batch.append(Chunk(data.decode(), parsed))
    return batch, False, None
