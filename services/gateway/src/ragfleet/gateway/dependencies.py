"""Typed dependencies: what the lifespan created, one alias each (idiom: ``ragfleet.common.dependencies``)."""

from __future__ import annotations

from typing import Annotated

import httpx
from redis.asyncio import Redis

from ragfleet.common.dependencies import from_app_state
from ragfleet.gateway.benchmarks import Runner
from ragfleet.gateway.chat import ChatService
from ragfleet.gateway.config import GatewaySettings
from ragfleet.gateway.downstream import Downstream
from ragfleet.gateway.memory import ConversationStore
from ragfleet.gateway.search_answers import SearchAnswers
from ragfleet.gateway.stats import GatewayStats, RetrievalCacheStats
from ragfleet.gateway.upload_slots import UploadSlots

SettingsDep = Annotated[GatewaySettings, from_app_state("settings")]
RedisDep = Annotated[Redis, from_app_state("redis")]
HttpDep = Annotated[httpx.AsyncClient, from_app_state("http")]
StatsDep = Annotated[GatewayStats, from_app_state("stats")]
RetrievalCacheStatsDep = Annotated[RetrievalCacheStats, from_app_state("retrieval_cache_stats")]
ChatDep = Annotated[ChatService, from_app_state("chat")]
DownstreamDep = Annotated[Downstream, from_app_state("downstream")]
MemoryDep = Annotated[ConversationStore, from_app_state("memory")]
SearchAnswersDep = Annotated[SearchAnswers, from_app_state("search_answers")]
UploadSlotsDep = Annotated[UploadSlots, from_app_state("upload_slots")]
# None when the benchmark API is off (``benchmark_mode``).
BenchmarkRunnerDep = Annotated[Runner | None, from_app_state("benchmark_runner")]
