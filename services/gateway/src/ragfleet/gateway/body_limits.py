"""Request body limits, enforced before a large body is read.

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
counted as it streams in and refused as soon as it passes the limit. Either way the client gets
a JSON 413 and the gateway never holds more than the limit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from ragfleet.common.errors import BadRequest, PayloadTooLarge
from ragfleet.common.routing import OrjsonRoute

UPLOAD_PATHS = frozenset({"/v1/documents"})


def body_limit(request: Request) -> int:
    settings = request.app.state.settings
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return int(settings.max_upload_bytes if path in UPLOAD_PATHS else settings.max_body_bytes)


def _too_large(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


def counting_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # An HTTPException (not a domain error) because FastAPI re-raises only those from
                # body parsing; the common handler turns it into the JSON 413.
                raise HTTPException(413, detail=_too_large(limit))
        return message

    return receive_within_limit


class SizeLimitedRoute(OrjsonRoute):
    """A route whose requests are refused with 413 once their body passes the limit (JSON by orjson)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()  # OrjsonRoute's: it wraps the request it is given

        async def limited_handler(request: Request) -> Response:
            if request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
                return await handler(request)
            limit = body_limit(request)
            declared = request.headers.get("content-length")
            if declared is not None:
                if not declared.isdigit():
                    raise BadRequest("Content-Length must be a number of bytes")
                if int(declared) > limit:
                    raise PayloadTooLarge(_too_large(limit), details={"limit_bytes": limit})
            limited = Request(request.scope, counting_receive(request.receive, limit))
            return await handler(limited)

        return limited_handler
