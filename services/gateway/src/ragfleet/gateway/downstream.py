"""Calls to retrieval, llm-proxy and ingestion over the pooled HTTP client.

Every call carries the tenant (``X-Ragfleet-Tenant``); calls to llm-proxy also carry the key id
(``X-Ragfleet-Key-Id``) for its per-key accounting. Failures become domain errors: a downstream
4xx is relayed as is (it describes the caller's mistake), a 5xx or a broken connection is a 502
or 503, a timeout a 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import httpx
import orjson
from fastapi import Request
from starlette.responses import Response

from ragfleet.common.clients import with_trace_context
from ragfleet.common.contracts import DEGRADED_HEADER, KEY_ID_HEADER, TENANT_HEADER, downstream_error
from ragfleet.common.errors import RagfleetError, ServiceUnavailable, UpstreamError, UpstreamTimeout
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.keys import Principal

T = TypeVar("T")

# Response headers worth relaying from a downstream answer to the client.
RELAYED_HEADERS = ("content-type", "x-cache", "location", "retry-after")


def raise_for_downstream(service: str, response: httpx.Response) -> None:
    error = downstream_error(
        service, response.status_code, response.content, retry_after=response.headers.get("retry-after")
    )
    if error is not None:
        raise error


def translate_transport_error(service: str, exc: httpx.HTTPError) -> RagfleetError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"{service} did not answer in time", details={"service": service})
    return ServiceUnavailable(f"{service} cannot be reached", details={"service": service})


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and the downstream calls it makes) if the client goes away.

    Only for handlers that have read their body already: it listens on the request's channel.
    """
    task = asyncio.ensure_future(work)

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise asyncio.CancelledError("client disconnected")
    return task.result()


@dataclass(frozen=True)
class SearchReply:
    """Retrieval's answer to a search: its JSON bytes as sent, its ``X-Cache`` value, and its
    ``X-Search-Degraded`` reason if it is less than was asked (then it must not be cached)."""

    content: bytes
    cache: str | None
    degraded: str | None = None


class Downstream:
    """``http`` (httpx) for every call but the search; ``session`` (aiohttp) for the search, the
    one call on a hot path — every search that misses the edge tier, every chat turn — where
    httpx's own CPU per request was most of the gateway's (clients.create_http_session)."""

    def __init__(
        self, http: httpx.AsyncClient, session: aiohttp.ClientSession, settings: GatewaySettings
    ) -> None:
        self.http = http
        self.session = session
        self.settings = settings
        # None for a component the deployment leaves out (see GatewaySettings).
        self.retrieval = settings.retrieval_url
        self.llm_proxy = settings.llm_proxy_url
        self.ingestion = settings.ingestion_url

    @staticmethod
    def base(service: str, url: str | None) -> str:
        """``url``, or a 503 naming the component when the deployment has none."""
        if url is None:
            raise ServiceUnavailable(
                f"{service} is not enabled in this deployment",
                code="component_disabled",
                details={"service": service},
            )
        return url

    @staticmethod
    def tenant_headers(principal: Principal) -> dict[str, str]:
        return {TENANT_HEADER: principal.tenant}

    async def search(self, principal: Principal, body: Mapping[str, Any]) -> SearchReply:
        url = f"{self.base('retrieval', self.retrieval)}/v1/search"
        headers = with_trace_context({**self.tenant_headers(principal), "content-type": "application/json"})
        try:
            async with self.session.post(url, data=orjson.dumps(body), headers=headers) as response:
                content = await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors (and some ClientErrors too)
            raise UpstreamTimeout(
                "retrieval did not answer in time", details={"service": "retrieval"}
            ) from exc
        except aiohttp.ClientError as exc:
            raise ServiceUnavailable("retrieval cannot be reached", details={"service": "retrieval"}) from exc
        error = downstream_error(
            "retrieval", response.status, content, retry_after=response.headers.get("retry-after")
        )
        if error is not None:
            raise error
        return SearchReply(content, response.headers.get("x-cache"), response.headers.get(DEGRADED_HEADER))

    async def collections(self, principal: Principal) -> list[dict[str, Any]]:
        try:
            response = await self.http.get(
                f"{self.base('retrieval', self.retrieval)}/v1/collections",
                headers=self.tenant_headers(principal),
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error("retrieval", exc) from exc
        raise_for_downstream("retrieval", response)
        collections: list[dict[str, Any]] = response.json().get("collections", [])
        return collections

    async def forward(
        self,
        service: str,
        principal: Principal,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Relay one call and its answer (status, body, useful headers) without re-encoding it."""
        try:
            response = await self.http.request(
                method,
                url,
                params=params,
                content=content,
                headers={**self.tenant_headers(principal), **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise translate_transport_error(service, exc) from exc
        if response.status_code >= 500:
            raise_for_downstream(service, response)
        relayed = {k: v for k, v in response.headers.items() if k.lower() in RELAYED_HEADERS}
        return Response(response.content, status_code=response.status_code, headers=relayed)

    async def chat_completion_stream(
        self, principal: Principal, payload: Mapping[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The chunks of a streamed chat completion, as parsed JSON objects."""
        headers = {
            **self.tenant_headers(principal),
            KEY_ID_HEADER: principal.key_id,
            "accept": "text/event-stream",
            "content-type": "application/json",
        }
        request = self.http.build_request(
            "POST",
            f"{self.base('llm-proxy', self.llm_proxy)}/v1/chat/completions",
            content=orjson.dumps({**payload, "stream": True}),
            headers=headers,
            timeout=httpx.Timeout(self.settings.llm_timeout_s, connect=self.settings.http_connect_timeout_s),
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise translate_transport_error("llm-proxy", exc) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for_downstream("llm-proxy", response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = orjson.loads(data)
                if "error" in chunk:
                    error = (
                        chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
                    )
                    raise UpstreamError(f"llm-proxy failed mid-stream: {error.get('message', 'unknown')}")
                yield chunk
        except httpx.HTTPError as exc:
            raise translate_transport_error("llm-proxy", exc) from exc
        finally:
            await response.aclose()
