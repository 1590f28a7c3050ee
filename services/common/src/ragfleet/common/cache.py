"""The two-tier cache: an in-process LRU (L1) in front of Redis (L2), shared by every service.

Read L1, then L2 (promoting a hit into L1), then compute once (single-flight) and fill both.

Keys are ``{service}:{kind}:{tenant}:{collection}:{collection_version}:{hash(normalised request)}``.
A collection's version lives in Redis and is bumped by every upsert or delete, so entries written
before a change are never read again. Each replica keeps the versions it has seen in memory (the
hit path makes no Redis round trip) and learns of bumps through one pub/sub channel, whose message
also purges the replica's L1 for that tenant and collection. The replica acknowledges the purge, and
``bump_version`` returns only once every subscribed replica has acknowledged (or a bounded timeout
passed), so "gone by the time the write returns" holds on every replica.

Redis is optional at run time: when it is down, lookups go L1 → compute, errors are counted, no
request fails, and L1 entries live at most ``degraded_l1_ttl_s`` because invalidations cannot reach
this replica any more. When the pub/sub listener reconnects it drops L1 and the remembered
versions (messages may have been missed) and replays the bumps made while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client import multiprocess as prometheus_multiprocess
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ragfleet.common.metrics import MULTIPROC_ENV

log = logging.getLogger("ragfleet.cache")

T = TypeVar("T")
CacheResult = Literal["hit-edge", "hit-l1", "hit-l2", "hit-semantic", "miss"]

INVALIDATION_CHANNEL = "ragfleet:cache:invalidate"
_UNVERSIONED = "-"
_FAILED: Any = object()  # what _redis_call returns when Redis did not answer

CACHE_REQUESTS = Counter(
    "ragfleet_cache_requests_total",
    "Cache lookups by cache name, tier (l1, l2) and result (hit, miss, error).",
    ["cache", "tier", "result"],
)
CACHE_ERRORS = Counter(
    "ragfleet_cache_redis_errors_total",
    "Redis operations of the cache that failed (the request was served anyway).",
    ["service", "operation"],
)
CACHE_INVALIDATIONS = Counter(
    "ragfleet_cache_invalidations_total",
    "Collection version bumps, by outcome (acked: every replica purged; partial: ack timeout; "
    "deferred: Redis was down, replayed when it returns).",
    ["outcome"],
)


def normalise_text(text: str) -> str:
    """Queries that differ only in case or whitespace share a cache entry.

    Case-folding is exact for what we cache: MiniLM's tokenizer lower-cases, and BM25 matches
    lower-cased terms.
    """
    return " ".join(text.split()).casefold()


def request_hash(request: Mapping[str, Any] | str) -> str:
    """A stable hash of a request: canonical JSON (sorted keys) through BLAKE2b-128."""
    payload = (
        request.encode() if isinstance(request, str) else orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    )
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def version_key(tenant: str, collection: str) -> str:
    """Shared by every service: one version per tenant's collection."""
    return f"ragfleet:version:{tenant}:{collection}"


