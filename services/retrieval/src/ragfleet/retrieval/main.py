"""The retrieval service: embeds queries, searches the index, caches results."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.middleware import Middleware

from ragfleet.common.app import create_service_app
from ragfleet.common.cache import TwoTierCache
from ragfleet.common.clients import create_redis
from ragfleet.common.embedding_providers import EmbeddingProviderError, create_provider
from ragfleet.common.embeddings import MicroBatcher
from ragfleet.common.health import ReadinessCheck
from ragfleet.common.semantic_cache import SemanticIndex
from ragfleet.retrieval.collection_models import CollectionModels
from ragfleet.retrieval.collection_settings import CollectionSettingsStore
from ragfleet.retrieval.config import RetrievalSettings
from ragfleet.retrieval.internal.router import router as internal_router
from ragfleet.retrieval.rerank import RemoteReranker
from ragfleet.retrieval.search.fast_path import SearchFastPath
from ragfleet.retrieval.search.router import router as search_router
from ragfleet.retrieval.search.service import SearchService
from ragfleet.retrieval.store import VectorStore

log = logging.getLogger("ragfleet.retrieval")


def create_store(settings: RetrievalSettings) -> VectorStore:
    if settings.backend == "embedded":
        from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

        return EmbeddedVectorStore(settings.data_dir)
    if not settings.weaviate_url:
        raise ValueError("RAGFLEET_RETRIEVAL_WEAVIATE_URL must be set when backend=weaviate")
    # Imported by name so that the embedded default never loads the Weaviate client.
    module: Any = importlib.import_module("ragfleet.retrieval.store.weaviate")
    store: VectorStore = module.WeaviateVectorStore(
        settings.weaviate_url, grpc_port=settings.weaviate_grpc_port, api_key=settings.weaviate_api_key
    )
    return store


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    settings = settings or RetrievalSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # L2 entries and invalidations on the cache Redis; collection versions on the state Redis.
        redis = create_redis(settings, "cache")
        versions = create_redis(settings, "state")
        store = create_store(settings)
        embedder = create_provider(settings, threads=settings.embed_threads)
        batcher = MicroBatcher(
            embedder,
            max_batch=settings.embed_max_batch,
            max_wait_ms=settings.embed_max_wait_ms,
            max_queue=settings.embed_max_queue,
            max_queue_s=settings.embed_max_queue_ms / 1000,
            niceness=settings.embed_niceness,
        )
        cache = TwoTierCache(
            redis,
            service=settings.service_name,
            config=settings.cache_config(),
            replica=settings.replica_name,
            versions=versions,
        )
        app.state.redis, app.state.store, app.state.batcher, app.state.cache = redis, store, batcher, cache
        # The model that wrote a collection is a record, not a cache: on the state Redis (losing it
        # would silently stop the 409 check until the next write), beside the collection versions.
        models = CollectionModels(versions) if settings.embedding_model_check else None
        app.state.models = models
        collection_settings = CollectionSettingsStore(versions)  # what a user set: the state Redis
        app.state.collection_settings = collection_settings
        semantic = (
            SemanticIndex(
                "search",
                threshold=settings.semantic_cache_threshold,
                max_entries=settings.semantic_cache_max_entries,
                verify_rate=settings.semantic_cache_verify_rate,
            )
            if settings.semantic_cache_threshold > 0
            else None
        )
        if semantic is not None:
            # Every worker and replica learns the questions the others answered (before start()).
            cache.on_message(semantic.channel, semantic.add_shared)
        reranker = (
            RemoteReranker(
                settings.rerank_url,
                api=settings.rerank_api,
                model=settings.rerank_model,
                timeout_s=settings.rerank_timeout_s,
                api_key=settings.rerank_api_key.get_secret_value() if settings.rerank_api_key else None,
            )
            if settings.rerank_url
            else None
        )
        app.state.search = SearchService(
            store,
            batcher,
            cache,
            models,
            semantic,
            reranker=reranker,
            rerank_by_default=settings.rerank_by_default,
            collection_settings=collection_settings,
            degrade_after_s=settings.embed_degrade_after_ms / 1000,
        )
        try:
            # Load the model (or check the embedding server's dimension) and open the collections
            # now, so the first request does not pay for it. A remote embedding server that is
            # down does not stop retrieval: BM25 still serves, and text searches answer 503.
            try:
                await batcher.embed_many(["warm up"])
            except EmbeddingProviderError as exc:
                log.warning("embedding provider not ready at start: %s", exc)
            warm = getattr(store, "warm", None)
            if warm is not None:
                await warm()
            await cache.start()
            yield
        finally:
            await cache.close()
            if reranker is not None:
                await reranker.close()
            await batcher.close()
            await store.close()
            await redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
            await versions.aclose()  # type: ignore[attr-defined]

    def readiness(state: State) -> dict[str, ReadinessCheck]:
        # Redis is not a readiness condition: without it searches still answer (from L1 and the index).
        async def cache_check() -> dict[str, Any]:
            return {"redis": "ok" if state.cache.listening else "unavailable (serving without L2)"}

        return {"cache": cache_check}

    app = create_service_app(
        settings,
        title="ragfleet retrieval",
        description="Vector, BM25 and hybrid search over the embedded index or Weaviate, with a two-tier cache.",
        lifespan=lifespan,
        readiness=readiness,
    )
    # Innermost (appended, where add_middleware prepends): inside the request context and the
    # service-token check, in front of the framework's exception handling and routing.
    app.user_middleware.append(Middleware(SearchFastPath))
    app.include_router(search_router)
    app.include_router(internal_router)
    return app
