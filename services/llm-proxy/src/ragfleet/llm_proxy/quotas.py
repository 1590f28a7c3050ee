"""Who is calling, how much they may call, and what they used: per-key limits and token accounting in Redis.

Limits are sliding-window counters (this minute's count plus the previous minute's, weighted by how
much of it still falls in the last 60 s), checked and incremented atomically by one Lua script, so
they hold across replicas. Tokens are only known once a response is done, so the tokens-per-minute
limit refuses new requests once the key's budget is spent rather than predicting a request's cost;
usage is batched in memory and flushed to Redis every ``usage_flush_interval_s``.
Redis being down never fails a request: limits are then not enforced, and the errors are counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ragfleet.common.contracts import KEY_ID_HEADER, NAME_PATTERN, TENANT_HEADER, is_valid_name
from ragfleet.common.errors import BadRequest, RateLimited, error_response
from ragfleet.llm_proxy import metrics
from ragfleet.llm_proxy.config import KeyLimits

log = logging.getLogger("ragfleet.llm_proxy.quotas")

WINDOW_S = 60
MAX_PENDING_KEYS = 100_000  # usage kept in memory while Redis is away, at most

# KEYS: requests this window, requests last window, tokens this window, tokens last window.
# ARGV: rpm, tpm, weight of the last window, ttl. Returns {allowed, limit that refused}.
_CHECK_AND_COUNT = """
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0') + weight * tonumber(redis.call('GET', KEYS[4]) or '0')
  if used >= tpm then return {0, 'tpm'} end
