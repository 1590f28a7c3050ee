from __future__ import annotations

from ragfleet.loadtests.promscrape import hit_rate, paired, parse_cache_counts

BEFORE = """\
# HELP ragfleet_cache_requests_total Cache lookups by cache name, tier (l1, l2) and result (hit, miss, error).
# TYPE ragfleet_cache_requests_total counter
ragfleet_cache_requests_total{cache="search",tier="l1",result="hit"} 10.0
ragfleet_cache_requests_total{cache="search",tier="l1",result="miss"} 5.0
ragfleet_cache_requests_total{cache="search",tier="l2",result="hit"} 1.0
ragfleet_cache_requests_total{cache="embedding",tier="l1",result="hit"} 7.0
# HELP ragfleet_http_requests_total HTTP requests answered.
# TYPE ragfleet_http_requests_total counter
ragfleet_http_requests_total{service="retrieval",method="POST",route="/v1/search",status="200"} 15.0
"""

AFTER = (
    BEFORE.replace("} 10.0", "} 810.0")
    .replace("} 5.0", "} 205.0")
    .replace('result="hit"} 1.0', 'result="hit"} 101.0')
)


def test_counts_are_read_per_cache_tier_and_result() -> None:
    counts = parse_cache_counts(BEFORE)
    assert counts[("search", "l1", "hit")] == 10
    assert counts[("embedding", "l1", "hit")] == 7
    assert len(counts) == 4


def test_hit_rate_uses_the_difference_between_scrapes() -> None:
    rate = hit_rate(parse_cache_counts(BEFORE), parse_cache_counts(AFTER), "search")
    assert (rate.lookups, rate.l1_hits, rate.l2_hits) == (1000, 800, 100)
    assert rate.rate == 0.9
    assert rate.available_caches == ["embedding", "search"]


def test_a_restarted_service_counts_from_zero() -> None:
    rate = hit_rate(parse_cache_counts(AFTER), parse_cache_counts(BEFORE), "search")
    assert rate.lookups == 15


def test_an_unknown_cache_has_no_rate() -> None:
    assert hit_rate({}, parse_cache_counts(AFTER), "nope").rate is None


def test_gateway_edge_hits_count_and_its_misses_are_not_counted_twice() -> None:
    after = {
        # Two gateways' edge tier, summed by scrape(): 900 answered from memory, 100 asked retrieval.
        ("search", "edge", "hit"): 900.0,
        ("search", "edge", "miss"): 100.0,
        # Retrieval saw those 100 plus 20 searches from chat: 120 lookups, 15 computed.
        ("search", "l1", "hit"): 90.0,
        ("search", "l1", "miss"): 30.0,
        ("search", "l2", "hit"): 15.0,
        ("search", "l2", "miss"): 15.0,
    }
    rate = hit_rate({}, after, "search")
    assert rate.lookups == 1020
    assert rate.hits == 900 + 90 + 15
    assert rate.rate == 1 - 15 / 1020
    assert rate.describe() == "1005 hits in 1020 lookups (gateway edge 900, L1 90, L2 15)"


def test_replicas_read_only_once_are_left_out_of_both_sides() -> None:
    gateway = {("search", "edge", "hit"): 50.0, ("search", "edge", "miss"): 50.0}
    retrieval = {("search", "l1", "hit"): 10.0, ("search", "l1", "miss"): 5.0}
    before = {"gw-1": gateway, "gone": gateway, "retrieval": retrieval}
    after = {
        "gw-1": {key: value * 3 for key, value in gateway.items()},
        "new": gateway,
        "retrieval": retrieval,
    }
    pair = paired(before, after)
    assert pair is not None
    rate = hit_rate(*pair, "search")
    # gw-1 alone moved: +100 edge hits, +100 edge misses; retrieval stood still.
    assert (rate.lookups, rate.edge_hits) == (200, 100)
    assert paired({"a": gateway}, {"b": gateway}) is None
