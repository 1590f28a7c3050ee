from __future__ import annotations

import random
from collections import Counter

import pytest

from ragfleet.loadtests.queries import (
    SEARCH_MODES,
    SearchRequestFactory,
    ZipfSampler,
    load_pool,
    parse_weights,
    widened_pool,
)


def test_the_shipped_pool_is_large_and_has_no_duplicates() -> None:
    pool = load_pool()
    assert len(pool) >= 100
    assert len(set(pool)) == len(pool)


def test_zipf_probabilities_follow_rank_and_sum_to_one() -> None:
    sampler = ZipfSampler([f"q{i}" for i in range(50)], exponent=1.0)
    probabilities = [sampler.probability(rank) for rank in range(1, 51)]
    assert sum(probabilities) == pytest.approx(1.0)
    assert probabilities[0] == pytest.approx(2 * probabilities[1])
    assert probabilities == sorted(probabilities, reverse=True)


def test_zipf_draws_repeat_the_popular_queries() -> None:
    sampler = ZipfSampler(load_pool(), exponent=1.1, rng=random.Random(7))
    draws = Counter(sampler.sample() for _ in range(5000))
    top = load_pool()[0]
    assert draws.most_common(1)[0][0] == top
    # Heavy-tailed: the 10 most popular queries make up a large share of the traffic.
    assert sum(count for _, count in draws.most_common(10)) > 0.4 * 5000


def test_parse_weights() -> None:
    assert parse_weights("vector", SEARCH_MODES) == {"vector": 1.0}
    assert parse_weights("vector:6, hybrid:2,bm25:2", SEARCH_MODES) == {"vector": 6, "hybrid": 2, "bm25": 2}
    with pytest.raises(ValueError, match="unknown name 'semantic'"):
        parse_weights("semantic:1", SEARCH_MODES)
    with pytest.raises(ValueError, match="no positive weight"):
        parse_weights("vector:0", SEARCH_MODES)


def test_search_requests_use_every_mode_and_some_filters() -> None:
    factory = SearchRequestFactory(
        sampler=ZipfSampler(load_pool(), rng=random.Random(3)),
        mode_weights=parse_weights("vector:1,hybrid:1,bm25:1", SEARCH_MODES),
        filter_ratio=0.2,
    )
    bodies = [factory.build() for _ in range(600)]
    assert {b["mode"] for b in bodies} == set(SEARCH_MODES)
    assert all("alpha" in b for b in bodies if b["mode"] == "hybrid")
    assert 0.1 < sum("filters" in b for b in bodies) / len(bodies) < 0.3


def test_a_widened_pool_keeps_the_base_first_and_asks_only_distinct_questions() -> None:
    base = load_pool()
    pool = widened_pool(base, 20_000)
    assert len(pool) == len(set(pool)) == 20_000
    assert pool[: len(base)] == base  # the popular questions keep the top ranks
    assert widened_pool(base, 20_000) == pool  # two runs ask the same pool
    assert widened_pool(base, 10) == base[:10]
    with pytest.raises(ValueError, match="more than"):
        widened_pool(["one question"], 1_000)
