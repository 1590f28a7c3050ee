"""The cache hit rate as the services count it: ``ragfleet_cache_requests_total`` from their /metrics.

The load generator cannot tell a cache hit from a fast miss, so the hit-rate gate reads the
counters the services export, once when the test starts and once when it stops, and uses the
difference — whatever the counters held before the run (warm-up, other tests) does not count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("ragfleet.loadtests")

CACHE_METRIC = "ragfleet_cache_requests"
# (cache, tier, result) -> count
CacheCounts = dict[tuple[str, str, str], float]


def parse_cache_counts(exposition: str) -> CacheCounts:
    counts: CacheCounts = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != CACHE_METRIC:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = (sample.labels["cache"], sample.labels["tier"], sample.labels["result"])
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def scrape(urls: Iterable[str], timeout_s: float = 5.0) -> CacheCounts | None:
    """Sum the cache counters of every URL (one per replica); None if any could not be read."""
    total: CacheCounts = {}
    for url in urls:
        try:
            response = httpx.get(url, timeout=timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("could not scrape %s: %s", url, exc)
            return None
        for key, value in parse_cache_counts(response.text).items():
            total[key] = total.get(key, 0.0) + value
    return total


@dataclass
class HitRate:
    cache: str
    lookups: int
    l1_hits: int
    l2_hits: int
    available_caches: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return (self.l1_hits + self.l2_hits) / self.lookups if self.lookups else None


def hit_rate(before: Mapping[tuple[str, str, str], float], after: CacheCounts, cache: str) -> HitRate:
    """Hits in either tier over L1 lookups (every lookup starts at L1), between two scrapes.

    A counter lower after than before means the service restarted during the run; the
    after-value alone is then the best estimate of what the run did.
    """

    def delta(tier: str, result: str) -> int:
        end = after.get((cache, tier, result), 0.0)
        start = before.get((cache, tier, result), 0.0)
        return int(end - start if end >= start else end)

    l1_hits, l1_misses = delta("l1", "hit"), delta("l1", "miss")
    return HitRate(
        cache=cache,
        lookups=l1_hits + l1_misses,
        l1_hits=l1_hits,
        l2_hits=delta("l2", "hit"),
        available_caches=sorted({name for name, _, _ in after}),
    )
