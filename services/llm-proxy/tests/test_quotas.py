from __future__ import annotations

import datetime as dt

import pytest
from redis.asyncio import Redis

from ragfleet.common.errors import BadRequest, RateLimited
from ragfleet.llm_proxy.config import KeyLimits
from ragfleet.llm_proxy.quotas import Caller, Limiter, identify


def test_the_caller_is_the_key_id_then_the_bearer_key_then_the_tenant() -> None:
    assert identify({"x-ragfleet-key-id": "k1", "x-ragfleet-tenant": "acme"}) == Caller("key:k1", "acme")
    bearer = identify({"authorization": "Bearer sk-secret"})
    assert bearer.key.startswith("bearer:") and "sk-secret" not in bearer.key
    assert identify({}) == Caller("tenant:default", "default")
    with pytest.raises(BadRequest, match="tenant"):
        identify({"x-ragfleet-tenant": "Not A Tenant"})


@pytest.mark.integration
async def test_token_limit_holds_across_limiters(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    replica_a, replica_b = Limiter(redis, retention_days=1), Limiter(redis, retention_days=1)
    caller, limits = Caller("key:t", "default"), KeyLimits(tpm=100)
    try:
        await replica_a.admit(caller, limits)
        replica_a.record(caller, "m", {"prompt_tokens": 60, "completion_tokens": 50})
        await replica_b.admit(caller, limits)  # not flushed yet: the budget looks unspent
        await replica_a.flush()
        with pytest.raises(RateLimited) as refused:
            await replica_b.admit(caller, limits)
        assert refused.value.details == {"limit": "tpm", "per_minute": 100}
        assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
        assert await replica_a.usage(caller, _today()) == {
            "m": {"requests": 1, "prompt_tokens": 60, "completion_tokens": 50}
        }
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # the stubs predate redis 5


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
