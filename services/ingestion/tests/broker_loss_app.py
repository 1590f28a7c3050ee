"""A Celery app built by ingestion's own ``create_celery`` (so with its broker transport and every
option the worker runs with) plus one task that takes as long as it is told: the worker of
``test_broker_loss_integration``. Test code; no image has it."""

from __future__ import annotations

import time

from ragfleet.ingestion.celery_app import create_celery
from ragfleet.ingestion.config import IngestionSettings

app = create_celery(IngestionSettings())


@app.task(name="test.sleep", acks_late=True)
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
