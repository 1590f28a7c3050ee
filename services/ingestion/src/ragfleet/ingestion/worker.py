"""``python -m ragfleet.ingestion.worker``: the Celery worker (same image as the API, another command)."""

from __future__ import annotations

import socket

from ragfleet.ingestion.celery_app import celery_app
from ragfleet.ingestion.config import IngestionSettings


def main() -> None:
    settings = IngestionSettings()
    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={settings.log_level}",
            f"--concurrency={settings.worker_concurrency}",
            f"--hostname=ingestion@{settings.replica_name or socket.gethostname()}",
            "--queues=ingestion",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
