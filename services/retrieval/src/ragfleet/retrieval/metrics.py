"""The retrieval service's own instruments (the cache's are in ``ragfleet.common.cache``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from ragfleet.common.metrics import LATENCY_BUCKETS_S

SEARCH_DURATION = Histogram(
    "ragfleet_retrieval_search_duration_seconds",
    "Time to answer a search inside the service, by mode and cache result (hit-l1, hit-l2, miss).",
    ["mode", "cache"],
    buckets=LATENCY_BUCKETS_S,
)
CHUNKS_WRITTEN = Counter(
    "ragfleet_retrieval_chunks_written_total",
    "Chunks upserted or deleted through the internal API.",
    ["operation"],
)
MODEL_CHECKS = Counter(
    "ragfleet_retrieval_model_checks_total",
    "Collection embedding-model checks that did not pass: mismatch (refused with 409) or "
    "redis_error (skipped: the collection's model could not be read or recorded).",
    ["result"],
)
RERANK_DURATION = Histogram(
    "ragfleet_retrieval_rerank_duration_seconds",
    "Time of one call to the reranker, by outcome (ok, error).",
    ["outcome"],
    buckets=LATENCY_BUCKETS_S,
)
SEARCH_DEGRADED = Counter(
    "ragfleet_retrieval_search_degraded_total",
    "Searches answered with less than was asked, by reason: embedder_busy (a hybrid search "
    "answered BM25-only because its query could not be embedded in time; cached nowhere).",
    ["reason"],
)
FILLS_BEHIND = Counter(
    "ragfleet_retrieval_search_fills_behind_total",
    "Full answers computed in the background behind degraded ones, by outcome: stored (the next ask "
    "hits), refused (the embedder's queue was over its bound), failed, skipped (one already running "
    "for the question, or the limit of fills at a time reached).",
    ["outcome"],
)
