"""Locust users, one per kind of traffic. Select them by class name or by tag (search, chat, sse,
websocket, ingest); the ``mixed`` scenario runs them together with the weights of ``--mix``.

Every request is named by route and variant (``/v1/search [vector]``, ``/v1/chat [sse]``) so the
report and the per-endpoint p95 gates see each variant separately. Chat time to first token is
reported as its own entry with request type ``TTFT``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import random
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from locust import FastHttpUser, User, between, constant, tag, task
from locust.env import Environment
from websockets.sync.client import ClientConnection, connect

from ragfleet.loadtests.cookies import AffinityCookies
from ragfleet.loadtests.gates import TTFT_REQUEST_TYPE
from ragfleet.loadtests.queries import (
    SEARCH_MODES,
    SearchRequestFactory,
    ZipfSampler,
    load_pool,
    parse_weights,
    widened_pool,
)
from ragfleet.loadtests.scenarios import MIXES
from ragfleet.loadtests.traffic import request_headers

# X-Cache values seen by the clients; informative only (the hit-rate gate reads the services' metrics).
X_CACHE_SEEN: Counter[str] = Counter()
# Answers another gateway replica regenerated mid-stream (a ``restart`` event), per chat variant.
STREAM_RESTARTS: Counter[str] = Counter()
_user_numbers = itertools.count(1)


@functools.cache
def query_pool(path: str, size: int = 0) -> list[str]:
    pool = load_pool(Path(path) if path else None)
    return widened_pool(pool, size) if size else pool


def user_rng(environment: Environment) -> random.Random:
    seed = environment.parsed_options.seed if environment.parsed_options else 0
    return random.Random(seed * 100_003 + next(_user_numbers)) if seed else random.Random()


class RagfleetUser(FastHttpUser):
    """Common to the HTTP users: the key, the synthetic marks, the options."""

    abstract = True
    # One client per user, as real clients have; NGINX's affinity cookie keeps each on one replica.
    concurrency = 1

    def on_start(self) -> None:
        self.client.client.cookiejar = AffinityCookies()  # FastHttpSession -> its geventhttpclient agent
        options = self.environment.parsed_options
        self.options = options
        self.headers = request_headers(options.api_key or None, options.scenario)
        self.rng = user_rng(self.environment)
        self.sampler = ZipfSampler(
            query_pool(options.query_file, options.query_pool_size), options.zipf_exponent, self.rng
        )


class SearchUser(RagfleetUser):
    """``POST /v1/search``: Zipf-popular queries, the three modes by weight, some with filters."""

    def wait_time(self) -> float:
        return float(self.environment.parsed_options.think_time)

    def on_start(self) -> None:
        super().on_start()
        self.searches = SearchRequestFactory(
            sampler=self.sampler,
            mode_weights=parse_weights(self.options.search_modes, SEARCH_MODES),
            filter_ratio=self.options.filter_ratio,
            collection=self.options.collection,
        )

    @tag("search")
    @task
    def search(self) -> None:
        body = self.searches.build()
        with self.client.post(
            "/v1/search",
            json=body,
            headers=self.headers,
            name=f"/v1/search [{body['mode']}]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            self.check(response)

    def check(self, response: Any) -> None:
        X_CACHE_SEEN[response.headers.get("x-cache", "absent")] += 1
        # A byte check rather than a parse: the echo reference's check is one comparison too, and
        # the ratio gate should weigh the servers, not the client's JSON decoder.
        if b'"results":[' not in response.content:
            response.failure("search answer has no 'results' list")


class EchoUser(SearchUser):
    """The search user's very requests, sent to an echo app (ragfleet.bench.echo): the
    reference of the ratio gate. Same Locust, same bodies and headers, so what the ratio leaves
    out is exactly the load generator's own cost and the server stack's floor."""

    def check(self, response: Any) -> None:
        if response.content != b'{"echo":"ok"}':
            response.failure("not the echo app's answer")


def sse_events(chunks: Any) -> Any:
    """Parse a text/event-stream into ``(event, data)`` pairs as chunks arrive."""
    buffer = ""
    event, data = "message", list[str]()
    for chunk in chunks:
        buffer += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            line = line.rstrip("\r")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", list[str]()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())


# The gateway's stream events (docs/api.md): sources, token..., then done or error; restart when
# another replica regenerates the answer (the tokens so far are dropped).
TOKEN_EVENT = "token"
DONE_EVENT = "done"
ERROR_EVENT = "error"
RESTART_EVENT = "restart"


class StreamedAnswer:
    """The answer built from a stream's tokens, started again on ``restart``, checked on ``done``."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.parts: list[str] = []

    def add(self, event: str, data: dict[str, Any]) -> None:
        if event == RESTART_EVENT:
            STREAM_RESTARTS[self.variant] += 1
            self.parts.clear()
        elif event == TOKEN_EVENT:
            self.parts.append(str(data.get("text", "")))

    def mismatch(self, done: dict[str, Any]) -> str | None:
        """Why the streamed tokens are not the final answer, if they are not."""
        if "".join(self.parts) != done.get("answer"):
            return "streamed tokens differ from the done event's answer"
        return None


