"""Backends for the shared contract suite: embedded always; Weaviate when WEAVIATE_URL is set."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragfleet.retrieval.store.base import VectorStore
from ragfleet.retrieval.store.embedded import EmbeddedVectorStore

DIM = 32  # small random vectors keep the suite fast; the real-embedding tests use 384


class StoreTestSettings(BaseSettings):
    """Where an optional Weaviate server for the contract suite lives (env WEAVIATE_URL)."""

    model_config = SettingsConfigDict(extra="ignore")

    weaviate_url: str | None = None


StoreFactory = Callable[..., VectorStore]


@pytest.fixture(params=["embedded", "weaviate"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "weaviate" and not StoreTestSettings().weaviate_url:
        pytest.skip("WEAVIATE_URL is not set: no Weaviate server to run the contract suite against")
    return str(request.param)


@pytest.fixture
async def make_store(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of the chosen backend; a second call reopens the same data (a restart)."""
    opened: list[VectorStore] = []
    # Weaviate is shared between runs: a unique class prefix keeps each test's data its own.
    prefix = f"T{uuid.uuid4().hex[:8]}"

    def factory(dim: int = DIM) -> VectorStore:
        store: VectorStore
        if backend == "embedded":
            store = EmbeddedVectorStore(tmp_path / "data", dim=dim)
        else:
            from ragfleet.retrieval.store.weaviate import WeaviateVectorStore

            url = StoreTestSettings().weaviate_url
            assert url
            store = WeaviateVectorStore(url, dim=dim, class_prefix=prefix)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
