from __future__ import annotations

import random

from ragfleet.llm_proxy.dispatcher import full_jitter_backoff
from ragfleet.llm_proxy.providers.base import parse_retry_after


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.25), (2, 0.5), (3, 1.0), (10, 8.0)):
        delays = [full_jitter_backoff(attempt, 0.25, 8.0, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
