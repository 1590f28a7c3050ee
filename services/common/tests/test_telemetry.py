"""Incoming trace context: extracted from the request's headers, baggage-only contexts reused."""

from __future__ import annotations

from opentelemetry import baggage, trace

from ragfleet.common.telemetry import extract_context

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_baggage_alone_is_extracted_once_per_header_text_and_tells_the_same() -> None:
    marks = {"baggage": "ragfleet.synthetic=true,ragfleet.loadtest.scenario=search"}
    first, again = extract_context(marks), extract_context(dict(marks))
    assert first is again  # the same (immutable) context, not a second parse
    assert baggage.get_all(first) == {"ragfleet.synthetic": "true", "ragfleet.loadtest.scenario": "search"}
    other = extract_context({"baggage": "ragfleet.synthetic=false"})
    assert baggage.get_baggage("ragfleet.synthetic", other) == "false"


def test_a_trace_id_is_never_served_from_the_table() -> None:
    headers = {"baggage": "k=v", "traceparent": TRACEPARENT}
    context = extract_context(headers)
    assert trace.get_current_span(context).get_span_context().trace_id == int(TRACEPARENT[3:35], 16)
    assert baggage.get_baggage("k", context) == "v"
    assert extract_context(headers) is not context  # every request's own span context
