"""Refusing work fast when the event loop is behind, instead of queueing it for seconds.

What made the proxy collapse under an open-loop load was not one slow request but a queue that
never drained: once CPU per request times the rate exceeds the CPU the process gets, every new request waits
behind all the earlier ones, clients time out after 30 s, and the proxy still spends its CPU on
answers nobody reads. The event loop's lag (how late a timer fires) is that queue, measured
directly: it covers a busy process and a CPU taken by other processes alike, and it is not fooled
by long-lived streams that wait on the upstream (those cost no CPU). While the lag is above
``max_loop_lag_s``, new completions and embeddings get ``503 overloaded`` with ``Retry-After`` at
the cost of a few microseconds; health, metrics and requests already admitted are untouched.
"""

from __future__ import annotations

import asyncio
import re
import uuid

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ragfleet.llm_proxy import metrics

SHED_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class LoopLag:
    """The event loop's current lag in seconds, sampled every ``interval_s`` (run ``run`` as a task)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        previous = 0.0
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            late = max(0.0, loop.time() - before - self.interval_s)
            # Behind on two ticks in a row: a queue. One late tick alone is a pause (a stopped
            # process, a GC, a long synchronous call) that is already over.
            self.lag_s, previous = min(late, previous), late


class LoadShedder:
    """Outermost middleware: a 503 for new work while the loop lags more than ``max_lag_s`` (0: never)."""

    def __init__(self, app: ASGIApp, *, lag: LoopLag, max_lag_s: float) -> None:
        self.app = app
        self.lag = lag
        self.max_lag_s = max_lag_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.max_lag_s <= 0
            or scope["type"] != "http"
            or self.lag.lag_s <= self.max_lag_s
            or scope["path"] not in SHED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        metrics.SHED.labels(scope["path"]).inc()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = incoming.decode() if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        body = orjson.dumps(
            {
                "error": {
                    "code": "overloaded",
                    "message": f"the proxy is {self.lag.lag_s * 1000:.0f} ms behind; retry shortly",
                    "request_id": request_id,
                }
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", b"1"),
            (b"x-request-id", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
