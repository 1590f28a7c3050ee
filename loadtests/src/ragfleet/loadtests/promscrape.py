"""The cache hit rate as the services count it: ``ragfleet_cache_requests_total`` from their /metrics.

The load generator cannot tell a cache hit from a fast miss, so the hit-rate gate reads the
counters the services export, once when the test starts and once when it stops, and uses the
difference — whatever the counters held before the run (warm-up, other tests) does not count.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger("ragfleet.loadtests")

CACHE_METRIC = "ragfleet_cache_requests"
# (cache, tier, result) -> count
CacheCounts = dict[tuple[str, str, str], float]


def parse_cache_counts(exposition: str) -> CacheCounts:
    # The load generator scrapes every replica every few seconds on the CPU it shares with the
    # services: hand the (pure Python) parser only the lines of the one metric it needs.
    relevant = "\n".join(line for line in exposition.splitlines() if CACHE_METRIC in line)
    counts: CacheCounts = {}
    for family in text_string_to_metric_families(relevant + "\n"):
        if family.name != CACHE_METRIC:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            key = (sample.labels["cache"], sample.labels["tier"], sample.labels["result"])
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


# url -> its counters; only the URLs that answered
Scrape = dict[str, CacheCounts]


def scrape(urls: Iterable[str], timeout_s: float = 5.0) -> Scrape:
    """Each URL's cache counters (one URL per replica); a URL that cannot be read is left out.

    Plain urllib, not httpx: this runs inside the load generator every couple of seconds, and an
    httpx call builds a client with a TLS context each time (a tenth of Locust's CPU in a profile
    of a 50-user search run, taken from the users' share)."""
    counts: Scrape = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                text = response.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors; ValueError: a bad URL
            log.warning("could not scrape %s: %s", url, exc)
            continue
        counts[url] = parse_cache_counts(text)
    return counts


def paired(before: Scrape, after: Scrape) -> tuple[CacheCounts, CacheCounts] | None:
    """Counters summed over the replicas read both times, or None if there is none.

    A replica that went away during the run (or came up during it) has no difference to take, so
    it is left out of both sides rather than read as a restart.
    """
    common = before.keys() & after.keys()
    if not common:
        return None

    def total(scrape: Scrape) -> CacheCounts:
        summed: CacheCounts = {}
        for url in common:
            for key, value in scrape[url].items():
                summed[key] = summed.get(key, 0.0) + value
        return summed

    return total(before), total(after)


@dataclass
class HitRate:
    cache: str
    lookups: int
    l1_hits: int
    l2_hits: int
    edge_hits: int = 0
    available_caches: list[str] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return self.edge_hits + self.l1_hits + self.l2_hits

    @property
    def rate(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def describe(self) -> str:
        tiers = f"L1 {self.l1_hits}, L2 {self.l2_hits}"
        if self.edge_hits:
            tiers = f"gateway edge {self.edge_hits}, {tiers}"
        return f"{self.hits} hits in {self.lookups} lookups ({tiers})"


def hit_rate(before: Mapping[tuple[str, str, str], float], after: CacheCounts, cache: str) -> HitRate:
    """Hits in any tier over the lookups clients made, between two scrapes.

    Tiers: the gateways' edge (their own memory), then retrieval's L1, then L2 (Redis). Each
    edge miss becomes one retrieval lookup, so the lookups clients made are the edge lookups plus
    the retrieval lookups that did not come from an edge miss (chat asks retrieval directly).
    Without gateway metrics (or with the edge off) this is retrieval's L1 + L2 over its lookups.

    A counter lower after than before means the service restarted during the run; the
    after-value alone is then the best estimate of what the run did.
    """

    def delta(tier: str, result: str) -> int:
        end = after.get((cache, tier, result), 0.0)
        start = before.get((cache, tier, result), 0.0)
        return int(end - start if end >= start else end)

    edge_hits, edge_misses = delta("edge", "hit"), delta("edge", "miss")
    l1_hits, l1_misses = delta("l1", "hit"), delta("l1", "miss")
    direct_lookups = max(0, l1_hits + l1_misses - edge_misses)
    return HitRate(
        cache=cache,
        lookups=edge_hits + edge_misses + direct_lookups,
        l1_hits=l1_hits,
        l2_hits=delta("l2", "hit"),
        edge_hits=edge_hits,
        available_caches=sorted({name for name, _, _ in after}),
    )
