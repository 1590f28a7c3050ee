"""``python -m ragfleet.ingestion.worker``: the Celery worker (same image as the API, another command)."""

from __future__ import annotations

import logging
import socket

from ragfleet.ingestion.config import IngestionSettings

log = logging.getLogger("ragfleet.ingestion.worker")


def start_metrics_server(settings: IngestionSettings) -> None:
    """Serve the worker's Prometheus metrics, summed over its pool processes.

    Pool processes are forked, so they write their samples to files in a shared directory only if
    the instruments were created in multiprocess mode. Importing the common metrics module loads
    prometheus_client before the directory is known, so its value class is chosen again here;
    the Celery app (and with it the tasks and their instruments) is imported only afterwards.
    """
    from prometheus_client import values

    from ragfleet.common.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(settings.metrics_dir)
    values.ValueClass = values.get_value_class()
    if settings.worker_metrics_port == 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.worker_metrics_port, addr=settings.host, registry=registry)


def main() -> None:
    settings = IngestionSettings()
    start_metrics_server(settings)
    from ragfleet.ingestion.celery_app import celery_app

    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            f"--hostname=ingestion@{settings.replica_name or socket.gethostname()}",
            f"--queues={settings.queue_name},{settings.control_queue}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
