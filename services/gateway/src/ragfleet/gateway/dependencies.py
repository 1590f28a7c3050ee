"""Typed dependencies: what the lifespan created, read from ``app.state``.

All ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from ragfleet.gateway.benchmarks import Runner
from ragfleet.gateway.chat import ChatService
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.memory import ConversationStore
from ragfleet.gateway.search_answers import SearchAnswers
from ragfleet.gateway.stats import GatewayStats, RetrievalCacheStats


async def get_settings(connection: HTTPConnection) -> GatewaySettings:
    settings: GatewaySettings = connection.app.state.settings
    return settings


async def get_redis(connection: HTTPConnection) -> Redis:
    redis: Redis = connection.app.state.redis
    return redis


async def get_http(connection: HTTPConnection) -> httpx.AsyncClient:
    http: httpx.AsyncClient = connection.app.state.http
    return http


async def get_stats(connection: HTTPConnection) -> GatewayStats:
    stats: GatewayStats = connection.app.state.stats
    return stats


async def get_retrieval_cache_stats(connection: HTTPConnection) -> RetrievalCacheStats:
    fetcher: RetrievalCacheStats = connection.app.state.retrieval_cache_stats
    return fetcher


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
StatsDep = Annotated[GatewayStats, Depends(get_stats)]
RetrievalCacheStatsDep = Annotated[RetrievalCacheStats, Depends(get_retrieval_cache_stats)]


async def get_chat(connection: HTTPConnection) -> ChatService:
    chat: ChatService = connection.app.state.chat
    return chat


async def get_downstream(connection: HTTPConnection) -> Downstream:
    downstream: Downstream = connection.app.state.downstream
    return downstream


async def get_memory(connection: HTTPConnection) -> ConversationStore:
    memory: ConversationStore = connection.app.state.memory
    return memory


ChatDep = Annotated[ChatService, Depends(get_chat)]
DownstreamDep = Annotated[Downstream, Depends(get_downstream)]
MemoryDep = Annotated[ConversationStore, Depends(get_memory)]


async def get_search_answers(connection: HTTPConnection) -> SearchAnswers:
    answers: SearchAnswers = connection.app.state.search_answers
    return answers


SearchAnswersDep = Annotated[SearchAnswers, Depends(get_search_answers)]


async def get_benchmark_runner(connection: HTTPConnection) -> Runner | None:
    """None when the benchmark API is off (``benchmark_mode``)."""
    runner: Runner | None = connection.app.state.benchmark_runner
    return runner


BenchmarkRunnerDep = Annotated[Runner | None, Depends(get_benchmark_runner)]
