"""The cache's Prometheus instruments, and hit rates per cache and tier read back from them."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client import multiprocess as prometheus_multiprocess

from ragfleet.common.metrics import MULTIPROC_ENV

CACHE_REQUESTS = Counter(
    "ragfleet_cache_requests_total",
    "Cache lookups by cache name, tier (l1, l2) and result (hit, miss, error).",
    ["cache", "tier", "result"],
)
CACHE_ERRORS = Counter(
    "ragfleet_cache_redis_errors_total",
    "Redis operations of the cache that failed (the request was served anyway).",
    ["service", "operation"],
)
CACHE_INVALIDATIONS = Counter(
    "ragfleet_cache_invalidations_total",
    "Collection version bumps, by outcome (acked: every replica purged; partial: ack timeout; "
    "deferred: Redis was down, replayed when it returns).",
    ["outcome"],
)

# The semantic caches' (ragfleet.common.semantic_cache for searches, the gateway's chat answers):
# here, without numpy, so a service that only counts (the gateway) does not need the model runtime.
SEMANTIC_REQUESTS = Counter(
    "ragfleet_semantic_cache_requests_total",
    "Semantic cache lookups by cache name and result (hit, miss).",
    ["cache", "result"],
)
SEMANTIC_CHECKS = Counter(
    "ragfleet_semantic_cache_checks_total",
    "Semantic hits verified against the real answer, by result (agree, false_hit).",
    ["cache", "result"],
)


def cache_stats() -> dict[str, Any]:
    """Hit rates per cache and tier, from ``ragfleet_cache_requests_total`` (all workers' samples).

    Reading the metric rather than per-process counters makes the figures agree with /metrics and
    cover every uvicorn worker, whichever one answers.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    counts: dict[str, dict[tuple[str, str], float]] = {}
    for family in registry.collect():
        if family.name != "ragfleet_cache_requests":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            per_cache = counts.setdefault(labels["cache"], {})
            key = (labels["tier"], labels["result"])
            per_cache[key] = per_cache.get(key, 0.0) + sample.value
    return {name: _rates(per_cache) for name, per_cache in sorted(counts.items())}


def _rates(counts: dict[tuple[str, str], float]) -> dict[str, Any]:
    """Hit rates of one cache in one process: an edge tier (gateway) or L1 + L2 (the owner)."""

    def n(tier: str, result: str) -> int:
        return int(counts.get((tier, result), 0))

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    edge_hits, edge_misses = n("edge", "hit"), n("edge", "miss")
    l1_hits, l1_misses = n("l1", "hit"), n("l1", "miss")
    l2_hits, l2_misses, l2_errors = n("l2", "hit"), n("l2", "miss"), n("l2", "error")
    edge_lookups, l1_lookups = edge_hits + edge_misses, l1_hits + l1_misses
    stats: dict[str, Any] = {}
    if edge_lookups:
        stats["edge"] = {"hits": edge_hits, "misses": edge_misses, "hit_rate": rate(edge_hits, edge_lookups)}
    if edge_lookups and not l1_lookups:
        return {"requests": edge_lookups, "hit_rate": rate(edge_hits, edge_lookups), **stats}
    return {
        "requests": l1_lookups,
        "hit_rate": rate(l1_hits + l2_hits, l1_lookups),
        **stats,
        "l1": {"hits": l1_hits, "misses": l1_misses, "hit_rate": rate(l1_hits, l1_lookups)},
        "l2": {
            "hits": l2_hits,
            "misses": l2_misses,
            "errors": l2_errors,
            "hit_rate": rate(l2_hits, l2_hits + l2_misses + l2_errors),
        },
    }
