"""Fixtures and helpers of retrieval's integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragfleet.common.contracts import TENANT_HEADER
from ragfleet.testkit.fake_llm import FakeUpstreamControl
from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

# What `retrieval_on_fake_embedder` starts: the fake server's control, and retrieval.
FakeEmbedderStack = tuple[FakeUpstreamControl, RunningService]


def start_retrieval(
    run_service: ServiceStarter, redis_url: str, data_dir: Path, name: str = "retrieval", **extra: str
) -> RunningService:
    """A retrieval process of its own on the test Redis, one embedding thread, no access log;
    ``extra``: more ``RAGFLEET_RETRIEVAL_`` settings."""
    env = {"REDIS_URL": redis_url, "DATA_DIR": str(data_dir), "EMBED_THREADS": "1", "ACCESS_LOG": "false"}
    return run_service(
        name, "ragfleet.retrieval", "RAGFLEET_RETRIEVAL_", {**env, **extra}, ready_path="/readyz"
    )


def upsert_chunks(
    service: RunningService, collection: str, chunks: list[dict[str, Any]], tenant: str
) -> None:
    """Write ``chunks`` through retrieval's internal API; fails the test unless it answers 200."""
    written = httpx.post(
        f"{service.url}/internal/v1/collections/{collection}/upsert",
        json={"chunks": chunks},
        headers={TENANT_HEADER: tenant},
        timeout=30,
    )
    assert written.status_code == 200, written.text


@pytest.fixture
def retrieval_on_fake_embedder(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., FakeEmbedderStack]]:
    """Starts the testkit's OpenAI-protocol server (the stand-in for a slow or starved embedder;
    its request log says what was embedded) and a retrieval that embeds through it, 384-d;
    ``env``: more ``RAGFLEET_RETRIEVAL_`` settings."""
    controls: list[FakeUpstreamControl] = []

    def start(**env: str) -> FakeEmbedderStack:
        fake = run_service("fake-upstream", "ragfleet.testkit.fake_llm", "RAGFLEET_FAKE_UPSTREAM_")
        control = FakeUpstreamControl(fake.url)
        controls.append(control)
        control.default(embedding_dim=384)  # the store's dimension, before retrieval checks it
        retrieval = start_retrieval(
            run_service,
            redis_url,
            tmp_path / "data",
            EMBEDDING_PROVIDER="openai",
            EMBEDDING_URL=f"{fake.url}/v1",
            EMBEDDING_MODEL="fake",
            EMBEDDING_DIM="384",
            EMBEDDING_MAX_RETRIES="0",
            **env,
        )
        return control, retrieval

    yield start
    for control in controls:
        control.close()
