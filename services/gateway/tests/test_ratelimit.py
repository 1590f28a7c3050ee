"""The shared GCRA limiter on a real Redis: exact for ordinary keys, leased for fast ones."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from ragfleet.gateway.ratelimit import LEASE_WINDOW_S, RateLimiter

pytestmark = pytest.mark.integration


async def test_an_ordinary_key_is_checked_in_redis_on_every_request(redis: Redis) -> None:
    first, second = RateLimiter(redis), RateLimiter(redis)
    decisions = [await limiter.check("slow", rate_per_s=0.001, burst=5) for limiter in (first, second) * 5]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 5
    assert decisions[-1].retry_after_s > 100  # one token per 1000 s
    assert first.leases == {} and second.leases == {}


async def test_a_fast_key_is_leased_and_never_exceeds_its_limit(redis: Redis) -> None:
    rate, burst = 400.0, 200  # a lease of min(burst // 4, rate * window) = 20 requests
    replicas = [RateLimiter(redis), RateLimiter(redis)]
    started = time.monotonic()
    allowed = 0
    for i in range(600):
        allowed += (await replicas[i % 2].check("fast", rate_per_s=rate, burst=burst)).allowed
    elapsed = time.monotonic() - started
    # Never more than the burst plus what the rate refilled meanwhile (+1: GCRA admits at the edge).
    assert allowed <= burst + rate * elapsed + 1
    assert allowed >= burst  # the burst itself is always there on a fresh key
    # Both replicas spent local leases instead of asking Redis for each request.
    lease = min(burst // 4, int(rate * LEASE_WINDOW_S))
    assert lease == 20
    assert all("gw:ratelimit:fast" in limiter.leases for limiter in replicas)


async def test_a_lease_is_cut_to_what_the_bucket_still_holds(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    # Burst 8 with a lease of 2 per call; the refill (1 per 25 ms) is slow next to the loop.
    decisions = [await limiter.check("cut", rate_per_s=40, burst=8) for _ in range(12)]
    assert sum(d.allowed for d in decisions) in (8, 9)
    assert not decisions[-1].allowed


async def test_concurrent_requests_share_one_lease_and_lose_no_tokens(redis: Redis) -> None:
    # 40 requests in flight when the lease runs out (a busy key behind one replica): they wait for
    # one refill instead of each taking a lease and overwriting the others' (which ran a key with
    # a burst of 1000 dry within 40 requests).
    limiter = RateLimiter(redis)
    calls = 0
    script = limiter.script

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    limiter.script = counted  # type: ignore[assignment]
    for _ in range(3):
        decisions = await asyncio.gather(
            *(limiter.check("busy", rate_per_s=1000, burst=1000) for _ in range(40))
        )
        assert all(d.allowed for d in decisions)
    # 120 requests at a lease of 50: three refills, not one round trip per request.
    assert calls <= 4
