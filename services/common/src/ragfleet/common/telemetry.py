"""OpenTelemetry tracing: W3C trace context in and out of every hop; OTLP export when configured."""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger("ragfleet.telemetry")

_configured_for: str | None = None
_exporting = False


def tracing_exported() -> bool:
    """Whether spans leave this process (an OTLP endpoint is configured). When they do not, the
    request middleware creates none: a span nobody receives costs a good share of a cached answer,
    and the incoming trace context is still passed on to the next hop and into the logs."""
    return _exporting


def setup_tracing(service_name: str, otlp_endpoint: str | None) -> None:
    """Install a tracer provider once per process.

    Spans are always created (so trace ids reach the logs and the next hop); they are exported
    only when an OTLP endpoint is configured.
    """
    global _configured_for, _exporting
    if _configured_for is not None:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log.info("exporting traces over OTLP", extra={"otlp_endpoint": endpoint})
        _exporting = True
    trace.set_tracer_provider(provider)
    _configured_for = service_name


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def inject_context(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context (``traceparent``, baggage) into outgoing headers."""
    propagate.inject(carrier)
    return carrier


# Contexts extracted from a ``baggage`` header alone (no trace id), by the header's text. Clients
# that mark their traffic (load tests, synthetic checks) send the same baggage on every request,
# and parsing it was 6 % of a cached search's CPU in the gateway (py-spy, session 5). Contexts
# are immutable, so one can be shared; the table is bounded and simply emptied when full.
_BAGGAGE_CONTEXTS: dict[str, otel_context.Context] = {}
_BAGGAGE_CONTEXTS_MAX = 256


def extract_context(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context of an incoming request's headers (W3C trace context and baggage)."""
    baggage = carrier.get("baggage")
    if baggage is None or "traceparent" in carrier or "tracestate" in carrier:
        return propagate.extract(carrier)
    context = _BAGGAGE_CONTEXTS.get(baggage)
    if context is None:
        if len(_BAGGAGE_CONTEXTS) >= _BAGGAGE_CONTEXTS_MAX:
            _BAGGAGE_CONTEXTS.clear()
        # From an empty context, not the current one: the entry must not depend on who asked first.
        context = _BAGGAGE_CONTEXTS[baggage] = propagate.extract(carrier, context=otel_context.Context())
    return context


def get_tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
