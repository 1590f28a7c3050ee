"""Typed dependencies: the clients the lifespan created, one alias each (idiom: ``ragfleet.common.dependencies``)."""

from __future__ import annotations

from typing import Annotated

import httpx
from celery import Celery
from redis.asyncio import Redis

from ragfleet.common.dependencies import from_app_state
from ragfleet.ingestion.config import IngestionSettings

SettingsDep = Annotated[IngestionSettings, from_app_state("settings")]
# The state Redis: job records and staged documents.
StateRedisDep = Annotated[Redis, from_app_state("redis")]
CeleryDep = Annotated[Celery, from_app_state("celery")]
# The pooled client for retrieval's internal API (base URL and service token set).
RetrievalDep = Annotated[httpx.AsyncClient, from_app_state("retrieval")]
