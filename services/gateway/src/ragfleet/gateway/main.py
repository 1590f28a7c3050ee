"""The gateway: ragfleet's only public service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from ragfleet.common.app import create_service_app
from ragfleet.common.cache import TwoTierCache
from ragfleet.common.clients import create_http_client, create_http_session, create_redis
from ragfleet.gateway.auth import Authenticator
from ragfleet.gateway.benchmarks import LocalRunner, create_runner
from ragfleet.gateway.chat import ChatService
from ragfleet.gateway.chat_cache import ChatAnswerCache
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.keys import KeyStore
from ragfleet.gateway.memory import ConversationStore
from ragfleet.gateway.ratelimit import RateLimiter
from ragfleet.gateway.routers import benchmarks as benchmark_routes
from ragfleet.gateway.routers import chat as chat_routes
from ragfleet.gateway.routers import documents as document_routes
from ragfleet.gateway.routers import search as search_routes
from ragfleet.gateway.routers import sessions as session_routes
from ragfleet.gateway.routers import stats as stats_routes
from ragfleet.gateway.routers.console import mount_console
from ragfleet.gateway.search_answers import SearchAnswers
from ragfleet.gateway.stats import GatewayStats, InFlightMiddleware, RetrievalCacheStats
from ragfleet.gateway.streams import StreamBuffer
from ragfleet.gateway.upload_slots import UploadSlots


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    stats = GatewayStats(settings.replica_name, settings.stats_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # API keys on the state Redis (they must survive); everything else the gateway keeps in
        # Redis is rebuildable, so on the cache Redis: rate-limit buckets, stream buffers, the edge
        # cache and conversation windows. A conversation is a 24 h convenience: losing one to an
        # eviction or a restart forgets a chat and loses no accepted data, and keeping it off the
        # state Redis keeps chat traffic (a write per message) off the server that must not fill up.
        redis = create_redis(settings, "cache")
        state_redis = create_redis(settings, "state")
        http = create_http_client(settings)
        session = create_http_session(settings)
        downstream = Downstream(http, session, settings)
        memory = ConversationStore(redis, window=settings.memory_window, ttl_s=settings.memory_ttl_s)
        # Tailers block on Redis for less than the socket timeout, so a quiet stream is not an error.
        block_ms = max(50, int(settings.redis_socket_timeout_s * 500))
        buffer = StreamBuffer(
            redis,
            ttl_s=settings.stream_buffer_ttl_s,
            lease_s=settings.stream_lease_s,
            replica=settings.replica_name,
            block_ms=block_ms,
        )
        edge_cache = None
        if settings.search_edge_cache or settings.chat_cache:
            edge_cache = TwoTierCache(
                redis,
                service="gateway",
                config=settings.cache_config(),
                replica=settings.replica_name,
                versions=state_redis,
            )
            await edge_cache.start()
        search_answers = SearchAnswers(downstream, edge_cache if settings.search_edge_cache else None)
        answer_cache = (
            ChatAnswerCache(edge_cache, verify_rate=settings.chat_cache_verify_rate)
            if edge_cache is not None and settings.chat_cache
            else None
        )
        chat = ChatService(settings, downstream, search_answers, memory, buffer, stats, answer_cache)
        app.state.redis = redis
        app.state.state_redis = state_redis
        app.state.http = http
        app.state.stats = stats
        app.state.downstream = downstream
        app.state.memory = memory
        app.state.chat = chat
        app.state.search_answers = search_answers
        app.state.upload_slots = UploadSlots(
            redis, settings.max_concurrent_uploads_per_key, settings.upload_slot_stale_s
        )
        runner = app.state.benchmark_runner = create_runner(settings, http)
        app.state.authenticator = Authenticator(KeyStore(state_redis), RateLimiter(redis), settings)
        app.state.retrieval_cache_stats = RetrievalCacheStats(
            http, f"{downstream.retrieval}/v1/cache/stats" if downstream.retrieval else None
        )
        try:
            yield
        finally:
            await chat.drain(settings.graceful_shutdown_s)
            if isinstance(runner, LocalRunner):
                await runner.close()
            if edge_cache is not None:
                await edge_cache.close()
            await http.aclose()
            await session.close()
            await redis.aclose()  # type: ignore[attr-defined]
            await state_redis.aclose()  # type: ignore[attr-defined]

    app = create_service_app(
        settings,
        title="ragfleet gateway",
        description="The public API of ragfleet: search, RAG chat (REST, SSE, WebSocket), documents.",
        lifespan=lifespan,
        # No readiness checks: Redis and the services behind the gateway are other pods. With one
        # of them down its features answer 503 and the rest (cached searches included) serve on.
        observer=stats.observe,
        public=True,  # clients authenticate with API keys (auth.py); its own calls carry the token
    )
    # Innermost (appended, where add_middleware prepends): inside the request context, in front
    # of the framework's exception handling and routing.
    app.user_middleware.append(Middleware(search_routes.EdgeSearchMiddleware))
    app.add_middleware(InFlightMiddleware, stats=stats)
    if settings.gzip_min_bytes:
        # GZip leaves text/event-stream alone, so streamed events are never held back to compress.
        app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=5)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "X-Ragfleet-Replica",
                "X-Ragfleet-Stream-Id",
                "X-Ragfleet-Session-Id",
                "X-Cache",
                "Retry-After",
            ],
            max_age=600,
        )
    for routes in (
        search_routes,
        chat_routes,
        session_routes,
        document_routes,
        stats_routes,
        benchmark_routes,
    ):
        app.include_router(routes.router)
    mount_console(app)
    return app
