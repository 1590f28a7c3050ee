"""Typed dependencies: what the lifespan built, one alias per part, reached by the routes.

All ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ragfleet.llm_proxy.breaker import BreakerBoard
from ragfleet.llm_proxy.builtin_embeddings import BuiltinEmbeddings
from ragfleet.llm_proxy.config import LlmProxySettings
from ragfleet.llm_proxy.dispatcher import Dispatcher
from ragfleet.llm_proxy.quotas import Limiter
from ragfleet.llm_proxy.registry import ModelRegistry
from ragfleet.llm_proxy.response_cache import ResponseCache


async def get_settings(request: Request) -> LlmProxySettings:
    settings: LlmProxySettings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_breakers(request: Request) -> BreakerBoard:
    breakers: BreakerBoard = request.app.state.breakers
    return breakers


async def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def get_limiter(request: Request) -> Limiter:
    limiter: Limiter = request.app.state.limiter
    return limiter


async def get_response_cache(request: Request) -> ResponseCache | None:
    """``None`` when the response cache is turned off."""
    cache: ResponseCache | None = request.app.state.response_cache
    return cache


async def get_builtin_embeddings(request: Request) -> BuiltinEmbeddings | None:
    """``None`` when the built-in embedding model is turned off."""
    embeddings: BuiltinEmbeddings | None = request.app.state.builtin_embeddings
    return embeddings


SettingsDep = Annotated[LlmProxySettings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
BreakersDep = Annotated[BreakerBoard, Depends(get_breakers)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]
ResponseCacheDep = Annotated[ResponseCache | None, Depends(get_response_cache)]
BuiltinEmbeddingsDep = Annotated[BuiltinEmbeddings | None, Depends(get_builtin_embeddings)]
