"""What a WebSocket client may send, enforced the same way on every socket of the gateway.

A frame over ``max_ws_message_bytes`` closes the socket with 1009 (message too big) and a reason
naming the limit; the chat socket also closes on binary frames (1003, unsupported data). Closing,
rather than answering with an error event, is what stops a client that keeps sending: it cannot
go on costing the replica memory and CPU, and the close code tells its author what went wrong.
"""

from __future__ import annotations

from typing import NoReturn

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

WS_UNSUPPORTED_DATA = 1003
WS_MESSAGE_TOO_BIG = 1009
# A close reason must fit in a control frame (123 bytes).
MAX_REASON_CHARS = 120


async def close_with(websocket: WebSocket, code: int, reason: str) -> NoReturn:
    """Close with ``code`` and ``reason``, then end the caller's receive loop."""
    await websocket.close(code=code, reason=reason[:MAX_REASON_CHARS])
    raise WebSocketDisconnect(code, reason)


async def receive_frame(websocket: WebSocket, limit_bytes: int) -> str | bytes:
    """The next message's payload, text or bytes. Raises ``WebSocketDisconnect`` when the client
    left, or after closing the socket because the frame was larger than ``limit_bytes``."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    payload: str | bytes = text if text is not None else message.get("bytes") or b""
    size = len(payload.encode()) if isinstance(payload, str) else len(payload)
    if size > limit_bytes:
        await close_with(
            websocket, WS_MESSAGE_TOO_BIG, f"message is larger than the limit of {limit_bytes} bytes"
        )
    return payload


async def close_if_open(websocket: WebSocket) -> None:
    """A normal close, unless either side closed already."""
    if (
        websocket.client_state == WebSocketState.CONNECTED
        and websocket.application_state == WebSocketState.CONNECTED
    ):
        await websocket.close()
