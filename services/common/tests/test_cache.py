"""The two-tier cache against a real Redis; two cache instances stand for two replicas."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from ragfleet.common.cache import (
    BYTES_CODEC,
    CacheConfig,
    LruTtl,
    TwoTierCache,
    Uncached,
    cache_stats,
    normalise_text,
    pack,
    request_hash,
    unpack,
    version_key,
)
from ragfleet.common.clients import create_redis
from ragfleet.common.config import ServiceSettings
from ragfleet.testkit.pytest_plugin import RedisServer

_kinds = itertools.count()


def fresh_kind() -> str:
    """Metrics are process-wide; a kind per test keeps each test's stats its own."""
    return f"kind{next(_kinds)}"


class Counting:
    """A compute function that counts its calls and returns a new value each time."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    def __call__(self, value: Any = None) -> Callable[[], Awaitable[Any]]:
        async def compute() -> Any:
            self.calls += 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return value if value is not None else {"n": self.calls}

        return compute


def make_cache(url: str, **config: Any) -> tuple[TwoTierCache, Redis]:
    redis = create_redis(
        ServiceSettings(redis_url=url, redis_socket_timeout_s=0.5, redis_connect_timeout_s=0.5), "cache"
    )
    defaults: dict[str, Any] = {"redis_retry_after_s": 0.05, "ack_timeout_s": 2.0}
    return TwoTierCache(redis, service="test", config=CacheConfig(**{**defaults, **config})), redis


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[TwoTierCache, TwoTierCache]]:
    a, redis_a = make_cache(redis_url)
    b, redis_b = make_cache(redis_url)
    await a.start()
    await b.start()
    yield a, b
    for cache, redis in ((a, redis_a), (b, redis_b)):
        await cache.close()
        await redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state the cache has no event for
            await asyncio.sleep(0.02)


def test_normalisation_and_hash() -> None:
    assert normalise_text("  What IS\tRAG?\n") == "what is rag?"
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_pack_compresses_only_large_values() -> None:
    small = b"x" * 10
    large = b"retrieval " * 500
    assert pack(small, 1024)[:1] == b"\x00"
    assert pack(large, 1024)[:1] == b"\x01"
    assert len(pack(large, 1024)) < len(large) / 10
    assert unpack(pack(small, 1024)) == small
    assert unpack(pack(large, 1024)) == large


def test_lru_evicts_oldest_and_expires() -> None:
    lru: LruTtl[int] = LruTtl(max_entries=2, ttl_s=60)
    lru.set("a", 1, ("t", "c"))
    lru.set("b", 2, ("t", "c"))
    assert lru.get("a") == 1  # "a" is now the most recently used
    lru.set("c", 3, ("t", "other"))
    assert lru.get("b") is None
    assert lru.purge_scope(("t", "c")) == 1
    assert lru.get("a") is None and lru.get("c") == 3
    expired: LruTtl[int] = LruTtl(max_entries=10, ttl_s=0)
    expired.set("a", 1, ("t", "c"))
    assert expired.get("a") is None


@pytest.mark.integration  # a real redis-server
async def test_l1_then_l2_then_compute(replicas: tuple[TwoTierCache, TwoTierCache]) -> None:
    a, b = replicas
    kind = fresh_kind()
    compute = Counting()
    request = {"query": normalise_text("Hello  World"), "top_k": 3}
    assert await a.namespace(kind).get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "miss")
    assert await a.namespace(kind).get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "hit-l1")
    # The other replica finds it in Redis, then in its own L1.
    assert await b.namespace(kind).get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "hit-l2")
    assert await b.namespace(kind).get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "hit-l1")
    assert compute.calls == 1
    stats = cache_stats()[kind]
    assert stats["requests"] == 4
    assert stats["l1"] == {"hits": 2, "misses": 2, "hit_rate": 0.5}
    assert stats["l2"]["hits"] == 1 and stats["l2"]["misses"] == 1
    assert stats["hit_rate"] == 0.75


@pytest.mark.integration  # a real redis-server
async def test_large_values_are_compressed_in_redis(
    replicas: tuple[TwoTierCache, TwoTierCache], redis_url: str
) -> None:
    a, b = replicas
    value = {"results": [{"text": "a fairly long passage of text " * 20, "score": 0.5}] * 10}
    ns_a = a.namespace("big")
    await ns_a.get_or_compute("t1", "docs", {"q": "big"}, Counting()(value))
    raw = await a.redis.get(await ns_a.key("t1", "docs", {"q": "big"}))
    assert raw is not None and raw[:1] == b"\x01"
    assert await b.namespace("big").get_or_compute("t1", "docs", {"q": "big"}, Counting()()) == (
        value,
        "hit-l2",
    )
    vector = bytes(range(256)) * 6
    got, _ = await a.namespace("vec", BYTES_CODEC).get_or_compute("t1", None, "text", Counting()(vector))
    assert got == vector
    assert await b.namespace("vec", BYTES_CODEC).get_or_compute("t1", None, "text", Counting()()) == (
        vector,
        "hit-l2",
    )


@pytest.mark.integration  # a real redis-server
async def test_bump_purges_every_replica_before_returning(
    replicas: tuple[TwoTierCache, TwoTierCache],
) -> None:
    a, b = replicas
    kind = fresh_kind()
    compute = Counting()
    request = {"query": "q"}
    await a.namespace(kind).get_or_compute("t1", "docs", request, compute())
    await b.namespace(kind).get_or_compute("t1", "docs", request, compute())
    await a.namespace(kind).get_or_compute("t1", "other", request, compute())
    assert len(b.l1) == 1 and len(a.l1) == 2

    result = await a.bump_version("t1", "docs")

    assert (result.version, result.replicas, result.acked) == (1, 2, 2)
    # No waiting: by the time the bump returned, replica B had dropped its L1 for t1/docs.
    assert len(b.l1) == 0
    assert len(a.l1) == 1  # t1/other is untouched
    value, tier = await b.namespace(kind).get_or_compute("t1", "docs", request, compute())
    assert tier == "miss" and value == {"n": compute.calls}
    assert await a.namespace(kind).get_or_compute("t1", "other", request, compute()) == ({"n": 2}, "hit-l1")


@pytest.mark.integration  # a real redis-server
async def test_single_flight(replicas: tuple[TwoTierCache, TwoTierCache]) -> None:
    a, _ = replicas
    compute = Counting(delay_s=0.05)
    ns = a.namespace(fresh_kind())
    results = await asyncio.gather(
        *(ns.get_or_compute("t1", "docs", {"q": "same"}, compute()) for _ in range(20))
    )
    assert compute.calls == 1
    assert {value["n"] for value, _ in results} == {1}
    assert [tier for _, tier in results].count("miss") == 20


@pytest.mark.integration  # a real redis-server
async def test_single_flight_shares_failures(replicas: tuple[TwoTierCache, TwoTierCache]) -> None:
    a, _ = replicas
    ns = a.namespace(fresh_kind())

    async def fail() -> Any:
        await asyncio.sleep(0.02)
        raise RuntimeError("backend down")

    results = await asyncio.gather(
        *(ns.get_or_compute("t1", "docs", {"q": "x"}, fail) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await ns.get_or_compute("t1", "docs", {"q": "x"}, Counting()()) == ({"n": 1}, "miss")


@pytest.mark.integration  # a real redis-server
async def test_an_uncached_value_is_answered_to_every_waiter_and_stored_in_no_tier(
    replicas: tuple[TwoTierCache, TwoTierCache],
) -> None:
    a, b = replicas
    kind = fresh_kind()
    calls = 0

    async def degraded() -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)  # the others arrive meanwhile and wait for this one
        raise Uncached({"degraded": calls})

    results = await asyncio.gather(
        *(a.namespace(kind).get_or_compute("t1", "docs", {"q": "x"}, degraded) for _ in range(5))
    )
    assert calls == 1
    assert results == [({"degraded": 1}, "uncached")] * 5
    # Kept in neither tier: this replica's L1 and Redis (the other replica) both compute anew.
    assert await a.namespace(kind).get_or_compute("t1", "docs", {"q": "x"}, Counting()()) == (
        {"n": 1},
        "miss",
    )
    assert await b.namespace(kind).get_or_compute("t1", "docs", {"q": "y"}, degraded) == (
        {"degraded": 2},
        "uncached",
    )
    assert await b.namespace(kind).get_or_compute("t1", "docs", {"q": "y"}, Counting()()) == (
        {"n": 1},
        "miss",
    )
    # Nor by the L1-only paths: an edge namespace, a value not shared.
    edge = b.namespace(fresh_kind(), edge=True)
    for namespace, shared in ((edge, True), (a.namespace(kind), False)):
        for _ in range(2):
            _, tier = await namespace.get_or_compute("t1", "docs", {"q": "z"}, degraded, shared=shared)
            assert tier == "uncached"
    assert calls == 6


@pytest.mark.integration  # a real redis-server
async def test_tenants_are_isolated(replicas: tuple[TwoTierCache, TwoTierCache]) -> None:
    a, _ = replicas
    ns = a.namespace(fresh_kind())
    compute = Counting()
    assert (await ns.get_or_compute("t1", "docs", {"q": "same"}, compute()))[1] == "miss"
    assert (await ns.get_or_compute("t2", "docs", {"q": "same"}, compute()))[1] == "miss"
    assert compute.calls == 2
    await a.bump_version("t1", "docs")
    assert await a.redis.get(version_key("t2", "docs")) is None
    assert await ns.get_or_compute("t2", "docs", {"q": "same"}, compute()) == ({"n": 2}, "hit-l1")


@pytest.mark.integration  # a real redis-server
async def test_redis_down_still_answers_and_recovers(
    replicas: tuple[TwoTierCache, TwoTierCache], redis_server: RedisServer
) -> None:
    a, b = replicas
    kind = fresh_kind()
    ns_a, ns_b = a.namespace(kind), b.namespace(kind)
    compute = Counting()
    await ns_a.get_or_compute("t1", "docs", {"q": "before"}, compute())

    redis_server.stop()
    try:
        await wait_for(lambda: not a.listening and not b.listening)
        # L1 still serves what it had, and misses are computed without Redis.
        assert (await ns_a.get_or_compute("t1", "docs", {"q": "before"}, compute()))[1] == "hit-l1"
        value, tier = await ns_a.get_or_compute("t1", "docs", {"q": "during"}, compute())
        assert tier == "miss" and value == {"n": 2}
        # A write while Redis is down purges locally and is replayed later.
        bumped = await a.bump_version("t1", "docs")
        assert bumped.version is None
        assert len(a.l1) == 0
        assert cache_stats()[kind]["l2"]["errors"] >= 1
    finally:
        redis_server.restart()

    await wait_for(lambda: a.listening and b.listening)
    await wait_for(lambda: not a._pending_bumps and a._replay is not None and a._replay.done())
    assert await a.redis.get(version_key("t1", "docs")) == b"1"
    # L2 works again: what one replica computes, the other reads from Redis.
    value, tier = await ns_a.get_or_compute("t1", "docs", {"q": "after"}, compute())
    assert tier == "miss"
    assert await ns_b.get_or_compute("t1", "docs", {"q": "after"}, compute()) == (value, "hit-l2")


@pytest.mark.integration  # a real redis-server
async def test_an_edge_namespace_is_l1_only_and_purged_by_the_owners_bumps(
    replicas: tuple[TwoTierCache, TwoTierCache],
) -> None:
    owner, gateway = replicas
    kind = fresh_kind()
    edge = gateway.namespace(kind, edge=True)
    compute = Counting()
    request = {"query": "q"}

    assert await edge.get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "miss")
    assert await edge.get_or_compute("t1", "docs", request, compute()) == ({"n": 1}, "hit-edge")
    assert await edge.get_or_compute("t2", "docs", request, compute()) == ({"n": 2}, "miss")
    # Nothing went to Redis: the owner keeps L2; the edge only remembers answers in memory.
    assert await gateway.redis.keys(f"test:{kind}:*") == []
    stats = cache_stats()[kind]
    assert stats["edge"] == {"hits": 1, "misses": 2, "hit_rate": round(1 / 3, 4)}
    assert stats["requests"] == 3 and "l2" not in stats

    # A write through the owner purges the edge before the write returns.
    result = await owner.bump_version("t1", "docs")
    assert result.acked == result.replicas == 2
    assert await edge.get_or_compute("t1", "docs", request, compute()) == ({"n": 3}, "miss")
    assert await edge.get_or_compute("t2", "docs", request, compute()) == ({"n": 2}, "hit-edge")
