"""Concurrent uploads per API key, bounded across every gateway replica.

An upload holds memory, a connection and a downstream stream for as long as the client takes to
send it, so one key sending many at once can starve everyone; a rate limit does not catch that
(a few slow uploads are a low rate). Each upload in progress is a member of a sorted set per key
in the cache Redis, scored by its start; a member older than ``stale_after_s`` (a replica that
died mid-upload) no longer counts. Check and add are one Lua script, so replicas agree.

Redis unreachable: the limit is held per replica (in process), as the rate limiter fails open
to a local one — a Redis outage loosens it, never refuses every upload.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.errors import RateLimited

log = logging.getLogger("ragfleet.gateway.uploads")

# KEYS[1]: the key's set. ARGV: member, limit, stale_after_ms. Returns 1 when the slot is taken.
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale_after = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale_after)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], stale_after)
return 1
"""

# Uploads take seconds: a client told to come back in 2 s finds a slot free more often than not.
RETRY_AFTER_S = 2


class UploadSlots:
    def __init__(self, redis: Redis, limit: int, stale_after_s: float) -> None:
        self.redis = redis
        self.limit = limit
        self.stale_after_ms = int(stale_after_s * 1000)
        self._acquire = redis.register_script(ACQUIRE_SCRIPT)
        self._local: dict[str, int] = {}  # per-replica counts, used while Redis is unreachable

    @staticmethod
    def _key(key_id: str) -> str:
        return f"gw:uploads:{key_id}"

    def _refused(self) -> RateLimited:
        return RateLimited(
            f"this API key already has {self.limit} uploads in progress; the limit is {self.limit} "
            "(max_concurrent_uploads_per_key): wait for one to finish",
            code="too_many_concurrent_uploads",
            details={"limit": "max_concurrent_uploads_per_key", "max": self.limit},
            retry_after_s=RETRY_AFTER_S,
        )

    @asynccontextmanager
    async def hold(self, key_id: str) -> AsyncIterator[None]:
        """One upload slot of the key for the duration of the block, or `RateLimited` (429)."""
        member = uuid.uuid4().hex
        try:
            taken = bool(
                await self._acquire(keys=[self._key(key_id)], args=[member, self.limit, self.stale_after_ms])
            )
            shared = True
        except RedisError as exc:
            log.warning("upload slots: Redis unavailable, limiting per replica: %s", exc)
            taken, shared = self._local.get(key_id, 0) < self.limit, False
        if not taken:
            raise self._refused()
        if not shared:
            self._local[key_id] = self._local.get(key_id, 0) + 1
        try:
            yield
        finally:
            if shared:
                try:
                    await self.redis.zrem(self._key(key_id), member)
                except RedisError as exc:  # the member expires after stale_after_s anyway
                    log.warning("upload slots: cannot release a slot: %s", exc)
            else:
                self._local[key_id] -= 1
                if not self._local[key_id]:
                    del self._local[key_id]
