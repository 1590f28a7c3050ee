"""Running a service: ``python -m ragfleet.<service>`` ends here."""

from __future__ import annotations

import uvicorn

from ragfleet.common.config import ServiceSettings
from ragfleet.common.logging import configure_logging
from ragfleet.common.metrics import prepare_multiprocess_dir, start_metrics_listener

# uvicorn's own default: the largest WebSocket message read into memory.
DEFAULT_WS_MAX_SIZE_BYTES = 16 * 1024 * 1024


def serve(
    settings: ServiceSettings, app_factory: str, *, ws_max_size_bytes: int = DEFAULT_WS_MAX_SIZE_BYTES
) -> None:
    """Serve ``app_factory`` ("module:function") with uvicorn on uvloop + httptools.

    SIGTERM/SIGINT stop accepting connections and let in-flight requests finish for up to
    ``graceful_shutdown_s``, which is what a Kubernetes rolling update needs. A WebSocket message
    over ``ws_max_size_bytes`` closes its connection (1009) before it is buffered whole.
    """
    configure_logging(settings.service_name, settings.log_level)
    if settings.workers > 1:
        # Only worker processes (fresh interpreters) see the directory at import time; with one
        # worker this process serves, and its prometheus_client is already imported in-memory mode.
        prepare_multiprocess_dir(settings.metrics_dir)
    if settings.metrics_port:
        start_metrics_listener(settings.host, settings.metrics_port)
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        ws_max_size=ws_max_size_bytes,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # Per-address limits (the gateway's anonymous one) see the client an ingress named, and
        # only a trusted ingress can name one.
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        # How long the supervisor waits for a worker to start and to answer its pings before it
        # kills it: uvicorn's 5 s kills workers that a busy node (CPU limits, a neighbour's load)
        # starts in 10-40 s here, and they are restarted into the same wait.
        timeout_worker_healthcheck=settings.worker_healthcheck_timeout_s,
        timeout_keep_alive=30,
    )
