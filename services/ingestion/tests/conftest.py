"""Fixtures that run ingestion the way it runs in production: retrieval, the ingestion API and a
Celery worker as real processes on loopback, against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragfleet.devstack.processes import ManagedProcess, free_port, python_module, wait_until
from ragfleet.testkit.pytest_plugin import RunningService, ServiceStarter

TENANT = "acme"


@dataclass
class IngestionStack:
    retrieval: RunningService
    api: RunningService
    worker_env: dict[str, str]
    log_dir: Path
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def worker(self) -> ManagedProcess:
        return self.workers[-1]

    def start_worker(self) -> ManagedProcess:
        """Start a worker and wait until it has run a task (the worker has no HTTP port of its own)."""
        process = ManagedProcess(
            f"worker-{len(self.workers)}",
            python_module("ragfleet.ingestion.worker"),
            self.log_dir / f"worker-{len(self.workers)}.log",
            env=self.worker_env,
        ).start()
        self.workers.append(process)

        def answered() -> bool:
            try:
                return httpx.post(f"{self.api.url}/v1/worker-check", timeout=15).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answered, timeout_s=60, what="ingestion worker", process=process)
        return process

    def client(self, tenant: str = TENANT) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"X-Ragfleet-Tenant": tenant}, timeout=30)

    def retrieval_client(self, tenant: str = TENANT) -> httpx.Client:
        return httpx.Client(base_url=self.retrieval.url, headers={"X-Ragfleet-Tenant": tenant}, timeout=30)

    def wait_for_job(self, job_id: str, tenant: str = TENANT, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self.client(tenant) as client:
            while time.monotonic() < deadline:
                job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
                if job["state"] in ("succeeded", "failed"):
                    return job
                time.sleep(0.2)
        raise AssertionError(f"job {job_id} not finished after {timeout_s}s: {job}")


@pytest.fixture
def stack_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Extra ingestion settings for one test: ``@pytest.mark.parametrize("stack_settings", [{..}],
    indirect=True)``."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def stack(
    run_service: ServiceStarter, redis_url: str, tmp_path: Path, stack_settings: dict[str, str]
) -> Iterator[IngestionStack]:
    retrieval = run_service(
        "retrieval",
        "ragfleet.retrieval",
        "RAGFLEET_RETRIEVAL_",
        {
            "REDIS_URL": redis_url,
            "DATA_DIR": str(tmp_path / "index"),
            "EMBED_THREADS": "1",
            "ACCESS_LOG": "false",
            "MAX_COLLECTIONS_PER_TENANT": "5",
        },
    )
    settings = {
        "RAGFLEET_INGESTION_REDIS_URL": redis_url,
        "RAGFLEET_INGESTION_RETRIEVAL_URL": retrieval.url,
        "RAGFLEET_INGESTION_ENVIRONMENT": "development",
        "RAGFLEET_INGESTION_ACCESS_LOG": "false",
        # Small documents and a short visibility timeout: a killed worker's task comes back in
        # seconds, not in the production hour. The task time limit follows it (90 %), so it
        # must leave a cold worker (model load, parser start: ~35 s on a busy 2-core box) time.
        "RAGFLEET_INGESTION_VISIBILITY_TIMEOUT_S": "60",
        "RAGFLEET_INGESTION_UNACKED_RESTORE_INTERVAL_S": "1",
        "RAGFLEET_INGESTION_MAX_DOCUMENT_BYTES": str(2 * 1024 * 1024),
        "RAGFLEET_INGESTION_RETRY_BACKOFF_S": "0.5",
        "RAGFLEET_INGESTION_CHUNK_SIZE_CHARS": "400",
        "RAGFLEET_INGESTION_CHUNK_OVERLAP_CHARS": "60",
        "RAGFLEET_INGESTION_MAX_CHUNKS_PER_DOCUMENT": "300",
        **stack_settings,
    }
    api = run_service("ingestion", "ragfleet.ingestion", "RAGFLEET_INGESTION_", settings)
    worker_env = {
        **settings,
        "RAGFLEET_INGESTION_WORKER_CONCURRENCY": "2",
        "RAGFLEET_INGESTION_WORKER_METRICS_PORT": str(free_port()),
        "RAGFLEET_INGESTION_METRICS_DIR": str(tmp_path / "worker-metrics"),
    }
    stack = IngestionStack(retrieval, api, worker_env, tmp_path / "logs")
    stack.start_worker()
    yield stack
    for worker in stack.workers:
        worker.stop()