class Codec(Protocol[T]):
    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class JsonCodec:
    """orjson: compact and the fastest JSON there is; numpy arrays become lists."""

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class BytesCodec:
    """For values the caller already serialised (e.g. a float32 vector's raw bytes)."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        return data


JSON_CODEC = JsonCodec()
BYTES_CODEC = BytesCodec()

_RAW = b"\x00"
_ZLIB = b"\x01"


def pack(data: bytes, compress_min_bytes: int) -> bytes:
    """One flag byte, then the payload: zlib level 1 (fast) when it is big enough to be worth it.

    An 8 KiB window and memLevel 4 (not zlib's 32 KiB and 8): cached values are a few KiB, and
    setting up the full-size state cost as much as compressing (110 µs vs 50 µs for an 8 KB
    search answer, measured here); the ratio is within 2 %. Any zlib reader decodes it.
    """
    if len(data) >= compress_min_bytes:
        packer = zlib.compressobj(1, zlib.DEFLATED, 13, 4)
        compressed = packer.compress(data) + packer.flush()
        if len(compressed) < len(data):
            return _ZLIB + compressed
    return _RAW + data


def unpack(blob: bytes) -> bytes:
    flag, body = blob[:1], blob[1:]
    if flag == _ZLIB:
        return zlib.decompress(body)
    if flag == _RAW:
        return body
    raise ValueError(f"unknown cache entry format {flag!r}")


class LruTtl(Generic[T]):
    """L1: an OrderedDict with a size bound and a TTL. No locks: it lives on one event loop.

    Entries are ``key -> (expires_at, value, scope)``; the scope (tenant, collection) lets an
    invalidation purge one collection. Purging scans the dict, which is fine: it happens once per
    write to a collection, while lookups happen thousands of times a second.
    """

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._data: OrderedDict[str, tuple[float, T, tuple[str, str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> T | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[1]

    def set(self, key: str, value: T, scope: tuple[str, str], ttl_s: float | None = None) -> None:
        if self.max_entries <= 0:
            return
        self._data[key] = (time.monotonic() + (self.ttl_s if ttl_s is None else ttl_s), value, scope)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def purge_scope(self, scope: tuple[str, str]) -> int:
        doomed = [key for key, entry in self._data.items() if entry[2] == scope]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    def cap_ttl(self, ttl_s: float) -> None:
        """Shorten every entry to at most ``ttl_s`` from now (when invalidations stop arriving)."""
        deadline = time.monotonic() + ttl_s
        for key, (expires_at, value, scope) in self._data.items():
            if expires_at > deadline:
                self._data[key] = (deadline, value, scope)

    def clear(self) -> None:
        self._data.clear()


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


class CacheNamespace(Generic[T]):
    """One kind of cached value (``search``, ``embedding``) in a ``TwoTierCache``, with its codec.

    The hit path is ``get_or_compute``: a version lookup in a dict, a key built with one f-string,
    an OrderedDict lookup and a counter increment.

    An *edge* namespace is L1 only, in a service that fronts the one owning the value (the
    gateway in front of retrieval): a hit there saves the whole hop, a miss asks the owner, whose
    own L1 and L2 answer it. Its lookups are counted as tier ``edge`` and its hits are ``hit-edge``,
    so the tiers add up: edge hits + L1 hits + L2 hits over edge lookups is the hit rate a client
    sees. It is invalidated like any L1, by the owner's version bumps.
    """

    def __init__(self, cache: TwoTierCache, kind: str, codec: Codec[T], *, edge: bool = False) -> None:
        self.cache = cache
        self.kind = kind
        self.codec = codec
        self.edge = edge
        self._prefix = f"{cache.service}:{kind}:"
        self._hit_result: CacheResult = "hit-edge" if edge else "hit-l1"
        first_tier = "edge" if edge else "l1"
        self._l1_hit = CACHE_REQUESTS.labels(kind, first_tier, "hit")
        self._l1_miss = CACHE_REQUESTS.labels(kind, first_tier, "miss")
        if not edge:  # an edge has no L2: no zero series for it on /metrics
            self._l2_hit = CACHE_REQUESTS.labels(kind, "l2", "hit")
            self._l2_miss = CACHE_REQUESTS.labels(kind, "l2", "miss")
            self._l2_error = CACHE_REQUESTS.labels(kind, "l2", "error")

    async def key(self, tenant: str, collection: str | None, request: Mapping[str, Any] | str) -> str:
        if collection is None:
            return f"{self._prefix}{tenant}:{_UNVERSIONED}:0:{request_hash(request)}"
        version = self.cache._versions.get((tenant, collection))
        if version is None or not self.cache.listening:
            version = await self.cache.collection_version(tenant, collection)
        return f"{self._prefix}{tenant}:{collection}:{version}:{request_hash(request)}"

    async def get_or_compute(
        self,
        tenant: str,
        collection: str | None,
        request: Mapping[str, Any] | str,
        compute: Callable[[], Awaitable[T]],
    ) -> tuple[T, CacheResult]:
        """The cached value for ``request`` in the tenant's collection, and where it came from.

        ``collection=None`` is for values that no write can change (an embedding of a text).
        ``request`` must already be normalised (see ``normalise_text``); it is hashed as canonical
        JSON, so key order does not matter.
        """
        # The key is built inline (not through ``key()``): this is the hit path, and an extra
        # coroutine is a measurable share of it.
        cache = self.cache
        if collection is None:
            key = f"{self._prefix}{tenant}:{_UNVERSIONED}:0:{request_hash(request)}"
        else:
            version = cache._versions.get((tenant, collection)) if cache.listening else None
            if version is None:
                version = await cache.collection_version(tenant, collection)
            key = f"{self._prefix}{tenant}:{collection}:{version}:{request_hash(request)}"
        value = cache.l1.get(key)
        if value is not None:
            self._l1_hit.inc()
            return value, self._hit_result
        self._l1_miss.inc()
        return await self.cache._single_flight(
            key, lambda: self._fill(key, (tenant, collection or ""), compute)
        )

    async def _fill(
        self, key: str, scope: tuple[str, str], compute: Callable[[], Awaitable[T]]
    ) -> tuple[T, CacheResult]:
        cache = self.cache
        if self.edge:
            computed = await compute()
            cache._l1_set(key, computed, scope)
            return computed, "miss"
        blob = await cache._redis_call("get", cache.redis.get, key)
        if blob is _FAILED:
            self._l2_error.inc()
        elif blob is None:
            self._l2_miss.inc()
        else:
            try:
                value = self.codec.decode(unpack(blob))
            except Exception:
                log.warning("dropping an unreadable cache entry", extra={"cache_key": key})
                value = None
            if value is not None:
                self._l2_hit.inc()
                cache._l1_set(key, value, scope)
                return value, "hit-l2"
            self._l2_miss.inc()
        value = await compute()
        cache._l1_set(key, value, scope)
        payload = pack(self.codec.encode(value), cache.config.compress_min_bytes)
        await cache._redis_call("set", cache.redis.set, key, payload, px=int(cache.config.l2_ttl_s * 1000))
        return value, "miss"

    # -- aliases: a value filed again under a second key, in L1 only ------------------------------

    def seen_version(self, tenant: str, collection: str) -> int | None:
        """The collection's version as this replica knows it, or None when it cannot trust it
        (never seen, or not listening to invalidations right now)."""
        return self.cache._versions.get((tenant, collection)) if self.cache.listening else None

    def remember(self, tenant: str, collection: str, alias: str, value: T, version: int | None) -> None:
        """File ``value`` also under ``alias`` (e.g. a hash of the exact request bytes) in L1.

        An alias carries no version: it is only filed while ``version`` (read before the value was
        computed) is still the collection's, and it goes with the collection's other L1 entries
        at the next bump's purge, a reconnect's clear, or a degraded TTL cap.
        """
        if version is None or self.seen_version(tenant, collection) != version:
            return
        self.cache._l1_set(f"{self._prefix}alias:{tenant}:{alias}", value, (tenant, collection))

    def recall(self, tenant: str, alias: str) -> T | None:
        """The value filed under ``alias`` (counted as a first-tier hit), or None (not counted:
        the caller then takes the ordinary path, which counts its own lookup)."""
        value: T | None = self.cache.l1.get(f"{self._prefix}alias:{tenant}:{alias}")
        if value is not None:
            self._l1_hit.inc()
        return value

    async def invalidate(self, tenant: str, collection: str | None, request: Mapping[str, Any] | str) -> None:
        """Forget one entry in both tiers (a value found to be bad)."""
        key = await self.key(tenant, collection, request)
        self.cache.l1._data.pop(key, None)
        await self.cache._redis_call("delete", self.cache.redis.delete, key)


class TwoTierCache:
    """L1 + L2 for one service process, with collection versions and cross-replica invalidation.

    Create it in the app's lifespan, ``await start()`` (subscribes to invalidations), take one
    ``namespace(kind, codec)`` per kind of value, and ``await close()`` at shutdown.
    """

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

    # -- versions and invalidation --------------------------------------------------------------

    async def collection_version(self, tenant: str, collection: str) -> int:
        """The collection's version: from Redis, else the last one seen here (0 if never seen)."""
        raw = await self._redis_call("version", self.versions.get, version_key(tenant, collection))
        scope = (tenant, collection)
        if raw is not _FAILED:
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
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                await self._on_listening()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        try:
                            await self._on_invalidation(message["data"])
                        except (ValueError, KeyError, TypeError):
                            log.warning("ignoring a malformed invalidation message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_listener_lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5

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
            value, _ = await asyncio.shield(pending)
            # A follower was a miss too; it just did not pay for it twice.
            return value, "miss"
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
        """A Redis command that may fail: errors are counted and logged once, the caller gets _FAILED."""
        if self._redis_ok_at > time.monotonic():
            return _FAILED
        try:
            try:
                return await call(*args, **kwargs)
            except RedisConnectionError:
                # After a Redis restart the pool still holds connections to the old server: the
                # first command on each fails and drops it. One retry takes a fresh connection,
                # so a restart does not cost every pooled connection a back-off of its own.
                return await call(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_failed(operation, exc)
            return _FAILED

    def _redis_failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(self.service, operation).inc()
        if self._redis_ok_at <= time.monotonic():
            log.warning("cache: Redis %s failed, serving without L2 for a while: %s", operation, exc)
        self._redis_ok_at = time.monotonic() + self.config.redis_retry_after_s


def cache_stats() -> dict[str, Any]:
    """Hit rates per cache and tier, from ``ragfleet_cache_requests_total`` (all workers' samples).

    Reading the metric rather than per-process counters makes the figures agree with /metrics and
    cover every uvicorn worker, whichever one answers.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry = REGISTRY
    counts: dict[str, dict[tuple[str, str], float]] = {}
    for family in registry.collect():
        if family.name != "ragfleet_cache_requests":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            per_cache = counts.setdefault(labels["cache"], {})
            key = (labels["tier"], labels["result"])
            per_cache[key] = per_cache.get(key, 0.0) + sample.value
    return {name: _rates(per_cache) for name, per_cache in sorted(counts.items())}


def _rates(counts: dict[tuple[str, str], float]) -> dict[str, Any]:
    """Hit rates of one cache in one process: an edge tier (gateway) or L1 + L2 (the owner)."""

    def n(tier: str, result: str) -> int:
        return int(counts.get((tier, result), 0))

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    edge_hits, edge_misses = n("edge", "hit"), n("edge", "miss")
    l1_hits, l1_misses = n("l1", "hit"), n("l1", "miss")
    l2_hits, l2_misses, l2_errors = n("l2", "hit"), n("l2", "miss"), n("l2", "error")
    edge_lookups, l1_lookups = edge_hits + edge_misses, l1_hits + l1_misses
    stats: dict[str, Any] = {}
    if edge_lookups:
        stats["edge"] = {"hits": edge_hits, "misses": edge_misses, "hit_rate": rate(edge_hits, edge_lookups)}
    if edge_lookups and not l1_lookups:
        return {"requests": edge_lookups, "hit_rate": rate(edge_hits, edge_lookups), **stats}
    return {
        "requests": l1_lookups,
        "hit_rate": rate(l1_hits + l2_hits, l1_lookups),
        **stats,
        "l1": {"hits": l1_hits, "misses": l1_misses, "hit_rate": rate(l1_hits, l1_lookups)},
        "l2": {
            "hits": l2_hits,
            "misses": l2_misses,
            "errors": l2_errors,
            "hit_rate": rate(l2_hits, l2_hits + l2_misses + l2_errors),
        },
    }
