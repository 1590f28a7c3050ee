"""Search with the two-tier cache in front: query embeddings and result lists are both cached.

A cached search result is stored as the JSON bytes of its response body (minus ``took_ms``), so
a hit costs a dict lookup and one small concatenation: nothing is rebuilt or re-serialised.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from ragfleet.common.cache import BYTES_CODEC, CacheResult, TwoTierCache, normalise_text
from ragfleet.common.contracts import prefix_json_field
from ragfleet.common.embeddings import MicroBatcher
from ragfleet.common.errors import BadRequest
from ragfleet.retrieval.collection_models import CollectionModels
from ragfleet.retrieval.metrics import SEARCH_DURATION
from ragfleet.retrieval.search.schemas import SearchRequest
from ragfleet.retrieval.store import CollectionNotFound, Hit, SearchQuery, VectorStore, parse_filters


class SearchService:
    def __init__(
        self,
        store: VectorStore,
        batcher: MicroBatcher,
        cache: TwoTierCache,
        models: CollectionModels | None = None,
    ) -> None:
        self.store = store
        self.batcher = batcher
        self.cache = cache
        self.models = models
        self.model = batcher.embedder.model_name
        self.results = cache.namespace("search", BYTES_CODEC)
        self.embeddings = cache.namespace("embedding", BYTES_CODEC)

    async def embed_query(self, tenant: str, text: str) -> np.ndarray:
        """The query's vector, through the embedding cache (key: model + normalised text)."""

        async def compute() -> bytes:
            vector = await self.batcher.embed_one(text)
            return np.asarray(vector, dtype=np.float32).tobytes()

        raw, _ = await self.embeddings.get_or_compute(
            tenant, None, {"model": self.model, "text": text}, compute
        )
        return np.frombuffer(raw, dtype=np.float32)

    async def search(self, tenant: str, request: SearchRequest) -> tuple[bytes, CacheResult]:
        """The response body (JSON bytes, ``took_ms`` included) and where it came from."""
        started = time.perf_counter()
        if request.vector is not None and len(request.vector) != self.store.dim:
            raise BadRequest(
                f"vector has {len(request.vector)} dimensions; collection {request.collection!r} "
                f"expects {self.store.dim}"
            )
        text = normalise_text(request.query) if request.query is not None else None
        key: dict[str, Any] = {
            "q": text,
            "v": request.vector,
            "k": request.top_k,
            "m": request.mode,
            "a": request.alpha if request.mode == "hybrid" else None,
            "fu": request.fusion if request.mode == "hybrid" else None,
            "f": request.filters,
            "e": self.model if request.mode != "bm25" else None,  # results of another model never match
        }

        async def compute() -> bytes:
            return await self._search_uncached(tenant, request, text)

        body, tier = await self.results.get_or_compute(tenant, request.collection, key, compute)
        took_ms = (time.perf_counter() - started) * 1000
        SEARCH_DURATION.labels(request.mode, tier).observe(took_ms / 1000)
        # The cached body is a JSON object without took_ms; it goes in front of its first key.
        return prefix_json_field(body, "took_ms", f"{took_ms:.3f}".encode()), tier

    async def _search_uncached(self, tenant: str, request: SearchRequest, text: str | None) -> bytes:
        filters = parse_filters(request.filters)
        if not await self.store.collection_exists(tenant, request.collection):
            raise CollectionNotFound(f"collection {request.collection!r} does not exist")
        vector: Any = request.vector
        if request.mode != "bm25" and self.models is not None and vector is None:
            await self.models.check_query(tenant, request.collection, self.model)
        if vector is None and request.mode != "bm25":
            assert text is not None  # the schema requires a query when there is no vector
            vector = await self.embed_query(tenant, text)
        query = SearchQuery(
            text=text,
            vector=vector,
            mode=request.mode,
            top_k=request.top_k,
            alpha=request.alpha,
            fusion=request.fusion,
            filters=filters,
        )
        hits = await self.store.search(tenant, request.collection, query)
        return orjson.dumps(
            {
                "results": [_result(hit) for hit in hits],
                "mode": request.mode,
                "collection": request.collection,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


def _result(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "document_id": hit.document_id,
        "text": hit.text,
        "score": round(float(hit.score), 6),
        "metadata": hit.metadata,
    }
