"""A worker outlives its broker: the state Redis SIGKILLed while a task runs and started again from
its own configuration, over and over; the same worker process then still takes tasks.

On Celery/kombu 5.7 without ``ragfleet.ingestion.broker`` the worker exits within a few rounds
("Unrecoverable error: AttributeError('NoneType' object has no attribute 'hostname')"): the fault
needs the drop to be noticed on the remote-control socket while a BRPOP is in flight, so one task
runs while a pool slot stays free, and the kill is repeated."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from ragfleet.devstack.processes import ManagedProcess, free_port, start_redis, wait_redis
from ragfleet.ingestion.celery_app import create_celery
from ragfleet.ingestion.config import IngestionSettings

pytestmark = pytest.mark.integration

PASSWORD = "broker-loss-test"
ROUNDS = 8


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[int, ManagedProcess]]:
    port = free_port()
    redis = start_redis(port, tmp_path / "redis", role="state", password=PASSWORD)
    yield port, redis
    redis.stop()


def test_a_worker_survives_its_broker_being_killed_mid_task(
    broker: tuple[int, ManagedProcess], tmp_path: Path
) -> None:
    port, redis = broker
    env = {
        "RAGFLEET_INGESTION_STATE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "RAGFLEET_INGESTION_STATE_REDIS_PASSWORD": PASSWORD,
        "RAGFLEET_INGESTION_ENVIRONMENT": "development",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    worker = ManagedProcess(
        "worker",
        [sys.executable, "-m", "celery", "-A", "broker_loss_app", "worker", "--queues=ingestion",
         "--concurrency=2", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        tmp_path / "worker.log",
        env=env,
    ).start()  # fmt: skip
    client: Celery = create_celery(
        IngestionSettings(state_redis_url=f"redis://127.0.0.1:{port}/0", state_redis_password=PASSWORD)
    )
    try:
        assert client.send_task("test.sleep", args=[0]).get(timeout=60) == 0
        for round_ in range(ROUNDS):
            running = client.send_task("test.sleep", args=[3])
            deadline = time.monotonic() + 30
            while running.state != "STARTED":  # task_track_started: it is in the pool, unacknowledged
                assert time.monotonic() < deadline, "the task did not start"
                time.sleep(0.05)
            redis.kill()
            time.sleep(1)
            redis = ManagedProcess(redis.name, redis.argv, redis.log_path).start()
            wait_redis(port, PASSWORD, process=redis)
            try:
                client.send_task("test.sleep", args=[0]).get(timeout=60)
            except CeleryTimeoutError:
                pytest.fail(
                    f"no answer after round {round_}; worker alive: {worker.alive()}\n{worker.tail(40)}"
                )
            assert worker.alive(), f"the worker exited in round {round_}:\n{worker.tail(40)}"
    finally:
        worker.stop()
        redis.stop()
