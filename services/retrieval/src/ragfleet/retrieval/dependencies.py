"""Typed dependencies: the tenant of a request and the clients the lifespan created.

All ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ragfleet.common.cache import TwoTierCache
from ragfleet.common.embeddings import MicroBatcher
from ragfleet.retrieval.collection_models import CollectionModels
from ragfleet.retrieval.collection_settings import CollectionSettingsStore
from ragfleet.retrieval.config import RetrievalSettings
from ragfleet.retrieval.search.service import SearchService
from ragfleet.retrieval.store import VectorStore, validate_name


async def get_tenant(
    x_ragfleet_tenant: Annotated[
        str, Header(description="set by the gateway from the API key; absent means `default`")
    ] = "default",
) -> str:
    return validate_name("tenant", x_ragfleet_tenant)


async def get_settings(request: Request) -> RetrievalSettings:
    settings: RetrievalSettings = request.app.state.settings
    return settings


async def get_search_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.search
    return service


async def get_store(request: Request) -> VectorStore:
    store: VectorStore = request.app.state.store
    return store


async def get_cache(request: Request) -> TwoTierCache:
    cache: TwoTierCache = request.app.state.cache
    return cache


async def get_batcher(request: Request) -> MicroBatcher:
    batcher: MicroBatcher = request.app.state.batcher
    return batcher


async def get_models(request: Request) -> CollectionModels | None:
    models: CollectionModels | None = request.app.state.models
    return models


async def get_collection_settings(request: Request) -> CollectionSettingsStore:
    store: CollectionSettingsStore = request.app.state.collection_settings
    return store


TenantDep = Annotated[str, Depends(get_tenant)]
SettingsDep = Annotated[RetrievalSettings, Depends(get_settings)]
SearchServiceDep = Annotated[SearchService, Depends(get_search_service)]
StoreDep = Annotated[VectorStore, Depends(get_store)]
CacheDep = Annotated[TwoTierCache, Depends(get_cache)]
BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]
ModelsDep = Annotated[CollectionModels | None, Depends(get_models)]
CollectionSettingsDep = Annotated[CollectionSettingsStore, Depends(get_collection_settings)]
