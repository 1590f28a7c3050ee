"""Celery tasks of the ingestion worker."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from celery import shared_task

log = logging.getLogger("ragfleet.ingestion.tasks")


@shared_task(name="ragfleet.ingestion.ping")
def ping(sent_at: float) -> dict[str, Any]:
    """Proves a real worker consumes the queue: answers with who ran it and how long it waited."""
    log.info("worker check task ran")
    return {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "queued_ms": round((time.time() - sent_at) * 1000, 2),
    }
