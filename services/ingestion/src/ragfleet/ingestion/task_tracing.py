"""Trace context through Celery: the publisher writes ``traceparent`` into the task's headers,
the worker continues the trace from there, so one trace spans the API call and the task."""

from __future__ import annotations

from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from ragfleet.common.context import request_id_var
from ragfleet.common.telemetry import extract_context, inject_context

_tracer = trace.get_tracer("ragfleet.celery")
_active: dict[str, tuple[Any, ...]] = {}
_PROPAGATED = ("traceparent", "tracestate", "baggage", "x-request-id")


def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    carrier: dict[str, str] = {}
    inject_context(carrier)
    request_id = request_id_var.get()
    if request_id:
        carrier["x-request-id"] = request_id
    headers.update(carrier)


def _on_prerun(task_id: str, task: Any, **_: Any) -> None:
    carrier = {key: value for key in _PROPAGATED if (value := getattr(task.request, key, None))}
    context_token = otel_context.attach(extract_context(carrier))
    span = _tracer.start_span(f"celery.run {task.name}", kind=SpanKind.CONSUMER)
    span.set_attribute("ragfleet.task.id", task_id)
    span_token = otel_context.attach(trace.set_span_in_context(span))
    request_token = request_id_var.set(carrier.get("x-request-id") or task_id)
    _active[task_id] = (span, span_token, context_token, request_token)


def _on_postrun(task_id: str, state: str | None = None, **_: Any) -> None:
    entry = _active.pop(task_id, None)
    if entry is None:
        return
    span, span_token, context_token, request_token = entry
    span.set_attribute("ragfleet.task.state", state or "")
    span.end()
    request_id_var.reset(request_token)
    otel_context.detach(span_token)
    otel_context.detach(context_token)


def install() -> None:
    before_task_publish.connect(_on_publish, weak=False, dispatch_uid="ragfleet-publish")
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="ragfleet-prerun")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="ragfleet-postrun")
