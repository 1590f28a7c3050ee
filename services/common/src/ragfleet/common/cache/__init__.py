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

Modules: ``keys`` (request hashing, version keys), ``codecs`` (values to bytes, zlib packing),
``lru`` (L1), ``namespace`` (one kind of value: hit and fill paths), ``two_tier`` (the cache of a
process: versions and the invalidation protocol), ``stats`` (instruments and hit rates).
"""

from ragfleet.common.cache.codecs import BYTES_CODEC, JSON_CODEC, BytesCodec, Codec, JsonCodec, pack, unpack
from ragfleet.common.cache.keys import INVALIDATION_CHANNEL, normalise_text, request_hash, version_key
from ragfleet.common.cache.lru import LruTtl
from ragfleet.common.cache.namespace import CacheNamespace, CacheResult, Uncached
from ragfleet.common.cache.stats import CACHE_ERRORS, CACHE_INVALIDATIONS, CACHE_REQUESTS, cache_stats
from ragfleet.common.cache.two_tier import BumpResult, CacheConfig, TwoTierCache

__all__ = [
    "BYTES_CODEC",
    "CACHE_ERRORS",
    "CACHE_INVALIDATIONS",
    "CACHE_REQUESTS",
    "INVALIDATION_CHANNEL",
    "JSON_CODEC",
    "BumpResult",
    "BytesCodec",
    "CacheConfig",
    "CacheNamespace",
    "CacheResult",
    "Codec",
    "JsonCodec",
    "LruTtl",
    "TwoTierCache",
    "Uncached",
    "cache_stats",
    "normalise_text",
    "pack",
    "request_hash",
    "unpack",
    "version_key",
]
