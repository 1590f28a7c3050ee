"""The public API as a chaos client uses it: every call returns an ``Outcome``, never raises for a
fault, so that what a real client would have seen is what gets counted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ragfleet.chaos.verdicts import Outcome

TERMINAL_EVENTS = ("done", "error")


@dataclass
class SseEvent:
    event: str
    id: str
    data: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.id.rsplit(":", 1)[1]) if ":" in self.id else 0


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Events with data, as an EventSource dispatches them (comments and bare ``retry:`` skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield SseEvent(
                    fields.get("event", "message"), fields.get("id", ""), orjson.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.lstrip()


def failure_status(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "connection-error"


@dataclass
class StreamResult:
    """An SSE chat as a client saw it: its events, and the outcome of the connection."""

    outcome: Outcome
    events: list[SseEvent] = field(default_factory=list)
    replica: str | None = None

    @property
    def terminal(self) -> SseEvent | None:
        return self.events[-1] if self.events and self.events[-1].event in TERMINAL_EVENTS else None


def stream_status(http_status: int, events: list[SseEvent]) -> str:
    """ "200" only for a stream that ended with ``done``; an ``error`` event is counted by its code."""
    if http_status != 200:
        return str(http_status)
    if not events or events[-1].event not in TERMINAL_EVENTS:
        return "truncated"
    if events[-1].event == "error":
        return f"error-event:{events[-1].data.get('code', 'unknown')}"
    return "200"


class ApiClient:
    """One client of the public API (its own connection pool and affinity cookie)."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 15.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, kind: str, method: str, url: str, **kwargs: Any
    ) -> tuple[Outcome, httpx.Response | None]:
        started = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            return Outcome(kind, started, time.monotonic() - started, failure_status(exc)), None
        return Outcome(kind, started, time.monotonic() - started, str(response.status_code)), response

    async def search(
        self, query: str, *, collection: str = "default", mode: str = "hybrid"
    ) -> tuple[Outcome, httpx.Response | None]:
        return await self.call(
            "search",
            "POST",
            "/v1/search",
            json={"query": query, "collection": collection, "mode": mode, "top_k": 3},
        )

    async def chat(self, message: str, **body: Any) -> tuple[Outcome, httpx.Response | None]:
        return await self.call("chat", "POST", "/v1/chat", json={"message": message, **body})

    async def ingest(
        self, collection: str, documents: list[dict[str, Any]]
    ) -> tuple[Outcome, httpx.Response | None]:
        return await self.call(
            "ingest",
            "POST",
            "/v1/documents",
            params={"collection": collection},
            json={"documents": documents},
        )

    async def job(self, job_id: str, collection: str) -> dict[str, Any] | None:
        try:
            response = await self.http.get(f"/v1/jobs/{job_id}", params={"collection": collection})
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def chat_stream(
        self,
        message: str | None = None,
        *,
        last_event_id: str | None = None,
        stop_after: int | None = None,
        kind: str = "chat-sse",
        events: list[SseEvent] | None = None,
        **body: Any,
    ) -> StreamResult:
        """POST /v1/chat as SSE (or resume it with ``last_event_id``); ``stop_after`` events, the
        client walks away, as a client whose connection drops does. ``events`` (the caller's list)
        fills as events arrive, so the caller can watch a stream in flight."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        payload = {"message": message or "resume", **body}
        started = time.monotonic()
        events = [] if events is None else events
        replica = None
        try:
            async with self.http.stream("POST", "/v1/chat", json=payload, headers=headers) as response:
                replica = response.headers.get("x-ragfleet-replica")
                if response.status_code == 200:
                    async for event in sse_events(response):
                        events.append(event)
                        if event.event in TERMINAL_EVENTS or (stop_after and len(events) >= stop_after):
                            break
                else:
                    await response.aread()
                status = stream_status(response.status_code, events)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            status = (
                "truncated"
                if events
                else failure_status(exc)
                if isinstance(exc, httpx.HTTPError)
                else "bad-event"
            )
        outcome = Outcome(kind, started, time.monotonic() - started, status)
        return StreamResult(outcome, events, replica)
