"""JSON logs, one object a line, carrying the request id and the trace id."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import sys
import time
from typing import Any, TextIO

import orjson
from opentelemetry import trace

from ragfleet.common.context import current_request_id

_STANDARD = tuple(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_RESERVED = frozenset(_STANDARD) | {"message", "asctime"}


ACCESS_LOGGER = "ragfleet.access"
MAX_HELD_ACCESS_LINES = 256


class Timestamps:
    """ISO 8601 UTC timestamps to the millisecond; the second's part is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """Every record as one JSON object; only the attributes a record gained after its standard
    ones (``extra=``) are looked at."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._timestamps = Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamps.format(record.created),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        attributes = record.__dict__
        # A LogRecord's standard attributes come first, in __init__'s order; extras after them.
        for key in itertools.islice(attributes, len(_STANDARD), None):
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = attributes[key]
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    """The access line of every request: one JSON object in `JsonFormatter`'s shape (logger
    ``ragfleet.access``, the request's ids, its route, status and duration), written to stderr
    like every other line, and on only while that logger is enabled for INFO.

    It skips the logging module's LogRecord, handler chain, lock and per-line flush: on the
    request middleware's hot path those were about half of its cost (14 of 31 us a request in a
    tight loop here). The lines of one event-loop turn leave in one write at its end, the way
    responses do (``ragfleet.common.server``), so a busy worker makes one write per turn rather
    than one per request; anything still held at exit is written then.
    """

    def __init__(self, service: str, stream: TextIO | None = None) -> None:
        self.service = service
        self._stream = stream  # None: sys.stderr when written (a test may have replaced it)
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._timestamps = Timestamps()
        self._pending: list[bytes] = []
        atexit.register(self._flush_at_exit)

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(
        self,
        method: str,
        path: str,
        status: int,
        *,
        route: str,
        duration_s: float,
        request_id: str,
        trace_id: int,
        span_id: int,
    ) -> None:
        entry = {
            "ts": self._timestamps.format(time.time()),
            "level": "INFO",
            "service": self.service,
            "logger": ACCESS_LOGGER,
            "message": f"{method} {path} {status}",
            "request_id": request_id,
            "trace_id": format(trace_id, "032x"),
            "span_id": format(span_id, "016x"),
            "route": route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 3),
        }
        self._pending.append(orjson.dumps(entry))
        if len(self._pending) >= MAX_HELD_ACCESS_LINES:
            self.flush()  # a turn that never ends (a loop kept busy) still holds only so many
            return
        if len(self._pending) > 1:
            return  # a flush is already due at the end of this turn
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop: now
            self.flush()

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # stderr already closed: nothing to do
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        stream = self._stream or sys.stderr
        stream.write(b"\n".join(lines).decode() + "\n")
        stream.flush()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, celery's) through one JSON handler on stderr."""
    # The JSON lines carry no caller, thread or process fields; not collecting them per record
    # (the caller is a stack walk) takes a measurable share off every access line.
    logging._srcfile = None  # the documented switch that turns off findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # Access lines come from our own middleware (with route, status, duration and ids).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
