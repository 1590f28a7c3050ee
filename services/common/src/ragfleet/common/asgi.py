"""Pieces of the pure-ASGI fast paths that answer a hot route in front of the framework (the
gateway's edge tier, retrieval's search, llm-proxy's two routes): read a bounded body and
validate it, and when the fast path declines, hand the request on to the ordinary route with the
bytes already read."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

M = TypeVar("M", bound=BaseModel)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None when it has none (or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (``name`` in lower case), decoded; None when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool, Message | None]:
    """The body as far as ``limit``: (bytes, more to come, a non-body message that ended it)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False, None
        if size > limit:
            return b"".join(chunks), True, None


class Replay:
    """A ``receive`` that first hands back what the fast path already read."""

    def __init__(self, receive: Receive, body: bytes, more_body: bool, pending: Message | None) -> None:
        self.receive = receive
        self.messages: list[Message] = [{"type": "http.request", "body": body, "more_body": more_body}]
        if pending is not None:
            self.messages.append(pending)

    async def __call__(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return await self.receive()


async def read_model(scope: Scope, receive: Receive, model: type[M], limit: int) -> tuple[M | None, Receive]:
    """The JSON body validated as ``model`` (as FastAPI does for a body parameter), and the
    ``receive`` the ordinary route must read from if the fast path declines. None — decline —
    for what the fast path is not sure of: no ``Content-Length``, a body over ``limit``, a
    non-JSON content type, a body that does not parse or validate (the route answers those)."""
    declared = declared_length(scope)
    content_type = header(scope, b"content-type") or "application/json"
    if declared is None or declared > limit or "json" not in content_type.lower():
        return None, receive
    body, more_body, pending = await read_body(receive, limit)
    replay = Replay(receive, body, more_body, pending)
    if more_body or pending is not None:
        return None, replay
    try:
        return model.model_validate(orjson.loads(body)), replay
    except (ValueError, ValidationError):  # orjson's JSONDecodeError is a ValueError
        return None, replay


class RouteTemplate:
    """Stands in for the matched route of a request a fast path answered: the request metrics
    and access line read only its ``path`` (``ragfleet.common.middleware.route_template``)."""

    def __init__(self, path: str) -> None:
        self.path = path


class FastPath:
    """A pure-ASGI middleware that may answer one route (``method`` ``path``) itself: ``answer``
    returns None when it did, else the ``receive`` the ordinary route must read from (a
    :class:`Replay` of what it read, or the original). Every other request passes straight on."""

    method = "POST"
    path = ""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != self.method or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        rest = await self.answer(scope, receive, send)
        if rest is not None:
            await self.app(scope, rest, send)

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        raise NotImplementedError