end
if rpm > 0 then
  local count = tonumber(redis.call('GET', KEYS[1]) or '0') + weight * tonumber(redis.call('GET', KEYS[2]) or '0')
  if count + 1 > rpm then return {0, 'rpm'} end
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, ''}
"""


@dataclass(frozen=True)
class Caller:
    """``key`` is what limits and usage are counted against; ``tenant`` scopes the cache."""

    key: str
    tenant: str


def identify(headers: Mapping[str, str]) -> Caller:
    """The gateway passes ``X-Ragfleet-Key-Id`` and ``X-Ragfleet-Tenant``; direct callers send a bearer key."""
    tenant = headers.get(TENANT_HEADER.lower()) or "default"
    if not is_valid_name(tenant):
        raise BadRequest(f"{TENANT_HEADER} {tenant!r} is not a valid tenant id ({NAME_PATTERN})")
    key_id = headers.get(KEY_ID_HEADER.lower())
    if key_id:
        return Caller(f"key:{key_id[:128]}", tenant)
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        # Never store a secret: the key is known by a digest of it.
        return Caller("bearer:" + hashlib.sha256(token.strip().encode()).hexdigest()[:24], tenant)
    return Caller(f"tenant:{tenant}", tenant)


class Limiter:
    def __init__(self, redis: Redis, *, retention_days: int, prefix: str = "llm-proxy") -> None:
        self.redis = redis
        self.retention_s = retention_days * 86400
        self.prefix = prefix
        self._check = redis.register_script(_CHECK_AND_COUNT)
        self._pending: dict[tuple[str, str], list[int]] = {}  # (key, model) -> requests, prompt, completion

    def _window_keys(self, key: str, now: float) -> tuple[list[str], float]:
        window = int(now // WINDOW_S)
        weight = 1.0 - (now % WINDOW_S) / WINDOW_S
        base = f"{self.prefix}:rl:{key}"
        keys = [
            f"{base}:req:{window}",
            f"{base}:req:{window - 1}",
            f"{base}:tok:{window}",
            f"{base}:tok:{window - 1}",
        ]
        return keys, weight

    async def admit(self, caller: Caller, limits: KeyLimits) -> None:
        """Count the request, or refuse it with 429 and a ``Retry-After``."""
        if not limits.rpm and not limits.tpm:
            return
        now = time.time()
        keys, weight = self._window_keys(caller.key, now)
        try:
            allowed, limit = await self._check(keys=keys, args=[limits.rpm, limits.tpm, weight, WINDOW_S * 2])
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("limits").inc()
            log.warning("rate limits not enforced, Redis unavailable: %s", exc)
            return
        if not allowed:
            limit_name = limit.decode() if isinstance(limit, bytes) else str(limit)
            metrics.RATE_LIMITED.labels(limit_name).inc()
            budget = limits.rpm if limit_name == "rpm" else limits.tpm
            unit = "requests" if limit_name == "rpm" else "tokens"
            raise RateLimited(
                f"key {caller.key!r} exceeded its limit of {budget} {unit} per minute",
                retry_after_s=WINDOW_S - now % WINDOW_S,
                details={"limit": limit_name, "per_minute": budget},
            )

    def record(self, caller: Caller, model: str, usage: Mapping[str, Any] | None) -> None:
        """Count a response's tokens; they reach Redis with the next flush (every ``flush_interval_s``).

        Batching turns one Redis round trip per request into one per interval for all of them,
        which under load is most of the proxy's Redis traffic. A crash loses at most one interval.
        """
        prompt = int((usage or {}).get("prompt_tokens") or 0)
        completion = int((usage or {}).get("completion_tokens") or 0)
        metrics.TOKENS.labels(model, "prompt").inc(prompt)
        metrics.TOKENS.labels(model, "completion").inc(completion)
        counts = self._pending.setdefault((caller.key, model), [0, 0, 0])
        counts[0] += 1
        counts[1] += prompt
        counts[2] += completion

    async def flush(self) -> None:
        """Write the counted usage: the keys' minute token budgets and their daily usage per model."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        now = time.time()
        day = dt.datetime.fromtimestamp(now, dt.UTC).date()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (key, model), (requests, prompt, completion) in pending.items():
                    tokens_key = self._window_keys(key, now)[0][2]
                    pipe.incrby(tokens_key, prompt + completion)
                    pipe.expire(tokens_key, WINDOW_S * 2)
                    day_key = self._usage_key(key, day)
                    pipe.hincrby(day_key, f"{model}:requests", requests)
                    pipe.hincrby(day_key, f"{model}:prompt_tokens", prompt)
                    pipe.hincrby(day_key, f"{model}:completion_tokens", completion)
                    pipe.expire(day_key, self.retention_s)
                await pipe.execute()
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels("accounting").inc()
            log.warning("token accounting postponed, Redis unavailable: %s", exc)
            if len(self._pending) < MAX_PENDING_KEYS:  # keep it for the next flush, within bounds
                for slot, counts in pending.items():
                    merged = self._pending.setdefault(slot, [0, 0, 0])
                    for index, value in enumerate(counts):
                        merged[index] += value

    async def run(self, interval_s: float) -> None:
        """Flush every ``interval_s`` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    def _usage_key(self, key: str, day: dt.date) -> str:
        return f"{self.prefix}:usage:{day.isoformat()}:{key}"

    async def usage(self, caller: Caller, day: dt.date) -> dict[str, dict[str, int]]:
        raw = await self.redis.hgetall(self._usage_key(caller.key, day))
        per_model: dict[str, dict[str, int]] = {}
        for field_name, value in raw.items():
            model, _, counter = field_name.decode().rpartition(":")
            per_model.setdefault(model, {})[counter] = int(value)
        return per_model


CONCURRENCY_LIMITED_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


class ConcurrencyLimit:
    """At most ``max_per_key`` generations of one caller at a time in this process, streams included.

    Pure ASGI around the whole request, so a stream counts until its last chunk is sent (or its
    client leaves). Per process on purpose: it costs no Redis round trip on the hot path; a pod's
    bound is its workers times this, the platform's that times the replicas. A caller over it gets
    429 at once (``Retry-After: 1``) rather than a queue: one key's burst cannot hold every slot
    of the upstream while the others wait.
    """

    def __init__(self, app: ASGIApp, *, max_per_key: int) -> None:
        self.app = app
        self.max_per_key = max_per_key
        self.in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CONCURRENCY_LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            key = identify(Headers(scope=scope)).key
        except BadRequest:  # the route answers it, with the same message
            await self.app(scope, receive, send)
            return
        running = self.in_flight.get(key, 0)
        if running >= self.max_per_key:
            metrics.RATE_LIMITED.labels("concurrency").inc()
            refused = error_response(
                429,
                "too_many_concurrent_requests",
                f"{key!r} already has {running} generations running, the most allowed at once "
                f"(max_concurrent_per_key); retry when one ends",
                details={"limit": "concurrency", "max_concurrent": self.max_per_key},
                headers={"Retry-After": "1"},
            )
            await refused(scope, receive, send)
            return
        self.in_flight[key] = running + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.in_flight[key] - 1
            if left:
                self.in_flight[key] = left
            else:
                del self.in_flight[key]
