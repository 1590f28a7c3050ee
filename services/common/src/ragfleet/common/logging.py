"""JSON logs, one object a line, carrying the request id and the trace id."""

from __future__ import annotations

import itertools
import logging
import sys
import time
from typing import Any

import orjson
from opentelemetry import trace

from ragfleet.common.context import current_request_id

_STANDARD = tuple(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_RESERVED = frozenset(_STANDARD) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Every record as one JSON object. It formats an access line per request, so it is kept
    cheap: the second's timestamp is formatted once per second, and only the attributes a record
    gained after its standard ones (``extra=``) are looked at."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._stamp = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
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
