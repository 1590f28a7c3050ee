"""Per-collection search defaults (today: whether to rerank, and how deep), set by the collection's owner.

A collection of support tickets may want every search reranked while a log archive wants none:
the service-wide ``rerank_by_default`` cannot say both. So a collection may carry its own
defaults; a search resolves each one as *request, else collection, else service*.

Stored on the state Redis (``ragfleet:collection-settings:{tenant}:{name}``, JSON): they are what
a user set, not something a cache could rebuild. Every change bumps the collection's cache
version, so no search cached under the old defaults is served again, and each replica re-reads
the settings when it sees a new version: a replica keeps them in memory per version, and a
search costs no Redis call for them. Redis down: the last settings read are used (or none),
like the other collection records, rather than failing searches.
"""

from __future__ import annotations

import logging

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.contracts import MAX_TOP_K

log = logging.getLogger("ragfleet.retrieval.collection_settings")


class CollectionSettings(BaseModel):
    """A collection's search defaults; null leaves the choice to the service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rerank: bool | None = Field(
        None, description="rerank searches that do not say (null: the service's rerank_by_default)"
    )
    rerank_depth: int | None = Field(
        None, ge=2, le=MAX_TOP_K, description="how many fused results the reranker rescores (null: 20)"
    )


NONE = CollectionSettings()


def settings_key(tenant: str, collection: str) -> str:
    return f"ragfleet:collection-settings:{tenant}:{collection}"


class CollectionSettingsStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._known: dict[tuple[str, str], tuple[int, CollectionSettings]] = {}

    async def get(self, tenant: str, collection: str, version: int) -> CollectionSettings:
        """The collection's settings as of cache `version` (read from Redis once per version)."""
        scope = (tenant, collection)
        known = self._known.get(scope)
        if known is not None and known[0] == version:
            return known[1]
        try:
            raw = await self.redis.get(settings_key(tenant, collection))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("collection settings unknown (Redis failed): %s", exc)
            return known[1] if known is not None else NONE
        settings = CollectionSettings.model_validate_json(raw) if raw else NONE
        self._known[scope] = (version, settings)
        return settings

    async def put(self, tenant: str, collection: str, settings: CollectionSettings) -> None:
        """Store (or, when every field is null, remove) the settings; the caller bumps the version."""
        key = settings_key(tenant, collection)
        if settings == NONE:
            await self.redis.delete(key)
        else:
            await self.redis.set(key, orjson.dumps(settings.model_dump()))
        self._known.pop((tenant, collection), None)

    async def forget(self, tenant: str, collection: str) -> None:
        """The collection is gone: a collection made again under its name starts with none."""
        self._known.pop((tenant, collection), None)
        try:
            await self.redis.delete(settings_key(tenant, collection))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("collection settings not forgotten (Redis failed): %s", exc)
