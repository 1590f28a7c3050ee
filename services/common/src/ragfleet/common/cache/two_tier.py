"""The two-tier cache of one service process: L1 + L2, collection versions, cross-replica invalidation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.cache.codecs import JSON_CODEC, Codec
from ragfleet.common.cache.keys import INVALIDATION_CHANNEL, version_key
from ragfleet.common.cache.lru import LruTtl
from ragfleet.common.cache.namespace import CacheNamespace, CacheResult
from ragfleet.common.cache.stats import CACHE_ERRORS, CACHE_INVALIDATIONS

log = logging.getLogger("ragfleet.cache")

T = TypeVar("T")


@dataclass(frozen=True)
class CacheConfig:
    l1_max_entries: int = 10_000
    l1_ttl_s: float = 60.0
    l2_ttl_s: float = 300.0
    compress_min_bytes: int = 1024
    ack_timeout_s: float = 2.0
    # While this replica cannot hear invalidations, nothing in L1 lives longer than this.
    degraded_l1_ttl_s: float = 2.0
    # After a Redis error, skip Redis for this long instead of paying a timeout on every request.
    redis_retry_after_s: float = 1.0


@dataclass(frozen=True)
class BumpResult:
    version: int | None  # None: Redis was down; the bump is replayed when it returns
    replicas: int  # replicas subscribed when the invalidation was published
    acked: int  # of those, how many confirmed their L1 purge in time


class TwoTierCache:
    """L1 + L2 for one service process, with collection versions and cross-replica invalidation.

    Create it in the app's lifespan, ``await start()`` (subscribes to invalidations), take one
    ``namespace(kind, codec)`` per kind of value, and ``await close()`` at shutdown.
    """

    FAILED: ClassVar[Any] = object()  # what _redis_call returns when Redis did not answer

    def __init__(
        self,
        redis: Redis,
        *,
        service: str,
        config: CacheConfig | None = None,
        replica: str | None = None,
        versions: Redis | None = None,
    ) -> None:
        self.redis = redis
        # Collection versions belong on a Redis that never evicts (the state Redis): were one
        # evicted, the version would restart at 0 and entries cached at an old 0 would be served.
        self.versions = versions or redis
        self.service = service
        self.config = config or CacheConfig()
        self.replica = replica or f"{service}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.l1: LruTtl[Any] = LruTtl(self.config.l1_max_entries, self.config.l1_ttl_s)
        self._versions: dict[tuple[str, str], int] = {}
        self._inflight: dict[str, asyncio.Future[tuple[Any, CacheResult]]] = {}
        self._pending_bumps: set[tuple[str, str]] = set()
        self._redis_ok_at = 0.0  # monotonic time from which Redis is tried again
        self._listener: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.listening = False
        self._ever_listened = False
        self._closing = False
        self._handlers: dict[str, Callable[[bytes], None]] = {}

    @overload
    def namespace(self, kind: str, *, edge: bool = False) -> CacheNamespace[Any]: ...

    @overload
    def namespace(self, kind: str, codec: Codec[T], *, edge: bool = False) -> CacheNamespace[T]: ...

    def namespace(
        self, kind: str, codec: Codec[Any] = JSON_CODEC, *, edge: bool = False
    ) -> CacheNamespace[Any]:
        """One kind of value (``search``, ``embedding``); JSON unless a codec is given.

        ``edge=True``: L1 only, in front of the service that owns the value (see CacheNamespace).
        """
        return CacheNamespace(self, kind, codec, edge=edge)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, wait_s: float = 2.0) -> None:
        """Start the invalidation listener; wait briefly for it, but start even if Redis is down."""
        self._listener = asyncio.create_task(self._listen_forever(), name="ragfleet-cache-invalidations")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), wait_s)

    async def close(self) -> None:
        self._closing = True
        for task in (self._listener, self._replay):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- other replica-to-replica messages --------------------------------------------------------

    def on_message(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Hand every message published on ``channel`` (by any replica, this one included) to
        ``handler``, on the invalidation listener's connection. Register before ``start()``."""
        self._handlers[channel] = handler

    async def publish(self, channel: str, payload: bytes) -> None:
        """Best effort, like every L2 write: a message lost while Redis is away is not retried."""
        await self._redis_call("publish", self.redis.publish, channel, payload)

    # -- versions and invalidation --------------------------------------------------------------

    async def collection_version(self, tenant: str, collection: str) -> int:
        """The collection's version: from Redis, else the last one seen here (0 if never seen)."""
        raw = await self._redis_call("version", self.versions.get, version_key(tenant, collection))
        scope = (tenant, collection)
        if raw is not self.FAILED:
            version = 0 if raw is None else int(raw)
            if version != self._versions.get(scope, version):
                self.l1.purge_scope(scope)
            self._versions[scope] = version
            return version
        return self._versions.get(scope, 0)

    async def current_version(self, tenant: str, collection: str) -> int:
        """The version cache keys are built with right now (what ``get_or_compute`` uses)."""
        version = self._versions.get((tenant, collection)) if self.listening else None
        return version if version is not None else await self.collection_version(tenant, collection)

    async def bump_version(self, tenant: str, collection: str) -> BumpResult:
        """Call after every write to a collection: new version, and every replica's L1 purged.

        Returns once every replica subscribed to invalidations acknowledged its purge, or after
        ``ack_timeout_s``. With Redis down the local L1 is purged and the bump is replayed when
        Redis returns; other replicas are then on their short degraded TTL.
        """
        scope = (tenant, collection)
        self.l1.purge_scope(scope)
        try:
            return await self._publish_bump(scope)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed("bump", exc)
            self._pending_bumps.add(scope)
            CACHE_INVALIDATIONS.labels("deferred").inc()
            return BumpResult(version=None, replicas=0, acked=0)

    async def _publish_bump(self, scope: tuple[str, str]) -> BumpResult:
        tenant, collection = scope
        version = int(await self.versions.incr(version_key(tenant, collection)))
        self._versions[scope] = max(version, self._versions.get(scope, 0))
        ack_key = f"ragfleet:cache:ack:{uuid.uuid4().hex}"
        message = orjson.dumps(
            {"tenant": tenant, "collection": collection, "version": version, "ack": ack_key}
        )
        replicas = int(await self.redis.publish(INVALIDATION_CHANNEL, message))
        acked = await self._await_acks(ack_key, replicas)
        outcome = "acked" if acked >= replicas else "partial"
        CACHE_INVALIDATIONS.labels(outcome).inc()
        if outcome == "partial":
            log.warning(
                "not every replica acknowledged the cache purge in time",
                extra={"tenant": tenant, "collection": collection, "replicas": replicas, "acked": acked},
            )
        return BumpResult(version=version, replicas=replicas, acked=acked)

    async def _await_acks(self, ack_key: str, replicas: int) -> int:
        acked = 0
        deadline = time.monotonic() + self.config.ack_timeout_s
        # Short BLPOPs: each stays under the client's socket timeout.
        step = max(0.01, min(0.5, self.config.ack_timeout_s))
        while acked < replicas:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if await self.redis.blpop([ack_key], timeout=min(step, remaining)) is not None:
                acked += 1
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(ack_key)
        return acked

    async def _on_invalidation(self, data: bytes) -> None:
        message = orjson.loads(data)
        scope = (message["tenant"], message["collection"])
        self._versions[scope] = max(int(message["version"]), self._versions.get(scope, 0))
        self.l1.purge_scope(scope)
        await self.redis.rpush(message["ack"], self.replica)
        await self.redis.pexpire(message["ack"], int(self.config.ack_timeout_s * 1000) + 5000)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while not self._closing:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL, *self._handlers)
                await self._on_listening()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_listener_lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5

    async def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        try:
            if channel == INVALIDATION_CHANNEL:
                await self._on_invalidation(message["data"])
            else:
                self._handlers[channel](message["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed message on %s", channel)

    async def _on_listening(self) -> None:
        if self._ever_listened:
            # We may have missed invalidations while away: nothing remembered can be trusted.
            self.l1.clear()
            self._versions.clear()
            log.info("cache invalidations reconnected; L1 and versions dropped")
        self._ever_listened = True
        self.listening = True
        self._redis_ok_at = 0.0
        self._subscribed.set()
        if self._pending_bumps:
            # In a task of its own: the bump waits for acks, one of which is this listener's.
            self._replay = asyncio.create_task(self._replay_pending_bumps())

    async def _replay_pending_bumps(self) -> None:
        while self._pending_bumps:
            scope = self._pending_bumps.pop()
            try:
                await self._publish_bump(scope)
            except (RedisError, OSError, TimeoutError) as exc:
                self._pending_bumps.add(scope)
                self._redis_failed("bump", exc)
                return
        log.info("replayed the collection version bumps made while Redis was down")

    def _on_listener_lost(self, exc: BaseException) -> None:
        if self.listening:
            log.warning("cache invalidations lost; L1 on a short TTL until Redis returns: %s", exc)
            self.l1.cap_ttl(self.config.degraded_l1_ttl_s)
        self.listening = False
        self._subscribed.clear()
        CACHE_ERRORS.labels(self.service, "subscribe").inc()

    # -- internals ---------------------------------------------------------------------------------

    def _l1_set(self, key: str, value: Any, scope: tuple[str, str]) -> None:
        ttl = None if self.listening else min(self.config.l1_ttl_s, self.config.degraded_l1_ttl_s)
        self.l1.set(key, value, scope, ttl)

    async def _single_flight(
        self, key: str, fill: Callable[[], Awaitable[tuple[T, CacheResult]]]
    ) -> tuple[T, CacheResult]:
        """The first caller for a key computes; concurrent callers for that key await its result."""
        pending = self._inflight.get(key)
        if pending is not None:
            value, first = await asyncio.shield(pending)
            # A follower was a miss too; it just did not pay for it twice. A value the first
            # caller was told not to store is marked so for its followers too.
            return value, "uncached" if first == "uncached" else "miss"
        future: asyncio.Future[tuple[Any, CacheResult]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await fill()
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody may be waiting; retrieving the exception keeps asyncio from logging it.
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _redis_call(
        self, operation: str, call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """A Redis command that may fail: errors are counted and logged once, the caller gets FAILED."""
        if self._redis_ok_at > time.monotonic():
            return self.FAILED
        # A stale pooled connection after a Redis restart is retried by the client itself
        # (ragfleet.common.clients.create_redis), so a failure here means Redis is really away.
        try:
            return await call(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(operation, exc)
            return self.FAILED

    def _redis_failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(self.service, operation).inc()
        if self._redis_ok_at <= time.monotonic():
            log.warning("cache: Redis %s failed, serving without L2 for a while: %s", operation, exc)
        self._redis_ok_at = time.monotonic() + self.config.redis_retry_after_s
