"""``POST /v1/chat`` (JSON or SSE), ``GET /v1/chat/streams/{id}`` (SSE resume), ``/v1/chat/ws``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Body, Header, Query, Request, WebSocket
from pydantic import ValidationError
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect

from ragfleet.common.errors import BadRequest, RagfleetError, RateLimited, describe_validation_errors
from ragfleet.gateway.auth import (
    WS_RATE_LIMITED,
    Authenticated,
    accept_websocket,
    authenticate_websocket,
    get_authenticator,
)
from ragfleet.gateway.body_limits import SizeLimitedRoute
from ragfleet.gateway.chat import ChatAnswer, ChatRequest, ChatService
from ragfleet.gateway.dependencies import ChatDep
from ragfleet.gateway.downstream import until_disconnected
from ragfleet.gateway.frames import WS_UNSUPPORTED_DATA, close_if_open, close_with, receive_frame
from ragfleet.gateway.keys import Principal
from ragfleet.gateway.streams import StreamEvent, parse_event_id

router = APIRouter(prefix="/v1/chat", tags=["chat"], route_class=SizeLimitedRoute)

# Idle SSE connections get a comment this often, so proxies do not time them out.
SSE_KEEPALIVE_S = 10.0


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def sse_body(chat: ChatService, events: AsyncIterator[StreamEvent | None]) -> AsyncIterator[bytes]:
    # A client disconnect cancels this generator only: the answer keeps being generated into the
    # buffer, where a reconnecting client finds it.
    yield b"retry: 1000\n\n"
    idle_s = 0.0
    try:
        async for event in events:
            if event is None:
                idle_s += chat.buffer.block_ms / 1000
                if idle_s >= SSE_KEEPALIVE_S:
                    idle_s = 0.0
                    yield b": keep-alive\n\n"
                continue
            idle_s = 0.0
            yield event.sse()
    except RagfleetError as exc:
        # No id on this event: the client's Last-Event-ID stays on the last real event, so a
        # resume later picks up exactly where this reader stopped.
        error = {"code": exc.code, "message": exc.message, "retryable": exc.status_code >= 500}
        yield b"event: error\ndata: %s\n\n" % orjson.dumps(error)


def sse_response(
    chat: ChatService, stream_id: str, events: AsyncIterator[StreamEvent | None], session_id: str | None
) -> StreamingResponse:
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # NGINX must pass events on as they come
        "X-Ragfleet-Stream-Id": stream_id,
    }
    if session_id:
        headers["X-Ragfleet-Session-Id"] = session_id
    return StreamingResponse(sse_body(chat, events), media_type="text/event-stream", headers=headers)


async def resume(chat: ChatService, principal: Principal, last_event_id: str) -> StreamingResponse:
    stream_id, seq = parse_event_id(last_event_id)
    await chat.require_owned(stream_id, principal)
    return sse_response(chat, stream_id, chat.follow(stream_id, seq), None)


@router.post(
    "",
    response_model=ChatAnswer,
    summary="RAG chat: a JSON answer with sources, or an SSE stream with Accept: text/event-stream",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(
    request: Request,
    principal: Authenticated,
    chat: ChatDep,
    body: ChatRequest | None = Body(None),
    last_event_id: str | None = Header(
        None, description="resume a stream after this event id (SSE); the body is then ignored"
    ),
) -> Response:
    if last_event_id:
        return await resume(chat, principal, last_event_id)
    if body is None:
        raise BadRequest("send a JSON body with at least 'message'")
    if wants_event_stream(request):
        started = await chat.start_stream(principal, body)
        # Read from this replica's memory, not back from the (evictable) Redis buffer.
        return sse_response(chat, started.stream_id, started.live.tail(0), started.session_id)
    answer = await until_disconnected(request, chat.answer(principal, body))
    return Response(
        answer.model_dump_json(), media_type="application/json", headers={"X-Cache": answer.cache}
    )


@router.get(
    "/streams/{stream_id}",
    summary="Resume a chat stream (SSE) after Last-Event-ID (or ?after=)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def resume_stream(
    stream_id: str,
    principal: Authenticated,
    chat: ChatDep,
    after: int = Query(0, ge=0, description="sequence number of the last event seen"),
    last_event_id: str | None = Header(None),
) -> Response:
    return await resume(chat, principal, last_event_id or f"{stream_id}:{after}")


class ChatSocket:
    """One WebSocket chat connection: turns run one at a time; pings are answered at once."""

    def __init__(self, websocket: WebSocket, chat: ChatService, principal: Principal) -> None:
        self.websocket = websocket
        self.chat = chat
        self.principal = principal
        self.settings = chat.settings
        self.send_lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        async with self.send_lock:
            await self.websocket.send_text(text)

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send({"type": "error", "code": code, "message": message, **extra})

    async def relay(self, events: AsyncIterator[StreamEvent | None]) -> None:
        async for event in events:
            if event is not None:
                await self.send(event.ws())

    async def turn(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "chat")
        if kind == "chat":
            try:
                request = ChatRequest.model_validate({k: v for k, v in message.items() if k != "type"})
            except ValidationError as exc:
                text, details = describe_validation_errors([dict(e) for e in exc.errors()])
                await self.error("validation_error", text, details=details)
                return
            started = await self.chat.start_stream(self.principal, request)
            await self.relay(started.live.tail(0))
        elif kind == "resume":
            stream_id, seq = parse_event_id(str(message.get("last_event_id", "")))
            await self.chat.require_owned(stream_id, self.principal)
            await self.relay(self.chat.follow(stream_id, seq))
        else:
            await self.error("bad_request", f"unknown message type {kind!r}: use chat, resume or ping")

    async def read(self, turns: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Read client messages: answer pings now, queue everything else for ``serve``.

        Every message counts against the key's rate limit, so a flood is cut off (4429) instead
        of being answered one error or pong at a time.
        """
        authenticator = get_authenticator(self.websocket)
        try:
            while True:
                payload = await receive_frame(self.websocket, self.settings.max_ws_message_bytes)
                if isinstance(payload, bytes):
                    await close_with(self.websocket, WS_UNSUPPORTED_DATA, "send JSON messages as text frames")
                try:
                    await authenticator.enforce_rate_limit(self.principal)
                except RateLimited as exc:
                    await close_with(self.websocket, WS_RATE_LIMITED, exc.message)
                try:
                    message = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    await self.error("bad_request", "messages must be JSON objects")
                    continue
                if not isinstance(message, dict):
                    await self.error("bad_request", "messages must be JSON objects")
                elif message.get("type") == "ping":
                    await self.send(
                        {"type": "pong", **({"data": message["data"]} if "data" in message else {})}
                    )
                else:
                    await turns.put(message)
        finally:
            await turns.put(None)

    async def serve(self) -> None:
        turns: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=16)
        reader = asyncio.create_task(self.read(turns))
        try:
            while (message := await turns.get()) is not None:
                try:
                    await self.turn(message)
                except RagfleetError as exc:
                    await self.error(exc.code, exc.message, status=exc.status_code)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await reader


@router.websocket("/ws")
async def chat_socket(websocket: WebSocket, chat: ChatDep) -> None:
    """JSON messages in, events out. See docs/api.md for the protocol."""
    principal = await authenticate_websocket(websocket)
    if principal is None:
        return
    await accept_websocket(websocket)
    connection = ChatSocket(websocket, chat, principal)
    try:
        await connection.serve()
    except (WebSocketDisconnect, RuntimeError):
        # The client left; answers being generated keep going into their buffers for a resume.
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            await close_if_open(websocket)
