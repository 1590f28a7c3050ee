"""Typed dependencies: the tenant of a request and the clients the lifespan created, one alias
each (idiom: ``ragfleet.common.dependencies``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from ragfleet.common.cache import TwoTierCache
from ragfleet.common.dependencies import from_app_state
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


TenantDep = Annotated[str, Depends(get_tenant)]
SettingsDep = Annotated[RetrievalSettings, from_app_state("settings")]
SearchServiceDep = Annotated[SearchService, from_app_state("search")]
StoreDep = Annotated[VectorStore, from_app_state("store")]
CacheDep = Annotated[TwoTierCache, from_app_state("cache")]
BatcherDep = Annotated[MicroBatcher, from_app_state("batcher")]
# None when collections are not checked against the embedding model (`embedding_model_check` off).
ModelsDep = Annotated[CollectionModels | None, from_app_state("models")]
CollectionSettingsDep = Annotated[CollectionSettingsStore, from_app_state("collection_settings")]
