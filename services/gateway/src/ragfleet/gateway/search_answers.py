"""The edge tier of the search cache: repeated searches answered from this replica's memory.

A search costs the gateway one HTTP hop to retrieval even when retrieval answers from its own L1,
and on a small machine that hop (client, connection pool, second service's request cycle) costs
several times more CPU than the rest of the request. So the gateway keeps retrieval's answers in
an L1-only namespace of the common two-tier cache, keyed like retrieval's own entries by tenant,
collection, collection version and the normalised request. Retrieval's version bumps (every
upsert or delete) reach this replica by the same pub/sub message that purges retrieval's L1, and
a write returns only once every subscribed replica — gateways included — has acknowledged the
purge, so an edge hit is never older than the last write that returned.

Only answers retrieval gave with 200 are kept; errors are never cached, nor are degraded answers
(``X-Search-Degraded``: a hybrid search retrieval answered BM25-only because its embedder was
saturated) — kept, one would be served long after the embedder recovered.

Each answer is kept as ready bytes (``EdgeAnswer``): the JSON without ``took_ms``, and — made
once, the first time a client accepts it — its gzip form, so neither this process nor the ingress
compresses the same answer again (NGINX passes an answer that already has a Content-Encoding
through). The exact request body a client sent is also remembered (``recall``): the hot route
answers a repeat of those bytes without parsing, validating or re-hashing them.
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ragfleet.common.cache import CacheNamespace, TwoTierCache, Uncached, normalise_text
from ragfleet.common.contracts import prefix_json_field, strip_leading_json_field
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.keys import Principal


def strip_took_ms(body: bytes) -> bytes:
    """Retrieval's body without its leading ``"took_ms"`` member (it is per answer, not per result)."""
    return strip_leading_json_field(body, "took_ms")


def with_took_ms(body: bytes, took_ms: float) -> bytes:
    return prefix_json_field(body, "took_ms", f"{took_ms:.3f}".encode())


# A gzip member with no name and no timestamp (RFC 1952): magic, deflate, flags 0, mtime 0, xfl 0, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@dataclass
class EdgeAnswer:
    """One cached answer: its collection (to check the caller may read it) and its ready bytes.

    ``body`` is the JSON object without ``took_ms``. ``degraded``: retrieval's reason when the
    answer is less than was asked (such an answer is never kept). ``gzip_tail`` is ``body[1:]`` compressed once
    as raw deflate; a gzip answer is then put together per request without compressing anything:
    the header, ``{"took_ms":…,`` as a *stored* (uncompressed) deflate block — legal in front of
    any compressed blocks, as they start on a byte boundary — the compressed tail, and the
    trailer's CRC-32 and length of the whole JSON.
    """

    collection: str
    body: bytes
    degraded: str | None = None
    gzip_tail: bytes | None = field(default=None, repr=False)

    def json(self, took_ms: float) -> bytes:
        return with_took_ms(self.body, took_ms)

    def gzip(self, took_ms: float) -> bytes:
        rest = self.body[1:]
        if self.gzip_tail is None:
            compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
            self.gzip_tail = compressor.compress(rest) + compressor.flush()
        head = b'{"took_ms":' + f"{took_ms:.3f}".encode() + (b"," if rest.strip() != b"}" else b"")
        stored = b"\x00" + struct.pack("<HH", len(head), len(head) ^ 0xFFFF) + head
        crc = zlib.crc32(rest, zlib.crc32(head))
        size = (len(head) + len(rest)) & 0xFFFFFFFF
        return _GZIP_HEADER + stored + self.gzip_tail + struct.pack("<II", crc, size)


def body_alias(body: bytes) -> str:
    """The key of an exact request body (BLAKE2b-128 of its bytes)."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


class _InMemoryOnly:
    """The codec of the edge namespace, which has no L2: its answers never leave this process."""

    def encode(self, value: EdgeAnswer) -> bytes:
        raise TypeError("edge answers are kept in memory only")

    def decode(self, data: bytes) -> EdgeAnswer:
        raise TypeError("edge answers are kept in memory only")


_NEVER_ENCODED = _InMemoryOnly()


class SearchAnswers:
    """``POST /v1/search`` answers: from the edge tier when enabled, else straight from retrieval."""

    def __init__(self, downstream: Downstream, cache: TwoTierCache | None) -> None:
        self.downstream = downstream
        self.edge: CacheNamespace[EdgeAnswer] | None = (
            cache.namespace("search", _NEVER_ENCODED, edge=True) if cache is not None else None
        )

    def recall(self, tenant: str, raw_body: bytes) -> EdgeAnswer | None:
        """The answer to an exact request body this replica already answered for the tenant."""
        if self.edge is None:
            return None
        return self.edge.recall(tenant, body_alias(raw_body))

    async def answer(
        self, principal: Principal, payload: dict[str, Any], raw_body: bytes | None = None
    ) -> tuple[EdgeAnswer, str | None]:
        """The answer and its ``X-Cache`` value (``hit-edge``, or retrieval's own).

        ``raw_body``: the request's bytes as sent, remembered beside the answer for ``recall``.
        """
        if self.edge is None:
            reply = await self.downstream.search(principal, payload)
            answer = EdgeAnswer(payload["collection"], strip_took_ms(reply.content), reply.degraded)
            return answer, reply.cache

        retrieval_tier: str | None = None

        async def ask_retrieval() -> EdgeAnswer:
            nonlocal retrieval_tier
            reply = await self.downstream.search(principal, payload)
            retrieval_tier = reply.cache
            answer = EdgeAnswer(payload["collection"], strip_took_ms(reply.content), reply.degraded)
            if answer.degraded is not None:
                raise Uncached(answer)
            return answer

        key = (
            payload
            if payload.get("query") is None
            else {**payload, "query": normalise_text(payload["query"])}
        )
        tenant, collection = principal.tenant, payload["collection"]
        version = self.edge.seen_version(tenant, collection)
        answer, tier = await self.edge.get_or_compute(tenant, collection, key, ask_retrieval)
        if tier == "uncached":
            return answer, "miss"
        if raw_body is not None:
            self.edge.remember(tenant, collection, body_alias(raw_body), answer, version)
        if tier == "hit-edge":
            return answer, tier
        # This request asked retrieval (or waited for an identical one that did): retrieval's tier.
        return answer, retrieval_tier or "miss"

    async def search(self, principal: Principal, payload: dict[str, Any]) -> tuple[bytes, str | None]:
        """The response body (``took_ms`` included) and its ``X-Cache`` value."""
        started = time.perf_counter()
        answer, tier = await self.answer(principal, payload)
        return answer.json((time.perf_counter() - started) * 1000), tier
