"""Per-request context shared by logging, errors and outgoing calls."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("ragfleet_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
