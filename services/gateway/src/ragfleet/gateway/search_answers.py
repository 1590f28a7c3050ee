"""The edge tier of the search cache: repeated searches answered from this replica's memory.

A search costs the gateway one HTTP hop to retrieval even when retrieval answers from its own L1,
and on a small machine that hop (client, connection pool, second service's request cycle) costs
several times more CPU than the rest of the request. So the gateway keeps retrieval's answers in
an L1-only namespace of the common two-tier cache, keyed like retrieval's own entries by tenant,
collection, collection version and the normalised request. Retrieval's version bumps (every
upsert or delete) reach this replica by the same pub/sub message that purges retrieval's L1, and
a write returns only once every subscribed replica — gateways included — has acknowledged the
purge, so an edge hit is never older than the last write that returned.

Only answers retrieval gave with 200 are kept; errors are never cached.
"""

from __future__ import annotations

import time
from typing import Any

from ragfleet.common.cache import BYTES_CODEC, CacheNamespace, TwoTierCache, normalise_text
from ragfleet.common.contracts import prefix_json_field, strip_leading_json_field
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.keys import Principal


def strip_took_ms(body: bytes) -> bytes:
    """Retrieval's body without its leading ``"took_ms"`` member (it is per answer, not per result)."""
    return strip_leading_json_field(body, "took_ms")


def with_took_ms(body: bytes, took_ms: float) -> bytes:
    return prefix_json_field(body, "took_ms", f"{took_ms:.3f}".encode())


class SearchAnswers:
    """``POST /v1/search`` answers: from the edge tier when enabled, else straight from retrieval."""

    def __init__(self, downstream: Downstream, cache: TwoTierCache | None) -> None:
        self.downstream = downstream
        self.edge: CacheNamespace[bytes] | None = (
            cache.namespace("search", BYTES_CODEC, edge=True) if cache is not None else None
        )

    async def search(self, principal: Principal, payload: dict[str, Any]) -> tuple[bytes, str | None]:
        """The response body and its ``X-Cache`` value (``hit-edge``, or retrieval's own)."""
        if self.edge is None:
            answer = await self.downstream.search(principal, payload)
            return answer.content, answer.headers.get("x-cache")

        started = time.perf_counter()
        retrieval_tier: str | None = None

        async def ask_retrieval() -> bytes:
            nonlocal retrieval_tier
            answer = await self.downstream.search(principal, payload)
            retrieval_tier = answer.headers.get("x-cache")
            return strip_took_ms(answer.content)

        key = (
            payload
            if payload.get("query") is None
            else {**payload, "query": normalise_text(payload["query"])}
        )
        body, tier = await self.edge.get_or_compute(
            principal.tenant, payload["collection"], key, ask_retrieval
        )
        took_ms = (time.perf_counter() - started) * 1000
        if tier == "hit-edge":
            return with_took_ms(body, took_ms), tier
        # This request asked retrieval (or waited for an identical one that did): retrieval's tier.
        return with_took_ms(body, took_ms), retrieval_tier or "miss"
