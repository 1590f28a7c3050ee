"""The llm-proxy: an OpenAI-compatible front for any OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ragfleet.common.app import create_service_app
from ragfleet.common.cache import CacheConfig, TwoTierCache
from ragfleet.common.clients import create_redis
from ragfleet.llm_proxy.breaker import BreakerBoard, BreakerConfig
from ragfleet.llm_proxy.builtin_embeddings import BuiltinEmbeddings
from ragfleet.llm_proxy.config import BUILTIN_EMBEDDING_MODEL, LlmProxySettings
from ragfleet.llm_proxy.dispatcher import Dispatcher
from ragfleet.llm_proxy.fast_path import ChatCompletionsFastPath, EmbeddingsFastPath
from ragfleet.llm_proxy.quotas import ConcurrencyLimit, Limiter
from ragfleet.llm_proxy.registry import ModelRegistry
from ragfleet.llm_proxy.response_cache import ResponseCache
from ragfleet.llm_proxy.routes import router
from ragfleet.llm_proxy.shedding import LoadShedder, LoopLag
from ragfleet.llm_proxy.upstream_http import UpstreamClient


class ReceivedAt:
    """Outermost middleware: stamps when a request arrived, so the overhead header covers all of it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["proxy_received_at"] = time.perf_counter()
        await self.app(scope, receive, send)


def create_app(settings: LlmProxySettings | None = None) -> FastAPI:
    settings = settings or LlmProxySettings()
    deployments = settings.deployments  # read and validated now: a bad model list stops the start
    loop_lag = LoopLag()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Breaker state, usage counters and cached responses: all rebuildable, so the cache Redis.
        redis = app.state.redis = create_redis(settings, "cache")
        # Its calls go to model upstreams outside the platform: never with the service token.
        http = app.state.http = UpstreamClient(
            settings.http_max_connections, max_response_bytes=settings.upstream_max_response_bytes
        )
        registry = ModelRegistry(deployments, http)
        breakers = BreakerBoard(
            redis,
            BreakerConfig(
                failure_threshold=settings.breaker_failure_threshold,
                window_s=settings.breaker_window_s,
                open_s=settings.breaker_open_s,
                probe_timeout_s=settings.breaker_probe_timeout_s,
            ),
            sync_interval_s=settings.breaker_sync_interval_s,
        )
        cache: TwoTierCache | None = None
        if settings.cache_enabled:
            cache = TwoTierCache(
                redis,
                service=settings.service_name,
                config=CacheConfig(
                    l1_max_entries=settings.cache_l1_max_entries,
                    l1_ttl_s=settings.cache_l1_ttl_s,
                    l2_ttl_s=settings.cache_ttl_s,
                ),
            )
            await cache.start()
        embeddings = BuiltinEmbeddings(BUILTIN_EMBEDDING_MODEL) if settings.embeddings_builtin else None
        # What the routes reach through dependencies.py, one part each.
        app.state.registry = registry
        app.state.breakers = breakers
        app.state.dispatcher = Dispatcher(registry, breakers, settings)
        limiter = app.state.limiter = Limiter(redis, retention_days=settings.usage_retention_days)
        app.state.response_cache = (
            ResponseCache(cache, max_entry_bytes=settings.cache_max_entry_bytes) if cache else None
        )
        app.state.builtin_embeddings = embeddings
        flusher = asyncio.create_task(limiter.run(settings.usage_flush_interval_s))
        # What start-up built (modules, schemas, clients: ~100k objects) lives as long as the
        # process: out of the collector's reach, so that a full collection, which walked all of
        # it in the middle of requests (130-160 ms each on the 2-vCPU benchmark machine), scans
        # only what requests made.
        gc.freeze()
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            if embeddings is not None:
                await embeddings.close()
            if cache is not None:
                await cache.close()
            await http.close()
            await redis.aclose()  # type: ignore[attr-defined]  # the stubs predate redis 5

    app = create_service_app(
        settings,
        title="ragfleet llm-proxy",
        description="OpenAI-compatible chat completions and embeddings with retries, breaker and cache.",
        lifespan=lifespan,
        # Redis (limits, breaker state, cache) is another pod, and the proxy serves without it.
        # Innermost, inside the request context: a refusal has its request id like any error.
        middleware=[Middleware(ConcurrencyLimit, max_per_key=settings.max_concurrent_per_key)]
        if settings.max_concurrent_per_key
        else [],
    )
    # Innermost (appended, where add_middleware prepends): inside the request context, the
    # service-token check and the concurrency limit, in front of the framework's routing.
    app.user_middleware += [Middleware(ChatCompletionsFastPath), Middleware(EmbeddingsFastPath)]
    app.include_router(router)
    app.add_middleware(ReceivedAt)
    # Outermost: a request refused for lag costs no routing, no parsing, no span.
    app.add_middleware(LoadShedder, lag=loop_lag, max_lag_s=settings.max_loop_lag_s)
    return app
