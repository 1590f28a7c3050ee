"""The proxy's HTTP/1.1 client for its upstream POSTs: an asyncio protocol with httptools' parser.

Why not aiohttp: at 200 req/s open loop on the 2-vCPU benchmark machine an aiohttp client request
cost ~1.0-1.1 ms of CPU, while a bare asyncio protocol with httptools doing the same request cost
~0.2-0.4 ms (docs/benchmarks/llm-proxy.md, sessions 6 and 8) — over a third of everything a proxied
request costs. The proxy needs little of what aiohttp offers: one method (POST), bodies it encodes
itself, JSON or SSE back. What it needs is kept here, and bounded:

- a pool per origin with keep-alive (idle connections reused newest first, closed after
  ``keepalive_s`` or as soon as the upstream closes them) and a bound on connections in use;
  a request that meets a reused connection the upstream closed before answering is sent once
  more on a fresh one (the keep-alive race: the upstream's idle timeout fired as we wrote);
- Content-Length, chunked and read-until-close bodies (httptools/llhttp parses the framing);
- TLS through asyncio's SSL transport (``https`` base URLs, verified against the system's CAs);
- limits on what an upstream can make the proxy hold: the status line and headers, a whole body,
  and a stream's unread bytes (reading pauses when the client reads slower than the upstream sends);
- timeouts as timer handles on the loop instead of a task or context manager per wait.

``Accept-Encoding: identity`` is sent, and a compressed answer is refused as malformed: nothing
asked for it, and decompressing would be one more thing an upstream could inflate without bound.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

MAX_HEADER_BYTES = 64 * 1024  # status line and headers: far above any real answer's
STREAM_HIGH_WATER = 1 << 20  # a stream's unread bytes at which the upstream socket stops being read
# After a stream's last event an upstream still ends its body (the last chunk of a chunked body
# often comes in a later write): the connection waits this long, ignoring this much, to be reused.
DRAIN_S = 1.0
DRAIN_MAX_BYTES = 64 * 1024
USER_AGENT = b"ragfleet-llm-proxy"


class UpstreamConnectError(Exception):
    """No connection could be opened (refused, unresolvable, TLS handshake or certificate)."""


class UpstreamProtocolError(Exception):
    """The connection broke, or what came back is not an HTTP answer the proxy accepts."""


class ResponseTooLarge(UpstreamProtocolError):
    pass


class _StaleConnection(UpstreamProtocolError):
    """A reused connection closed before any byte of the answer: it is safe to send once more."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    path: str  # the base URL's path, without a trailing slash
    query: str  # the base URL's query (Azure-style ``?api-version=``), sent after every path
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, parts.path.rstrip("/"), parts.query, host_header.encode("idna"))

    def target(self, path: str) -> bytes:
        target = self.path + path + ("?" + self.query if self.query else "")
        return target.encode("ascii")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one answer at a time and wakes the request waiting on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.active = False  # an answer is expected (data while idle breaks the connection)
        self._begin(stream=False, max_body_bytes=0)

    def _begin(self, *, stream: bool, max_body_bytes: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.stream = stream
        self.max_body_bytes = max_body_bytes
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.until_eof = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.header_bytes = 0
        self.received_any = False
        self.body: list[bytes] = []
        self.buffered = 0  # stream: bytes received and not yet taken
        self.body_bytes = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.on_drained: Callable[[], None] | None = None
        self.drain_timer: asyncio.TimerHandle | None = None

    def start(self, request: bytes, *, stream: bool, max_body_bytes: int) -> None:
        assert self.transport is not None
        self._begin(stream=stream, max_body_bytes=max_body_bytes)
        self.active = True
        try:
            self.transport.write(request)
        except (RuntimeError, OSError):  # uvloop refuses a write to a transport being closed
            self._fail(_StaleConnection("upstream closed the connection before the request"))

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:
            self._fail(UpstreamProtocolError("upstream sent data that was not asked for"))
            return
        self.received_any = True
        if not self.headers_done:
            self.header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            if self.error is None:
                self._fail(UpstreamProtocolError(f"upstream sent invalid HTTP: {exc}"))
            return
        if not self.headers_done and self.header_bytes > MAX_HEADER_BYTES:
            self._fail(UpstreamProtocolError(f"upstream headers exceed {MAX_HEADER_BYTES} bytes"))

    def eof_received(self) -> bool:
        self.closed = True  # never taken from the pool again, even before connection_lost runs
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.drain_timer is not None:
            self.drain_timer.cancel()
        if self.active and not self.complete and self.error is None:
            if self.headers_done and self.until_eof:
                self.complete = True  # a body delimited by the end of the connection
            elif not self.received_any:
                self.error = _StaleConnection("upstream closed the connection before answering")
            else:
                where = "mid-body" if self.headers_done else "mid-headers"
                self.error = UpstreamProtocolError(f"upstream closed the connection {where}")
        self._wake()

    def pause_writing(self) -> None:  # request bodies are bounded and written once
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            return  # an interim answer (100 Continue): the real one follows on the same parser
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            self._fail(UpstreamProtocolError(f"upstream answered with Content-Encoding {encoding!r}"))
            raise UpstreamProtocolError  # stops the parser; the failure is recorded
        self.until_eof = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
            and self.status not in (204, 304)
        )
        if self.stream:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.on_drained is not None:  # read to its end only to reuse the connection
            self.body_bytes += len(body)
            if self.body_bytes > DRAIN_MAX_BYTES:
                self._fail(UpstreamProtocolError("upstream kept sending after the stream's end"))
                raise UpstreamProtocolError
            return
        self.body.append(body)
        if not self.stream:  # held whole: bounded as a whole
            self.body_bytes += len(body)
            if self.body_bytes > self.max_body_bytes:
                self._fail(ResponseTooLarge(f"upstream answer exceeds {self.max_body_bytes} bytes"))
                raise ResponseTooLarge
        else:  # handed on as it comes: bounded in what is unread
            self.buffered += len(body)
            if self.buffered > STREAM_HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            self.headers = {}
            self.header_bytes = 0
            return
        self.complete = True
        self._wake()
        on_drained = self.on_drained
        if on_drained is not None:
            self.on_drained = None
            if self.drain_timer is not None:
                self.drain_timer.cancel()
            on_drained()

    def drain(self, on_drained: Callable[[], None]) -> None:
        """Read what is left of the body, discarding it; ``on_drained`` at its end, or closed."""
        self.take()
        self.body_bytes = 0
        self.on_drained = on_drained
        self.drain_timer = self.loop.call_later(DRAIN_S, self.close)

    # --- for the client ---

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @staticmethod
    def _time_out(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    async def wait(self, within_s: float) -> None:
        """Until something happens (an error, the headers, body, the end), at most ``within_s``.

        A timer handle on the loop, not ``asyncio.timeout``: this wait runs once or more per
        proxied request, and a bare handle is the cheapest bound asyncio has."""
        if within_s <= 0:
            raise TimeoutError
        waiter = self.waiter = self.loop.create_future()
        handle = self.loop.call_later(within_s, self._time_out, waiter)
        try:
            await waiter
        finally:
            self.waiter = None
            handle.cancel()

    def take(self) -> bytes:
        """The body bytes received and not yet taken."""
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class StreamingResponse:
    """An answer whose headers have arrived; its body is read as it comes. ``release`` exactly once."""

    def __init__(
        self, client: UpstreamClient, origin: Origin, conn: _Connection, read_timeout_s: float
    ) -> None:
        self._client = client
        self._origin = origin
        self._conn = conn
        self._read_timeout_s = read_timeout_s
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    async def readany(self) -> bytes:
        """What has arrived (waiting, at most the read timeout, only when nothing has); b"" at the end."""
        conn = self._conn
        while not conn.body:
            if conn.complete:
                return b""
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._read_timeout_s)
        return conn.take()

    async def read(self) -> bytes:
        """The rest of the body (an error answer's), within the client's ``max_response_bytes``."""
        max_bytes = self._client.max_response_bytes
        parts = []
        size = 0
        while chunk := await self.readany():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(f"upstream answer exceeds {max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def release(self, *, finished: bool = False) -> None:
        """Back to the pool if the body was read to its end — or, when the caller ``finished``
        (the stream's last event came), once the rest of it arrives; else closed (the upstream
        sees a disconnect and can stop generating)."""
        if not self._released:
            self._released = True
            self._client._release(self._origin, self._conn, finished=finished)


class UpstreamClient:
    """Pooled connections to any number of origins, at most ``max_connections`` in use at once."""

    def __init__(
        self,
        max_connections: int,
        *,
        max_response_bytes: int,
        keepalive_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_response_bytes = max_response_bytes  # a whole body held at once (JSON, an error)
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._keepalive_s = keepalive_s
        self._ssl_context = ssl_context
        self._closed = False

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built on first https use: loading the CA store takes ms
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    @staticmethod
    def request_head(origin: Origin, path: str, headers: dict[str, str], body_length: int) -> bytes:
        lines = [
            b"POST " + origin.target(path) + b" HTTP/1.1",
            b"Host: " + origin.host_header,
            b"User-Agent: " + USER_AGENT,
            b"Accept-Encoding: identity",
            b"Content-Length: " + str(body_length).encode(),
        ]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(name.encode("latin-1") + b": " + value.encode("latin-1"))
        lines.append(b"\r\n")
        return b"\r\n".join(lines)

    async def post(
        self,
        origin: Origin,
        path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        connect_timeout_s: float,
        total_timeout_s: float,
    ) -> Response:
        """POST and read the whole answer, everything (pool wait included) within ``total_timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total_timeout_s
        request = self.request_head(origin, path, headers, len(body)) + body
        await self._acquire_slot(total_timeout_s)
        try:
            for attempt in range(2):
                # The second attempt is on a new connection: another idle one could be stale too.
                conn = await self._connection(
                    origin, min(connect_timeout_s, deadline - loop.time()), fresh=attempt > 0
                )
                reused = conn.idle_since > 0
                conn.start(request, stream=False, max_body_bytes=self.max_response_bytes)
                try:
                    while not conn.complete:
                        if conn.error is not None:
                            raise conn.error
                        await conn.wait(deadline - loop.time())
                except _StaleConnection:
                    conn.close()
                    if reused:
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                answer = Response(conn.status, conn.headers, conn.take())
                self._put_back(origin, conn)
                return answer
            raise AssertionError("unreachable: the second attempt is on a fresh connection")
        finally:
            self._slots.release()

    async def open_stream(
        self,
        origin: Origin,
        path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> StreamingResponse:
        """POST and wait for the answer's headers (each wait at most ``read_timeout_s``). The body
        is not bounded as a whole (a long generation is long) but in what is unread at a time."""
        request = self.request_head(origin, path, headers, len(body)) + body
        await self._acquire_slot(read_timeout_s)
        conn: _Connection | None = None
        try:
            for attempt in range(2):
                conn = await self._connection(origin, connect_timeout_s, fresh=attempt > 0)
                reused = conn.idle_since > 0
                conn.start(request, stream=True, max_body_bytes=0)
                try:
                    while not conn.headers_done:
                        if conn.error is not None:
                            raise conn.error
                        await conn.wait(read_timeout_s)
                except _StaleConnection:
                    conn.close()
                    if reused:
                        continue
                    raise
                return StreamingResponse(self, origin, conn, read_timeout_s)
            raise AssertionError("unreachable: the second attempt is on a fresh connection")
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise

    async def _acquire_slot(self, timeout_s: float) -> None:
        if self._slots.locked():  # every connection is in use: wait for one, within the bound
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # does not suspend

    async def _connection(self, origin: Origin, connect_timeout_s: float, *, fresh: bool) -> _Connection:
        idle = None if fresh else self._idle.get(origin)
        if idle:
            now = asyncio.get_running_loop().time()
            while idle:
                conn = idle.pop()
                if (
                    not conn.closed
                    and conn.transport is not None
                    and not conn.transport.is_closing()
                    and now - conn.idle_since <= self._keepalive_s
                ):
                    return conn
                conn.close()
        return await self._connect(origin, connect_timeout_s)

    async def _connect(self, origin: Origin, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = (
            {"ssl": self._ssl(), "server_hostname": origin.host} if origin.scheme == "https" else {}
        )
        if timeout_s <= 0:
            raise TimeoutError
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), origin.host, origin.port, **tls
                )
        except TimeoutError:
            raise
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), ssl.SSLError
            raise UpstreamConnectError(
                f"{origin.scheme}://{origin.host}:{origin.port}: {type(exc).__name__}: {exc}"
            ) from exc
        return conn

    def _put_back(self, origin: Origin, conn: _Connection) -> None:
        conn.active = False
        if not conn.reusable or self._closed:
            conn.close()
            return
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        idle = self._idle.setdefault(origin, collections.deque())
        idle.append(conn)
        # The oldest first: closed when expired, or when the pool holds more idle than it may use.
        while idle and (len(idle) > self._max_idle or now - idle[0].idle_since > self._keepalive_s):
            idle.popleft().close()

    def _release(self, origin: Origin, conn: _Connection, *, finished: bool) -> None:
        try:
            if finished and not conn.complete and conn.error is None and not conn.closed:
                conn.drain(lambda: self._put_back(origin, conn))
            else:
                self._put_back(origin, conn)
        finally:
            self._slots.release()

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
