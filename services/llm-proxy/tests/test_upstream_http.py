"""The proxy's upstream HTTP client against real servers on loopback that write exact bytes: framing
(Content-Length, chunked, until close), keep-alive reuse and its race, the pool's bound, the
limits a hostile upstream meets, TLS, and the failures the provider maps them to."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from ragfleet.llm_proxy.config import ModelDeployment
from ragfleet.llm_proxy.providers.base import UpstreamFailure
from ragfleet.llm_proxy.providers.openai_compatible import OpenAICompatibleProvider
from ragfleet.llm_proxy.schemas import ChatCompletionRequest
from ragfleet.llm_proxy.upstream_http import (
    STREAM_HIGH_WATER,
    Origin,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamProtocolError,
)

pytestmark = pytest.mark.integration  # real sockets, in this process

Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter
Handler = Callable[[Reader, Writer, "Upstream"], Awaitable[None]]
COMPLETION = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})


class Upstream:
    """A TCP (or TLS) server whose handler runs once per connection; it counts connections."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body) as received
        self.tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the test ended
        finally:
            self.tasks.discard(task)
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: Reader) -> tuple[bytes, bytes] | None:
        """One request (head, body); None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/v1"
        finally:
            server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)


def answer(status: int, body: bytes, *headers: bytes) -> bytes:
    head = [b"HTTP/1.1 %d X" % status, b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def keep_answering(reply: bytes) -> Handler:
    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            writer.write(reply)
            await writer.drain()

    return handler


async def post(client: UpstreamClient, url: str, total_timeout_s: float = 5.0) -> tuple[int, bytes]:
    response = await client.post(
        Origin.parse(url),
        "/chat/completions",
        {"Content-Type": "application/json"},
        b'{"model":"m"}',
        connect_timeout_s=2.0,
        total_timeout_s=total_timeout_s,
    )
    return response.status, response.body


def provider(url: str, client: UpstreamClient, **config: float) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(ModelDeployment(name="m", base_url=url, **config), client)


REQUEST = ChatCompletionRequest.model_validate(
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
)


async def test_a_content_length_answer_and_the_connection_is_reused() -> None:
    upstream = Upstream(keep_answering(answer(200, COMPLETION, b"Content-Type: application/json")))
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        assert await post(client, url) == (200, COMPLETION)
        assert await post(client, url) == (200, COMPLETION)
        result = await provider(url, client).complete(REQUEST, {"model": "m"})
    await client.close()
    assert result["choices"][0]["message"]["content"] == "ok"
    assert upstream.connections == 1 and len(upstream.requests) == 3
    head = upstream.requests[0][0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{url.split(':')[2].split('/')[0]}".encode() in head
    assert b"Content-Length: 13\r\n" in head


async def test_a_chunked_answer_split_across_writes() -> None:
    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            body = chunked(COMPLETION[:5], COMPLETION[5:])
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body[:7])
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(body[7:])

    upstream = Upstream(handler)
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        assert await post(client, url) == (200, COMPLETION)
        assert await post(client, url) == (200, COMPLETION)
    await client.close()
    assert upstream.connections == 1


async def test_a_body_delimited_by_close_and_connection_close_are_not_reused() -> None:
    async def until_close(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + COMPLETION)
        await writer.drain()

    for handler in (until_close, keep_answering(answer(200, COMPLETION, b"Connection: close"))):
        upstream = Upstream(handler)
        client = UpstreamClient(4, max_response_bytes=1 << 20)
        async with upstream.running() as url:
            assert await post(client, url) == (200, COMPLETION)
            assert await post(client, url) == (200, COMPLETION)
        await client.close()
        assert upstream.connections == 2


async def test_a_reused_connection_the_upstream_closed_unanswered_is_retried_once_on_a_new_one() -> None:
    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        # The first two connections answer once, then close at their next request (an idle
        # timeout firing as the request arrives); later connections answer everything.
        first = upstream.connections <= 2
        answered = 0
        while await upstream.read_request(reader) is not None:
            if first and answered:
                return
            answered += 1
            await asyncio.sleep(0.02)  # so that the first two requests need two connections
            writer.write(answer(200, COMPLETION))
            await writer.drain()

    upstream = Upstream(handler)
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        assert await asyncio.gather(post(client, url), post(client, url)) == [(200, COMPLETION)] * 2
        # Both idle connections are stale: the retry must not take the other one.
        assert await post(client, url) == (200, COMPLETION)
        assert await post(client, url) == (200, COMPLETION)
    await client.close()
    assert upstream.connections == 3 and len(upstream.requests) == 5


async def test_an_upstream_that_closes_before_answering_on_a_new_connection_fails() -> None:
    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)

    upstream = Upstream(handler)
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        with pytest.raises(UpstreamProtocolError):
            await post(client, url)
        with pytest.raises(UpstreamFailure) as failure:
            await provider(url, client).complete(REQUEST, {"model": "m"})
    await client.close()
    assert failure.value.reason == "connect" and failure.value.retryable
    assert upstream.connections == 2  # no second try on a fresh connection: it was fresh


async def test_an_upstream_that_closes_mid_body() -> None:
    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + COMPLETION[:10])
        await writer.drain()

    upstream = Upstream(handler)
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        with pytest.raises(UpstreamProtocolError, match="mid-body"):
            await post(client, url)
        with pytest.raises(UpstreamFailure) as failure:
            await provider(url, client).complete(REQUEST, {"model": "m"})
        assert failure.value.reason == "connect"
        with pytest.raises(UpstreamFailure) as failure:
            async for _ in provider(url, client).stream(REQUEST, {"model": "m", "stream": True}):
                pass
        assert failure.value.reason == "dropped"
    await client.close()


async def test_an_upstream_that_hangs_meets_the_total_and_the_read_timeouts() -> None:
    release = asyncio.Event()

    async def silent(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        await release.wait()

    async def stalls_after_headers(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await release.wait()

    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with Upstream(silent).running() as url:
        with pytest.raises(TimeoutError):
            await post(client, url, total_timeout_s=0.2)
        with pytest.raises(UpstreamFailure) as failure:
            await provider(url, client, total_timeout_s=0.2).complete(REQUEST, {"model": "m"})
        assert failure.value.reason == "timeout"
    async with Upstream(stalls_after_headers).running() as url:
        with pytest.raises(UpstreamFailure) as failure:
            async for _ in provider(url, client, total_timeout_s=0.2).stream(REQUEST, {"stream": True}):
                pass
        assert failure.value.reason == "timeout"
    release.set()
    await client.close()


async def test_a_429_with_retry_after_is_a_retryable_failure_that_says_how_long() -> None:
    error = orjson.dumps({"error": {"message": "slow down"}})
    upstream = Upstream(keep_answering(answer(429, error, b"Retry-After: 2")))
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        with pytest.raises(UpstreamFailure) as failure:
            await provider(url, client).complete(REQUEST, {"model": "m"})
        with pytest.raises(UpstreamFailure) as streamed:
            async for _ in provider(url, client).stream(REQUEST, {"stream": True}):
                pass
    await client.close()
    for raised in (failure.value, streamed.value):
        assert raised.reason == "http_429" and raised.retryable and raised.retry_after_s == 2.0
        assert "slow down" in raised.message
    assert upstream.connections == 1  # an error answer read to its end leaves the connection usable


async def test_oversized_answers_headers_and_lines_are_refused() -> None:
    async def endless_chunks(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        while True:
            writer.write(piece)
            await writer.drain()

    async def endless_headers(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X-Filler: " + b"y" * 1000 + b"\r\n")
            await writer.drain()

    client = UpstreamClient(4, max_response_bytes=1 << 20)
    big = answer(200, b"x" * (2 << 20))
    async with Upstream(keep_answering(big)).running() as url:
        with pytest.raises(ResponseTooLarge):
            await post(client, url)
        with pytest.raises(UpstreamFailure) as failure:
            await provider(url, client).complete(REQUEST, {"model": "m"})
        assert failure.value.reason == "malformed"
    async with Upstream(endless_chunks).running() as url:
        with pytest.raises(ResponseTooLarge):
            await post(client, url)
        # A stream is not bounded as a whole but in its lines: one that never ends is refused.
        with pytest.raises(UpstreamFailure, match="line over") as failure:
            async for _ in provider(url, client).stream(REQUEST, {"stream": True}):
                pass
        assert failure.value.reason == "malformed"
    async with Upstream(endless_headers).running() as url:
        with pytest.raises(UpstreamProtocolError, match="headers exceed"):
            await post(client, url)
    await client.close()


async def test_a_stream_the_client_does_not_read_stops_being_read_from_the_upstream() -> None:
    sent = 0

    async def firehose(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        nonlocal sent
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = chunked(b"data: " + b"z" * 60000 + b"\n\n")[:-5]  # one chunk, no terminator
        while sent < 64 << 20:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with Upstream(firehose).running() as url:
        response = await client.open_stream(
            Origin.parse(url), "/chat/completions", {}, b"{}", connect_timeout_s=2, read_timeout_s=5
        )
        await response.readany()
        for _ in range(100):  # let the upstream write as much as the sockets take
            await asyncio.sleep(0.01)
        unread = response._conn.buffered
        response.release()
    await client.close()
    # What the proxy holds is bounded by the high-water mark (plus one socket read), not by what
    # the upstream sent (the kernel's socket buffers hold the rest until the upstream blocks).
    assert unread <= STREAM_HIGH_WATER + (1 << 20)
    assert sent < 64 << 20


async def test_a_stream_ended_by_done_before_its_body_ends_keeps_its_connection() -> None:
    done = chunked(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n')

    async def handler(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + done[:-5])
            await writer.drain()
            await asyncio.sleep(0.05)  # the body's last chunk comes in a later write
            writer.write(done[-5:])

    upstream = Upstream(handler)
    client = UpstreamClient(4, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        for _ in range(2):
            seen = [b async for b in provider(url, client).stream(REQUEST, {"stream": True})]
            assert [[c.parsed["choices"][0]["delta"]["content"] for c in b] for b in seen] == [["a"]]
            for _ in range(200):  # until the rest of the body came and the connection is idle
                if any(client._idle.values()):
                    break
                await asyncio.sleep(0.01)
    await client.close()
    assert upstream.connections == 1


async def test_the_pool_bounds_connections_in_use() -> None:
    async def slow(reader: Reader, writer: Writer, upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(answer(200, COMPLETION))
            await writer.drain()

    upstream = Upstream(slow)
    client = UpstreamClient(2, max_response_bytes=1 << 20)
    async with upstream.running() as url:
        results = await asyncio.gather(*(post(client, url) for _ in range(6)))
    await client.close()
    assert results == [(200, COMPLETION)] * 6
    assert upstream.most_open <= 2 and upstream.connections == 2


async def test_a_refused_connection_and_a_compressed_answer() -> None:
    client = UpstreamClient(2, max_response_bytes=1 << 20)
    async with Upstream(keep_answering(answer(200, b"x"))).running() as url:
        pass  # the port is free again
    with pytest.raises(UpstreamConnectError):
        await post(client, url)
    with pytest.raises(UpstreamFailure) as failure:
        await provider(url, client).complete(REQUEST, {"model": "m"})
    assert failure.value.reason == "connect" and "cannot connect" in failure.value.message
    async with Upstream(keep_answering(answer(200, b"\x1f\x8b", b"Content-Encoding: gzip"))).running() as url:
        with pytest.raises(UpstreamProtocolError, match="Content-Encoding"):
            await post(client, url)
    await client.close()


def test_base_urls() -> None:
    origin = Origin.parse("https://api.example.com/openai/v1/?api-version=2024-06-01")
    assert (origin.host, origin.port, origin.host_header) == ("api.example.com", 443, b"api.example.com")
    assert origin.target("/chat/completions") == b"/openai/v1/chat/completions?api-version=2024-06-01"
    assert Origin.parse("http://[::1]:8000/v1").host_header == b"[::1]:8000"
    with pytest.raises(ValueError):
        Origin.parse("ftp://example.com/v1")
    headers = UpstreamClient.request_head(Origin.parse("http://h/v1"), "/x", {"A": "1"}, 0)
    assert headers.startswith(b"POST /v1/x HTTP/1.1\r\nHost: h\r\n") and headers.endswith(b"A: 1\r\n\r\n")
    with pytest.raises(ValueError):
        UpstreamClient.request_head(Origin.parse("http://h/v1"), "/x", {"X-Request-Id": "a\r\nB: c"}, 0)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate for the TLS upstream")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_upstreams_are_verified(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    upstream = Upstream(keep_answering(answer(200, COMPLETION)), tls=server_tls)
    trusting = UpstreamClient(
        2, max_response_bytes=1 << 20, ssl_context=ssl.create_default_context(cafile=cert)
    )
    default = UpstreamClient(2, max_response_bytes=1 << 20)  # the system's CAs: not this certificate
    async with upstream.running() as url:
        assert url.startswith("https://")
        assert await post(trusting, url) == (200, COMPLETION)
        assert await post(trusting, url) == (200, COMPLETION)
        with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(default, url)
    await trusting.close()
    await default.close()
    assert upstream.connections == 1  # kept alive; the refused handshake never became one
