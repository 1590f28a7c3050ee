"""The breaker's transitions as plain functions, then on a real Redis shared by two boards."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from ragfleet.llm_proxy.breaker import (
    BreakerBoard,
    BreakerConfig,
    BreakerState,
    after_failure,
    after_success,
    decide,
    release_probe,
)

CONFIG = BreakerConfig(failure_threshold=3, window_s=10, open_s=5, probe_timeout_s=2)


def test_failures_within_the_window_open_it() -> None:
    state = BreakerState()
    state = after_failure(state, 100, CONFIG)
    state = after_failure(state, 101, CONFIG)
    assert state.state == "closed"
    # The first failure has left the window by now: still only two.
    assert after_failure(state, 111, CONFIG).state == "closed"
    assert after_failure(state, 102, CONFIG).state == "open"


def test_open_rejects_then_lets_exactly_one_probe_through() -> None:
    opened = BreakerState("open", opened_at=100)
    permit, changed = decide(opened, 103, CONFIG)
    assert not permit.allowed and permit.retry_after_s == pytest.approx(2)
    assert changed is None
    permit, probing = decide(opened, 105, CONFIG)
    assert permit.allowed and permit.probe and probing is not None and probing.state == "half_open"
    other, _ = decide(probing, 105.5, CONFIG)
    assert not other.allowed  # the probe is in flight
    lost_probe, _ = decide(probing, 107.5, CONFIG)
    assert lost_probe.allowed and lost_probe.probe  # the first probe never reported back


def test_probe_verdicts() -> None:
    probing = BreakerState("half_open", opened_at=100, probe_until=110)
    assert after_success(probing, probe=True) == BreakerState()
    assert after_failure(probing, 106, CONFIG) == BreakerState("open", opened_at=106)
    assert after_success(BreakerState(), probe=False) is None  # a healthy success writes nothing


@pytest.mark.integration
async def test_two_replicas_share_one_breaker(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    config = BreakerConfig(failure_threshold=2, window_s=30, open_s=0.2, probe_timeout_s=5)
    replica_a, replica_b = BreakerBoard(redis, config), BreakerBoard(redis, config)
    try:
        for board in (replica_a, replica_b):  # one failure seen by each replica
            permit = await board.acquire("up")
            await board.record("up", permit, ok=False)
        assert not (await replica_a.acquire("up")).allowed
        assert not (await replica_b.acquire("up")).allowed
        await asyncio.sleep(0.25)  # open_s
        probe = await replica_a.acquire("up")
        assert probe.allowed and probe.probe
        assert not (await replica_b.acquire("up")).allowed  # only one probe across replicas
        await replica_a.record("up", probe, ok=True)
        assert await replica_b.state_of("up") == "closed"
        assert (await replica_b.acquire("up")).allowed
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # the stubs predate redis 5


async def test_a_board_without_redis_keeps_local_state() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    board = BreakerBoard(redis, CONFIG)
    try:
        for _ in range(3):
            permit = await board.acquire("up")
            assert permit.allowed
            await board.record("up", permit, ok=False)
        assert not (await board.acquire("up")).allowed
        assert await board.state_of("up") == "open"
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # the stubs predate redis 5


def test_a_probe_without_verdict_is_released() -> None:
    probing = BreakerState("half_open", opened_at=100, probe_until=110)
    released = release_probe(probing)
    assert released is not None
    permit, _ = decide(released, 105, CONFIG)
    assert permit.allowed and permit.probe
    assert release_probe(BreakerState()) is None
