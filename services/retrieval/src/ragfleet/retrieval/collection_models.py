"""Which embedding model wrote each collection, so that vectors of two models are never compared.

Cosine similarity between vectors of different models is noise that looks like an answer: a
collection embedded with model A and searched with model B's query vectors returns confident,
wrong results. So the first write to a collection records the model that embedded its chunks
(in the state Redis, beside the collection's cache version: ``ragfleet:collection-model:{tenant}:{name}``),
a write with another model's vectors is refused, and a vector or hybrid search whose query
embedder is another model is refused, both with 409 ``embedding_model_mismatch``.

Changing the model is a re-embedding: ingest the documents again into a new collection (or
delete the collection, which forgets its model, and ingest again). Collections written before
models were recorded have no record; their next write records one.

Redis down: the check is skipped (and counted) rather than failing searches, like the cache.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.errors import Conflict
from ragfleet.retrieval.metrics import MODEL_CHECKS

log = logging.getLogger("ragfleet.retrieval.models")


class EmbeddingModelMismatch(Conflict):
    code = "embedding_model_mismatch"


def model_key(tenant: str, collection: str) -> str:
    return f"ragfleet:collection-model:{tenant}:{collection}"


class CollectionModels:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # A collection's model changes only when it is deleted: remembered for the process's life
        # (a delete through this replica forgets it; see `forget`).
        self._known: dict[tuple[str, str], str] = {}

    async def recorded(self, tenant: str, collection: str) -> str | None:
        scope = (tenant, collection)
        known = self._known.get(scope)
        if known is not None:
            return known
        try:
            raw = await self.redis.get(model_key(tenant, collection))
        except (RedisError, OSError, TimeoutError) as exc:
            MODEL_CHECKS.labels("redis_error").inc()
            log.warning("collection model unknown (Redis failed): %s", exc)
            return None
        if raw is None:
            return None
        model = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._known[scope] = model
        return model

    async def check_query(self, tenant: str, collection: str, model: str) -> None:
        """Refuse to search the collection with query vectors of `model` if another model wrote it."""
        recorded = await self.recorded(tenant, collection)
        if recorded is not None and recorded != model:
            MODEL_CHECKS.labels("mismatch").inc()
            raise EmbeddingModelMismatch(
                f"collection {collection!r} was embedded with model {recorded!r}, but this retrieval "
                f"service embeds queries with {model!r}: their vectors cannot be compared. Search with "
                f"mode 'bm25', run retrieval with the collection's model, or re-ingest the documents "
                f"into a new collection with {model!r}"
            )

    async def record_write(self, tenant: str, collection: str, model: str) -> None:
        """Record the model of a write's vectors; refuse vectors of another model than the collection's."""
        recorded = await self.recorded(tenant, collection)
        if recorded is None:
            try:
                await self.redis.set(model_key(tenant, collection), model, nx=True)
                raw = await self.redis.get(model_key(tenant, collection))
            except (RedisError, OSError, TimeoutError) as exc:
                MODEL_CHECKS.labels("redis_error").inc()
                log.warning("collection model not recorded (Redis failed): %s", exc)
                return
            recorded = raw.decode() if isinstance(raw, bytes) else str(raw) if raw is not None else model
            self._known[(tenant, collection)] = recorded
        if recorded != model:
            MODEL_CHECKS.labels("mismatch").inc()
            raise EmbeddingModelMismatch(
                f"collection {collection!r} holds vectors of model {recorded!r}; these chunks were "
                f"embedded with {model!r}. Ingest them into a new collection, or delete {collection!r} "
                "first to re-embed it with the new model"
            )

    async def forget(self, tenant: str, collection: str) -> None:
        """The collection is gone: its next write may use any model."""
        self._known.pop((tenant, collection), None)
        try:
            await self.redis.delete(model_key(tenant, collection))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("collection model not forgotten (Redis failed): %s", exc)
