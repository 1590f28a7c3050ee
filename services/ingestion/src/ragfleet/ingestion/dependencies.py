"""Typed dependencies: the clients the lifespan created, one alias each, reached by the routes.

All ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from celery import Celery
from fastapi import Depends, Request
from redis.asyncio import Redis

from ragfleet.ingestion.config import IngestionSettings


async def get_settings(request: Request) -> IngestionSettings:
    settings: IngestionSettings = request.app.state.settings
    return settings


async def get_state_redis(request: Request) -> Redis:
    """The state Redis: job records and staged documents."""
    redis: Redis = request.app.state.redis
    return redis


async def get_celery(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


async def get_retrieval(request: Request) -> httpx.AsyncClient:
    """The pooled client for retrieval's internal API (base URL and service token set)."""
    retrieval: httpx.AsyncClient = request.app.state.retrieval
    return retrieval


SettingsDep = Annotated[IngestionSettings, Depends(get_settings)]
StateRedisDep = Annotated[Redis, Depends(get_state_redis)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
RetrievalDep = Annotated[httpx.AsyncClient, Depends(get_retrieval)]
