"""Fixtures of retrieval's integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragfleet.testkit.fake_llm import FakeUpstreamControl
from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

# What `retrieval_on_fake_embedder` starts: the fake server's control, and retrieval.
FakeEmbedderStack = tuple[FakeUpstreamControl, RunningService]


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
        retrieval = run_service(
            "retrieval",
            "ragfleet.retrieval",
            "RAGFLEET_RETRIEVAL_",
            {
                "REDIS_URL": redis_url,
                "DATA_DIR": str(tmp_path / "data"),
                "ACCESS_LOG": "false",
                "EMBEDDING_PROVIDER": "openai",
                "EMBEDDING_URL": f"{fake.url}/v1",
                "EMBEDDING_MODEL": "fake",
                "EMBEDDING_DIM": "384",
                "EMBEDDING_MAX_RETRIES": "0",
                **env,
            },
            ready_path="/readyz",
        )
        return control, retrieval

    yield start
    for control in controls:
        control.close()
