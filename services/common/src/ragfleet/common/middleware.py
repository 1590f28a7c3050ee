"""One pure-ASGI middleware for what every request needs: request id, server span, metrics, access log,
and the ``X-Response-Time`` header (time until the response started, so a stream's is its first byte).

Pure ASGI (not ``BaseHTTPMiddleware``) because it sits on every hot path: it adds no task, no
body buffering, and its cost is a few microseconds per request.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragfleet.common.context import request_id_var
from ragfleet.common.logging import AccessLog
from ragfleet.common.metrics import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS
from ragfleet.common.telemetry import extract_context, tracing_exported

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes are not logged.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

_READ_HEADERS = frozenset({b"x-request-id", b"traceparent", b"tracestate", b"baggage"})

ResponseObserver = Callable[[str, str, int, float], None]


def route_template(scope: Scope) -> str:
    """The matched route's template (``/v1/jobs/{job_id}``), never the raw path, to bound label cardinality."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def unexported_span() -> trace.Span:
    """A span with ids and nothing else, for when no exporter would receive a real one.

    It continues the incoming trace (or starts one), so the trace id still reaches the logs and
    the next hop, at a small fraction of an SDK span's cost (no attributes, no processors).
    """
    parent = trace.get_current_span().get_span_context()
    trace_id = parent.trace_id if parent.is_valid else random.getrandbits(128)
    flags = parent.trace_flags if parent.is_valid else TraceFlags(TraceFlags.SAMPLED)
    return NonRecordingSpan(SpanContext(trace_id, random.getrandbits(64), is_remote=False, trace_flags=flags))


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        replica: str,
        access_log_enabled: bool = True,
        observer: ResponseObserver | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.replica = replica.encode()
        self.access_log = AccessLog(service) if access_log_enabled else None
        self.observer = observer
        self.tracer = trace.get_tracer("ragfleet.http")
        self.in_flight = HTTP_IN_FLIGHT.labels(service)
        # Label children resolved once per (method, route, status), not per request.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def _observe(self, method: str, route: str, status_code: int, duration: float) -> None:
        counter = self._counters.get((method, route, status_code))
        if counter is None:
            counter = self._counters[(method, route, status_code)] = HTTP_REQUESTS.labels(
                self.service, method, route, str(status_code)
            )
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[(method, route)] = HTTP_DURATION.labels(self.service, method, route)
        counter.inc()
        histogram.observe(duration)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        # Only the few headers this middleware reads are decoded.
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _READ_HEADERS
        }
        incoming_id = headers.get("x-request-id", "")
        # A correlation id, not a secret: the process's PRNG, not a getrandom() call per request.
        request_id = (
            incoming_id if _VALID_REQUEST_ID.match(incoming_id) else f"{random.getrandbits(128):032x}"
        )
        request_id_token = request_id_var.set(request_id)
        traced = "traceparent" in headers or "baggage" in headers
        context_token = otel_context.attach(extract_context(headers)) if traced else None
        method = scope.get("method", "GET")
        if tracing_exported():
            span: trace.Span = self.tracer.start_span(f"{method} {scope['path']}", kind=SpanKind.SERVER)
        else:
            span = unexported_span()
        span_token = otel_context.attach(trace.set_span_in_context(span))
        status_code = 500
        extra_headers = [(b"x-request-id", request_id.encode()), (b"x-ragfleet-replica", self.replica)]

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                took = b"%.3fms" % ((time.perf_counter() - started) * 1000)
                message["headers"] = [*message.get("headers", ()), *extra_headers, (b"x-response-time", took)]
            await send(message)

        started = time.perf_counter()
        self.in_flight.inc()
        failed = False
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status_code = 500
            failed = True
            raise
        finally:
            self.in_flight.dec()
            duration = time.perf_counter() - started
            route = route_template(scope)
            if scope["type"] == "websocket":
                status_code = 101 if status_code == 500 else status_code
            if span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status_code)
                span.set_attribute("ragfleet.request_id", request_id)
                if status_code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            if scope["type"] == "http":
                self._observe(method, route, status_code, duration)
                if self.observer is not None:
                    self.observer(method, route, status_code, duration)
            if self.access_log is not None and route not in _QUIET_ROUTES and self.access_log.enabled():
                ids = span.get_span_context()
                self.access_log.write(
                    method,
                    scope["path"],
                    status_code,
                    route=route,
                    duration_s=duration,
                    request_id=request_id,
                    trace_id=ids.trace_id,
                    span_id=ids.span_id,
                )
            span.end()
            otel_context.detach(span_token)
            if context_token is not None:
                otel_context.detach(context_token)
            if not failed:
                # A failed request keeps its id set: the outermost handler (Starlette's server
                # error middleware, outside this one) writes it into the 500 body.
                request_id_var.reset(request_id_token)
