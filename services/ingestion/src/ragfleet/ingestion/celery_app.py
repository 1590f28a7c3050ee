"""The Celery application shared by the ingestion API (which enqueues) and the worker (which runs)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from celery.signals import setup_logging

from ragfleet.common.logging import configure_logging
from ragfleet.ingestion import broker, task_tracing
from ragfleet.ingestion.config import IngestionSettings


def create_celery(settings: IngestionSettings) -> Celery:
    app = Celery("ragfleet.ingestion", broker=settings.broker, backend=settings.result_backend)
    if urlsplit(settings.broker).scheme in broker.SCHEMES:
        # kombu's Redis transport with the fix that keeps a worker alive when its broker drops
        # (broker.py says which fault and why).
        app.conf.broker_transport = broker.TRANSPORT
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only once it finished, and requeued if its worker dies mid-task:
        # a SIGKILLed worker loses nothing.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        worker_max_memory_per_child=settings.worker_max_memory_per_child_kb,
        worker_hijack_root_logger=False,
        # Failures are recorded by the task itself (job status, dead letters); a task that raised
        # anyway is acknowledged rather than redelivered forever.
        task_acks_on_failure_or_timeout=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Sweep for tasks of dead workers every interval (not every interval x 10).
            "unacked_restore_interval": settings.unacked_restore_interval_s,
            "unacked_restore_throttle": 1,
            # The sweep runs under a Redis lock that kombu holds for 5 minutes by default if its
            # holder dies: a worker SIGKILLed mid-sweep (it sweeps every interval) then kept every
            # other worker from giving back its tasks for 5 minutes. A sweep of a few messages
            # takes milliseconds; should two ever overlap, a task runs twice, which is harmless
            # (tasks are idempotent).
            "unacked_mutex_expire": 10,
        },
        broker_connection_retry_on_startup=True,
        # A task running when the broker drops goes on: its document's result is written once the
        # state Redis is back. Its ack cannot reach the new connection, so the broker delivers it
        # again after the visibility timeout, and that copy finds its document done. (Cancelling
        # it instead would throw the work away for the same redelivery.)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        result_expires=24 * 3600,
        # After a state Redis restart the first result write (the STARTED state) hits a pooled
        # connection the restart reset; without retries the task failed there and only the
        # reconciler sent it again, minutes later (seen by make test-containers).
        result_backend_always_retry=True,
        result_backend_max_retries=10,
        task_track_started=True,
        task_default_queue=settings.queue_name,
        # Bounded work per document (the ingest engineer's part of this file): the soft limit
        # raises inside the task, which records the document as failed; the hard limit kills the
        # pool process if that did not end it (the task's on_failure records it). Both stay below
        # the visibility timeout, so a task is never delivered again while it still runs.
        task_soft_time_limit=settings.soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        # The worker check has a queue of its own, so a backlog of documents never delays it.
        task_routes={"ragfleet.ingestion.ping": {"queue": settings.control_queue}},
    )
    app.autodiscover_tasks(["ragfleet.ingestion"], related_name="tasks", force=True)
    task_tracing.install()
    return app


@setup_logging.connect
def _json_logging(**_: Any) -> None:
    configure_logging("ingestion-worker", IngestionSettings().log_level)


celery_app = create_celery(IngestionSettings())
