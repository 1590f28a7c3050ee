"""The services' HTTP protocol sends what a response writes in one event-loop turn as one write:
a plain answer leaves as one segment, a streamed one chunk by chunk, and nothing held is lost when
the connection ends."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ragfleet.common.server import HTTP_PROTOCOL, OneWriteTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = self.eof = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed


async def settle() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_in_one_turn_leave_as_one() -> None:
    inner = RecordingTransport()
    transport = OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"")
    transport.write(memoryview(b"{}"))
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 40
    await settle()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


async def test_writes_in_separate_turns_stay_separate() -> None:
    inner = RecordingTransport()
    transport = OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"head")
    await settle()
    transport.write(b"chunk")
    await settle()
    assert inner.writes == [b"head", b"chunk"]


async def test_close_and_eof_send_what_is_held_and_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    closed, ended, aborted = RecordingTransport(), RecordingTransport(), RecordingTransport()
    for inner, end in ((closed, "close"), (ended, "write_eof"), (aborted, "abort")):
        transport = OneWriteTransport(inner, loop)  # type: ignore[arg-type]
        transport.write(b"last words")
        getattr(transport, end)()
    await settle()  # the scheduled flush finds nothing left to send
    assert (closed.writes, closed.closed) == ([b"last words"], True)
    assert (ended.writes, ended.eof) == ([b"last words"], True)
    assert (aborted.writes, aborted.aborted) == ([], True)


async def test_everything_else_is_the_transports_own() -> None:
    inner = RecordingTransport()
    transport = OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    assert transport.is_closing() is False
    inner.closed = True
    assert transport.is_closing() is True


# --- the protocol in a real uvicorn server ---------------------------------------------------


async def answer(request: Request) -> JSONResponse:
    return JSONResponse({"echo": await request.json()}, headers={"x-extra": "1"})


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> Any:
        for number in range(3):
            yield f"data: {number}\n\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def closing(request: Request) -> JSONResponse:
    return JSONResponse({"bye": True}, headers={"connection": "close"})


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


app = Starlette(
    routes=[
        Route("/answer", answer, methods=["POST"]),
        Route("/stream", stream),
        Route("/closing", closing),
        WebSocketRoute("/ws", echo_socket),
    ]
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=HTTP_PROTOCOL, ws="websockets", log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(5)


def test_a_plain_answer_arrives_whole_on_a_kept_alive_connection(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client:
        for number in range(20):
            response = client.post("/answer", json={"n": number})
            assert response.status_code == 200
            assert response.json() == {"echo": {"n": number}}
            assert response.headers["x-extra"] == "1"
        # HEAD: the head alone, which no body write follows to carry it.
        head = client.head("/closing")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "12")


def test_an_answer_that_closes_the_connection_arrives_whole_before_the_close(server_url: str) -> None:
    port = int(server_url.rsplit(":", 1)[1])
    request = b"GET /closing HTTP/1.1\r\nhost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):  # the server closes after the answer: nothing held is lost
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(body) == {"bye": True}


def test_a_stream_arrives_chunk_by_chunk(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client, client.stream("GET", "/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert b"".join(response.iter_bytes()) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_a_websocket_upgrade_answers_and_echoes(server_url: str) -> None:
    websockets = pytest.importorskip("websockets.sync.client")
    with websockets.connect(server_url.replace("http", "ws") + "/ws") as connection:
        connection.send("hello")
        assert connection.recv(timeout=5) == "hello"
