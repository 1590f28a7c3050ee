"""The exact-match response cache, on the common two-tier cache (L1 in process, L2 in Redis).

Only deterministic requests are cached (temperature 0 or a seed, one choice). The key is the
normalised request — everything that shapes the answer, nothing that does not (``user``) — scoped by
tenant so nothing crosses tenants. A stream is stored as the exact sequence of chunks the client
received and replayed as that same sequence; a stream that failed, was cut or was abandoned by
its client is never stored. ``Cache-Control: no-store`` skips the cache both ways; ``no-cache``
skips the read but stores the fresh answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ragfleet.common.cache import CacheResult, TwoTierCache
from ragfleet.llm_proxy.schemas import ChatCompletionRequest

# The cache tiers, or "bypass" when the request asked not to use the cache.
XCache = CacheResult | Literal["bypass"]
KEY_VERSION = 1  # bump when the entry format changes, so old entries are never read


@dataclass(frozen=True)
class CachePolicy:
    read: bool
    write: bool

    @property
    def used(self) -> bool:
        return self.read or self.write


def cache_policy(headers: Mapping[str, str], request: ChatCompletionRequest, enabled: bool) -> CachePolicy:
    if not enabled or not request.deterministic:
        return CachePolicy(False, False)
    directives = {part.strip().lower() for part in headers.get("cache-control", "").split(",")}
    if "no-store" in directives:
        return CachePolicy(False, False)
    return CachePolicy(read="no-cache" not in directives, write=True)


def cache_request(request: ChatCompletionRequest) -> dict[str, Any]:
    body = request.model_dump(exclude_none=True, exclude={"user"})
    body["_v"] = KEY_VERSION
    return body


class _Miss(Exception):
    """Raised by the lookup's compute: the common cache only offers get-or-compute."""


class ResponseCache:
    """``lookup`` and ``store`` of chat completions: a JSON body, or a stream's chunk sequence."""

    def __init__(self, cache: TwoTierCache, *, max_entry_bytes: int) -> None:
        self.namespace = cache.namespace("chat")
        self.max_entry_bytes = max_entry_bytes

    async def lookup(
        self, tenant: str, request: ChatCompletionRequest
    ) -> tuple[dict[str, Any], CacheResult] | None:
        async def miss() -> dict[str, Any]:
            raise _Miss

        try:
            return await self.namespace.get_or_compute(tenant, None, cache_request(request), miss)
        except _Miss:
            return None

    async def store(
        self, tenant: str, request: ChatCompletionRequest, entry: dict[str, Any], *, replace: bool
    ) -> bool:
        """Store ``entry`` (``{"body": ...}`` or ``{"chunks": [...]}``); False when it is too big to keep."""
        if len(orjson.dumps(entry)) > self.max_entry_bytes:
            return False
        key_request = cache_request(request)
        if replace:  # Cache-Control: no-cache — the fresh answer replaces whatever was stored
            await self.namespace.invalidate(tenant, None, key_request)

        async def value() -> dict[str, Any]:
            return entry

        await self.namespace.get_or_compute(tenant, None, key_request, value)
        return True
