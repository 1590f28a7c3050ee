"""Typed dependencies: what the lifespan built, one alias per part (idiom: ``ragfleet.common.dependencies``)."""

from __future__ import annotations

from typing import Annotated

from ragfleet.common.dependencies import from_app_state
from ragfleet.llm_proxy.breaker import BreakerBoard
from ragfleet.llm_proxy.builtin_embeddings import BuiltinEmbeddings
from ragfleet.llm_proxy.config import LlmProxySettings
from ragfleet.llm_proxy.dispatcher import Dispatcher
from ragfleet.llm_proxy.quotas import Limiter
from ragfleet.llm_proxy.registry import ModelRegistry
from ragfleet.llm_proxy.response_cache import ResponseCache

SettingsDep = Annotated[LlmProxySettings, from_app_state("settings")]
RegistryDep = Annotated[ModelRegistry, from_app_state("registry")]
BreakersDep = Annotated[BreakerBoard, from_app_state("breakers")]
DispatcherDep = Annotated[Dispatcher, from_app_state("dispatcher")]
LimiterDep = Annotated[Limiter, from_app_state("limiter")]
# None when the response cache is turned off.
ResponseCacheDep = Annotated[ResponseCache | None, from_app_state("response_cache")]
# None when the built-in embedding model is turned off.
BuiltinEmbeddingsDep = Annotated[BuiltinEmbeddings | None, from_app_state("builtin_embeddings")]
