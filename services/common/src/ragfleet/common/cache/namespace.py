"""One kind of cached value in a TwoTierCache: the hit path, the fill path, and L1 aliases."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ragfleet.common.cache.codecs import Codec, pack, unpack
from ragfleet.common.cache.keys import UNVERSIONED, request_hash
from ragfleet.common.cache.stats import CACHE_REQUESTS

if TYPE_CHECKING:
    from ragfleet.common.cache.two_tier import TwoTierCache

log = logging.getLogger("ragfleet.cache")

T = TypeVar("T")
# "uncached": computed and deliberately stored in no tier (see ``Uncached``).
CacheResult = Literal["hit-edge", "hit-l1", "hit-l2", "hit-semantic", "miss", "uncached"]


class Uncached(Exception):
    """Raised by a ``get_or_compute`` compute function with a value to answer but store nowhere.

    For an answer that is right for now but must not outlive the moment: a hybrid search served
    BM25-only because the embedder could not embed its query in time. Cached, it would be served
    for minutes after the embedder recovered. ``get_or_compute`` returns the value with the result
    ``"uncached"`` (to the computing caller and to any that waited for the same key), stores it in
    no tier, and the next request for the key computes again.
    """

    def __init__(self, value: Any) -> None:
        super().__init__("a value not to be cached")
        self.value = value


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
            return f"{self._prefix}{tenant}:{UNVERSIONED}:0:{request_hash(request)}"
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
        *,
        shared: bool = True,
    ) -> tuple[T, CacheResult]:
        """The cached value for ``request`` in the tenant's collection, and where it came from.

        ``collection=None`` is for values that no write can change (an embedding of a text).
        ``request`` must already be normalised (see ``normalise_text``); it is hashed as canonical
        JSON, so key order does not matter. ``shared=False`` keeps the value in this process's L1
        only: for requests that almost never repeat across replicas, where an L2 get and set
        would be two Redis round trips spent on every request for hits that do not come.
        """
        # The key is built inline (not through ``key()``): this is the hit path, and an extra
        # coroutine is a measurable share of it.
        cache = self.cache
        if collection is None:
            key = f"{self._prefix}{tenant}:{UNVERSIONED}:0:{request_hash(request)}"
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
            key, lambda: self._fill(key, (tenant, collection or ""), compute, shared)
        )

    async def _fill(
        self, key: str, scope: tuple[str, str], compute: Callable[[], Awaitable[T]], shared: bool
    ) -> tuple[T, CacheResult]:
        cache = self.cache
        if self.edge or not shared:
            try:
                computed = await compute()
            except Uncached as uncached:
                return uncached.value, "uncached"
            cache._l1_set(key, computed, scope)
            return computed, "miss"
        blob = await cache._redis_call("get", cache.redis.get, key)
        if blob is cache.FAILED:
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
        try:
            value = await compute()
        except Uncached as uncached:
            return uncached.value, "uncached"
        cache._l1_set(key, value, scope)
        payload = pack(self.codec.encode(value), cache.config.compress_min_bytes)
        await cache._redis_call("set", cache.redis.set, key, payload, px=int(cache.config.l2_ttl_s * 1000))
        return value, "miss"

    # -- values made elsewhere: looked up and stored in two steps ----------------------------------

    def key_at(self, tenant: str, collection: str, version: int, request: Mapping[str, Any] | str) -> str:
        """The key of ``request`` at a version read earlier (see ``lookup``)."""
        return f"{self._prefix}{tenant}:{collection}:{version}:{request_hash(request)}"

    async def lookup(self, key: str, scope: tuple[str, str]) -> tuple[T | None, CacheResult]:
        """L1, then L2, without computing: for a value that is not one call's result (a streamed
        chat answer is built while it is sent). Store it afterwards with ``store`` under the same
        key, built by ``key_at`` with the version read *before* the value's inputs were: a write
        meanwhile leaves it under the old version, where nothing reads it."""
        value = self.cache.l1.get(key)
        if value is not None:
            self._l1_hit.inc()
            return value, self._hit_result
        self._l1_miss.inc()
        if self.edge:
            return None, "miss"
        blob = await self.cache._redis_call("get", self.cache.redis.get, key)
        if blob is self.cache.FAILED:
            self._l2_error.inc()
            return None, "miss"
        if blob is not None:
            try:
                value = self.codec.decode(unpack(blob))
            except Exception:
                log.warning("dropping an unreadable cache entry", extra={"cache_key": key})
            if value is not None:
                self._l2_hit.inc()
                self.cache._l1_set(key, value, scope)
                return value, "hit-l2"
        self._l2_miss.inc()
        return None, "miss"

    async def store(self, key: str, scope: tuple[str, str], value: T) -> None:
        self.cache._l1_set(key, value, scope)
        if not self.edge:
            payload = pack(self.codec.encode(value), self.cache.config.compress_min_bytes)
            ttl_ms = int(self.cache.config.l2_ttl_s * 1000)
            await self.cache._redis_call("set", self.cache.redis.set, key, payload, px=ttl_ms)

    async def peek(self, tenant: str, collection: str | None, request: Mapping[str, Any] | str) -> T | None:
        """The value if a tier holds it now (promoted into L1 from L2); never computes it and never
        waits for a computation in flight. For a caller that already holds another key's
        single-flight: waiting for a second key there can deadlock with a caller doing the reverse.
        Not counted as a lookup (the caller's own ``get_or_compute`` was)."""
        key = await self.key(tenant, collection, request)
        value: T | None = self.cache.l1.get(key)
        if value is not None or self.edge:
            return value
        blob = await self.cache._redis_call("get", self.cache.redis.get, key)
        if blob is self.cache.FAILED or blob is None:
            return None
        try:
            value = self.codec.decode(unpack(blob))
        except Exception:
            return None
        self.cache._l1_set(key, value, (tenant, collection or ""))
        return value

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
