"""Server-Sent Events out, and cancelling upstream work the moment the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragfleet.common.errors import RagfleetError, error_body

T = TypeVar("T")

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # NGINX must not buffer a stream


class ClientClosedRequest(RagfleetError):
    """The client disconnected before the answer was ready (NGINX's 499); nobody reads this response."""

    status_code = 499
    code = "client_closed_request"


def sse_data(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


def sse_error(code: str, message: str) -> bytes:
    """An error event after the stream started; the ``openai`` client raises it as an ``APIError``."""
    return b"data: " + orjson.dumps(error_body(code, message)) + b"\n\n"


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first (the request body is already read)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientClosedRequest("the client disconnected before the answer was ready")
    return task.result()


class EventStreamResponse(StreamingResponse):
    """A ``StreamingResponse`` that stops its body (and so the upstream call) when the client leaves.

    Starlette only notices a gone client when a write fails, which never happens while an upstream
    is silent; here a watcher on ``receive`` cancels the body task at once. The body's ``finally``
    blocks then run normally (asyncio cancellation is delivered once), closing the upstream stream.
    """

    media_type = "text/event-stream"

    def __init__(self, content: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(content, headers={**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = asyncio.ensure_future(self.stream_response(send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((body, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not body.done():
                body.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await body
