"""The llm-proxy's metric instruments, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ragfleet.common.metrics import LATENCY_BUCKETS_S

REQUESTS = Counter(
    "ragfleet_llm_proxy_requests_total",
    "Client requests, by requested model, endpoint, streaming and outcome (ok, cache_hit, error code).",
    ["model", "endpoint", "stream", "outcome"],
)
UPSTREAM_ATTEMPTS = Counter(
    "ragfleet_llm_proxy_upstream_attempts_total",
    "Calls to upstreams, by upstream and outcome (ok, http_429, http_5xx, timeout, connect, dropped, ...).",
    ["upstream", "outcome"],
)
RETRIES = Counter(
    "ragfleet_llm_proxy_retries_total",
    "Retries of an upstream call after a retryable failure, by upstream and the failure that caused it.",
    ["upstream", "reason"],
)
SHED = Counter(
    "ragfleet_llm_proxy_shed_total",
    "Requests refused with 503 overloaded because the event loop lagged (shedding.py), by path.",
    ["path"],
)
FALLBACKS = Counter(
    "ragfleet_llm_proxy_fallbacks_total",
    "Requests that moved on to a fallback model, by requested model and fallback.",
    ["model", "fallback"],
)
BREAKER_STATE = Gauge(
    "ragfleet_llm_proxy_breaker_state",
    "Circuit breaker state last seen by this replica: 0 closed, 1 half-open, 2 open.",
    ["upstream"],
    multiprocess_mode="mostrecent",
)
BREAKER_TRANSITIONS = Counter(
    "ragfleet_llm_proxy_breaker_transitions_total",
    "Circuit breaker transitions made by this replica, by upstream and new state.",
    ["upstream", "state"],
)
BREAKER_REJECTIONS = Counter(
    "ragfleet_llm_proxy_breaker_rejections_total",
    "Calls not made because the upstream's breaker was open (or half-open with a probe in flight).",
    ["upstream"],
)
STREAM_ERRORS = Counter(
    "ragfleet_llm_proxy_stream_errors_total",
    "Streams that failed after the first token was sent (ended with an error event), by reason.",
    ["model", "reason"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "ragfleet_llm_proxy_time_to_first_token_seconds",
    "Time from the request to the first output chunk of a stream, retries and fallbacks included.",
    ["model"],
    buckets=LATENCY_BUCKETS_S,
)
TOKENS = Counter(
    "ragfleet_llm_proxy_tokens_total",
    "Tokens accounted, by model that served them and kind (prompt, completion).",
    ["model", "kind"],
)
OVERHEAD = Histogram(
    "ragfleet_llm_proxy_overhead_seconds",
    "Time the proxy itself added before the response started (upstream waits and backoffs excluded).",
    ["endpoint"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
RATE_LIMITED = Counter(
    "ragfleet_llm_proxy_rate_limited_total",
    "Requests refused because the caller's key exceeded a limit (rpm, tpm or concurrency).",
    ["limit"],
)
REDIS_ERRORS = Counter(
    "ragfleet_llm_proxy_redis_errors_total",
    "Redis operations that failed and were degraded around, by component.",
    ["component"],
)
