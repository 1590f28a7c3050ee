"""Per-key rate limits: GCRA in one Lua script, so every replica shares one bucket per key.

GCRA keeps one number per key (the "theoretical arrival time"), is exact, and the script makes
check-and-update atomic. The clock is Redis's own (``TIME``), so replicas with skewed clocks agree.

If Redis is unreachable the gateway fails *open* onto an in-process limiter with the same
parameters: a Redis outage then loosens the limit to "per replica" instead of refusing all
traffic (the limiter protects capacity; it is not a billing record).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("ragfleet.gateway.ratelimit")

# KEYS[1]: the key's bucket. ARGV[1]: emission interval in µs. ARGV[2]: burst. ARGV[3]: requests
# wanted (a lease, see RateLimiter). Grants as many as the bucket holds, up to the number wanted.
# Returns {granted (0 = refused), µs until a request would be allowed, requests left in the burst}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local available = math.floor((now + tolerance - tat) / interval)
if available < 1 then
  return {0, math.ceil(tat + interval - tolerance - now), 0}
end
local granted = math.min(tonumber(ARGV[3]), available)
local new_tat = tat + interval * granted
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {granted, 0, available - granted}
"""

# A key allowed many requests a second would cost a Redis round trip per request — the largest
# share of a cached search's CPU. So a replica takes a *lease* of up to this many seconds' worth
# of the key's rate from the shared bucket and spends it locally. The tokens are taken before
# they are spent, so the limit is never exceeded; a lease unused after LEASE_TTL_S is dropped
# (those tokens are lost, which can only make the limit stricter). Keys whose lease would be one
# request — every ordinary key — are checked in Redis on every request, exactly as before.
LEASE_WINDOW_S = 0.05
LEASE_TTL_S = 1.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float
    remaining: int
    shared: bool  # False when decided by the local fallback


class LocalGcra:
    """The same algorithm in process memory: the fallback while Redis is unreachable."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.tats: dict[str, float] = {}
        self.max_keys = max_keys

    def check(self, bucket: str, rate_per_s: float, burst: int) -> Decision:
        now = time.monotonic()
        interval = 1.0 / rate_per_s
        tat = max(self.tats.get(bucket, now), now)
        new_tat = tat + interval
        allow_at = new_tat - interval * burst
        if allow_at > now:
            return Decision(False, allow_at - now, 0, shared=False)
        if len(self.tats) >= self.max_keys:
            self.tats.clear()  # bounded memory beats precision during an outage
        self.tats[bucket] = new_tat
        return Decision(True, 0.0, math.floor((now - allow_at) / interval), shared=False)


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.script = redis.register_script(GCRA_SCRIPT)
        self.local = LocalGcra()
        self.redis_failures = 0
        # bucket -> [tokens left, monotonic expiry]
        self.leases: dict[str, list[float]] = {}
        # bucket -> the lease being taken from Redis now (see check)
        self.refills: dict[str, asyncio.Future[tuple[Decision, bool]]] = {}

    async def check(self, key_id: str, rate_per_s: float, burst: int) -> Decision:
        bucket = f"gw:ratelimit:{key_id}"
        wanted = max(1, min(burst // 4, math.floor(rate_per_s * LEASE_WINDOW_S)))
        if wanted == 1:
            decision, _ = await self._take(bucket, rate_per_s, burst, 1)
            return decision
        # One lease taken at a time per bucket: when a lease runs out under load, the requests in
        # flight wait for the one refill instead of each taking a lease of its own — each of those
        # overwrote the last, so the tokens of all but one were lost and a busy key ran its
        # bucket dry (429s well under its limit), at a Redis round trip per request.
        while True:
            lease = self.leases.get(bucket)
            if lease is not None and lease[0] >= 1 and lease[1] > time.monotonic():
                lease[0] -= 1
                return Decision(True, 0.0, int(lease[0]), shared=True)
            refill = self.refills.get(bucket)
            if refill is None:
                break
            decision, leased = await asyncio.shield(refill)
            if not decision.allowed:
                return decision  # the shared bucket is empty for every waiter alike
            if not decision.shared:
                return self.local.check(bucket, rate_per_s, burst)  # Redis is down: each on its own
            if not leased:
                continue  # the refill got one token and spent it: take the next lease
        refill = self.refills[bucket] = asyncio.ensure_future(self._take(bucket, rate_per_s, burst, wanted))
        refill.add_done_callback(lambda _: self.refills.pop(bucket, None))
        decision, _ = await asyncio.shield(refill)
        return decision

    async def _take(self, bucket: str, rate_per_s: float, burst: int, wanted: int) -> tuple[Decision, bool]:
        """Up to ``wanted`` tokens from the shared bucket: one for the caller, the rest leased here."""
        interval_us = max(1, round(1_000_000 / rate_per_s))
        try:
            granted, wait_us, remaining = await self.script(keys=[bucket], args=[interval_us, burst, wanted])
        except (RedisError, OSError) as exc:
            self.redis_failures += 1
            if self.redis_failures == 1 or self.redis_failures % 1000 == 0:
                log.warning(
                    "rate limiter falling back to the local limiter: %s",
                    exc,
                    extra={"failures": self.redis_failures},
                )
            return self.local.check(bucket, rate_per_s, burst), False
        if granted > 1:
            if len(self.leases) >= 100_000:
                self.leases.clear()
            self.leases[bucket] = [granted - 1, time.monotonic() + LEASE_TTL_S]
        return Decision(granted > 0, int(wait_us) / 1_000_000, int(remaining), shared=True), granted > 1