class ChatUser(RagfleetUser):
    """Multi-turn conversations over ``POST /v1/chat``: plain JSON answers and SSE streams."""

    wait_time = between(0.5, 2.0)

    def _conversation(self, stream: bool) -> None:
        session_id: str | None = None
        for _ in range(max(1, self.options.chat_turns)):
            body: dict[str, Any] = {"message": self.sampler.sample(), "collection": self.options.collection}
            if session_id:
                body["session_id"] = session_id
            session_id = self._stream_turn(body) if stream else self._rest_turn(body)
            if session_id is None:
                return  # the failure is recorded; a broken conversation is not continued

    def _rest_turn(self, body: dict[str, Any]) -> str | None:
        with self.client.post(
            "/v1/chat", json=body, headers=self.headers, name="/v1/chat [rest]", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return None
            session_id = response.json().get("session_id")
            if not session_id:
                response.failure("chat answer has no session_id")
            return str(session_id) if session_id else None

    def _stream_turn(self, body: dict[str, Any]) -> str | None:
        headers = {**self.headers, "Accept": "text/event-stream"}
        start = time.perf_counter()
        with self.client.request(
            "POST",
            "/v1/chat",
            json=body,
            headers=headers,
            name="/v1/chat [sse]",
            stream=True,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return None
            session_id = response.headers.get("x-ragfleet-session-id") or body.get("session_id")
            done = False
            first_token_ms: float | None = None
            error: str | None = None
            answer = StreamedAnswer("chat sse")
            for event, data in sse_events(response.iter_content(chunk_size=4096, decode_content=False)):
                if event == ERROR_EVENT:
                    error = data[:200]
                    break
                if first_token_ms is None and event == TOKEN_EVENT:
                    first_token_ms = (time.perf_counter() - start) * 1000
                payload = _json_or_none(data)
                answer.add(event, payload if isinstance(payload, dict) else {})
                if event == DONE_EVENT:
                    if isinstance(payload, dict) and payload.get("session_id"):
                        session_id = str(payload["session_id"])
                    error = answer.mismatch(payload if isinstance(payload, dict) else {})
                    done = True
                    break
            # The entry's latency is the whole answer, not just the headers.
            response.request_meta["response_time"] = (time.perf_counter() - start) * 1000
            if error or first_token_ms is None or not done:
                response.failure(error or ("stream ended without a token" if done else "stream cut short"))
                return None
            fire_ttft(self.environment, "chat sse", first_token_ms)
            return session_id

    @tag("chat", "rest")
    @task
    def chat_rest(self) -> None:
        self._conversation(stream=False)

    @tag("chat", "sse")
    @task
    def chat_sse(self) -> None:
        self._conversation(stream=True)


def _json_or_none(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def fire_ttft(environment: Environment, name: str, milliseconds: float) -> None:
    environment.events.request.fire(
        request_type=TTFT_REQUEST_TYPE,
        name=name,
        response_time=milliseconds,
        response_length=0,
        exception=None,
        context={},
    )


class ChatWebSocketUser(User):
    """Multi-turn chat over ``GET /v1/chat/ws``, on the ``websockets`` sync client.

    Locust knows only HTTP, so each turn (send a message, read frames until the answer ends) is
    reported through ``events.request`` like any request, plus its time to first token.
    """

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.options = options
        self.rng = user_rng(self.environment)
        self.sampler = ZipfSampler(
            query_pool(options.query_file, options.query_pool_size), options.zipf_exponent, self.rng
        )
        self.headers = request_headers(options.api_key or None, options.scenario)
        self.url = (self.host or "").replace("http://", "ws://").replace("https://", "wss://") + "/v1/chat/ws"
        self.websocket: ClientConnection | None = None

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        """Shut the socket down before closing it: the client's reader (a greenlet under Locust)
        then sees EOF and leaves, instead of libev finding its fd closed under a live watcher,
        which aborts the whole process at the end of a run."""
        if self.websocket is None:
            return
        with contextlib.suppress(OSError):
            self.websocket.socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self.websocket.close()
        self.websocket = None

    def _connect(self) -> ClientConnection:
        start = time.perf_counter()
        exception: Exception | None = None
        try:
            self.websocket = connect(self.url, additional_headers=self.headers, open_timeout=10)
        except Exception as exc:  # any failure to connect is a failed request in the report
            exception = exc
            raise
        finally:
            self._report("connect", start, exception)
        return self.websocket

    def _report(self, name: str, start: float, exception: Exception | None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=f"/v1/chat/ws [{name}]",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    @tag("chat", "websocket")
    @task
    def conversation(self) -> None:
        websocket = self.websocket or self._connect()
        session_id: str | None = None
        for _ in range(max(1, self.options.chat_turns)):
            start = time.perf_counter()
            first_token_ms: float | None = None
            length = 0
            exception: Exception | None = None
            message: dict[str, Any] = {
                "type": "chat",
                "message": self.sampler.sample(),
                "collection": self.options.collection,
            }
            if session_id:
                message["session_id"] = session_id
            try:
                websocket.send(json.dumps(message))
                answer = StreamedAnswer("chat websocket")
                while True:
                    frame = json.loads(websocket.recv(timeout=60))
                    length += 1
                    kind = frame.get("type")
                    if kind == ERROR_EVENT:
                        raise RuntimeError(f"chat error frame: {str(frame)[:200]}")
                    if first_token_ms is None and kind == TOKEN_EVENT:
                        first_token_ms = (time.perf_counter() - start) * 1000
                    answer.add(kind, frame)
                    if kind == DONE_EVENT:
                        session_id = frame.get("session_id") or session_id
                        if mismatch := answer.mismatch(frame):
                            raise RuntimeError(mismatch)
                        break
                if first_token_ms is None:
                    raise RuntimeError("answer ended without a token")
            except Exception as exc:  # reported as a failed turn; the connection is then renewed
                exception = exc
            self._report("turn", start, exception, length)
            if exception is not None:
                self._close()
                return
            assert first_token_ms is not None
            fire_ttft(self.environment, "chat websocket", first_token_ms)


class IngestUser(RagfleetUser):
    """Uploads small Markdown documents while others search: the cache invalidation path under load."""

    wait_time = constant(2.0)

    @tag("ingest")
    @task
    def upload(self) -> None:
        topic = self.sampler.sample()
        document = (
            f"# {topic.capitalize()}\n\n"
            f"A load-test note about {topic}. It was uploaded by a synthetic user "
            f"(run {self.options.scenario}, {time.time():.3f}) to exercise ingestion while searching.\n"
        )
        body, content_type = multipart_file(
            f"loadtest-{self.rng.getrandbits(48):012x}.md", document.encode(), "text/markdown"
        )
        with self.client.post(
            f"/v1/documents?collection={self.options.collection}",
            data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes; Locust's hint is narrower
            headers={**self.headers, "Content-Type": content_type},
            name="/v1/documents [upload]",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif not response.json().get("job_id"):
                response.failure("upload answer has no job_id")


def multipart_file(filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """One-file ``multipart/form-data`` body (FastHttpUser has no ``files=``, unlike requests)."""
    boundary = f"ragfleet-{random.getrandbits(64):016x}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def apply_mix(mix: str) -> None:
    """Set the class weights of the mixed scenario (Locust reads them when it spawns users)."""
    search, chat, websocket, ingest = MIXES[mix]
    SearchUser.weight, ChatUser.weight, ChatWebSocketUser.weight, IngestUser.weight = (
        search,
        chat,
        websocket,
        ingest,
    )
