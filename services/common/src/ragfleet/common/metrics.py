"""Prometheus metrics that stay correct with several uvicorn workers.

With more than one worker each process writes its samples to files in a shared directory
(prometheus_client's multiprocess mode) and ``/metrics`` aggregates them, whichever worker answers.
The directory must be known before ``prometheus_client`` is first imported in a worker, so
``prepare_multiprocess_dir`` runs in the parent, before uvicorn starts the workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.responses import Response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "ragfleet_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "ragfleet_http_request_duration_seconds",
    "HTTP request latency, by route template.",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS_S,
)
HTTP_IN_FLIGHT = Gauge(
    "ragfleet_http_requests_in_flight",
    "HTTP requests being served right now.",
    ["service"],
    multiprocess_mode="livesum",
)

# The query micro-batcher (ragfleet.common.embeddings.MicroBatcher): what a miss's embedding waits
# for under load — the batches' sizes and run times, each text's wait, and what was refused.
EMBED_BATCH_TEXTS = Histogram(
    "ragfleet_embed_batch_texts",
    "Texts per micro-batch sent to the embedding model.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
EMBED_BATCH_DURATION = Histogram(
    "ragfleet_embed_batch_duration_seconds",
    "Wall time of one micro-batch in the embedding model.",
    buckets=LATENCY_BUCKETS_S,
)
EMBED_WAIT_DURATION = Histogram(
    "ragfleet_embed_wait_duration_seconds",
    "Time from a text's arrival at the micro-batcher to its vector (queued plus its batch).",
    buckets=LATENCY_BUCKETS_S,
)
EMBED_REFUSED = Counter(
    "ragfleet_embed_refused_total",
    "Texts the micro-batcher did not embed: queue_full, expected_wait (over the caller's bound "
    "at arrival) or deadline (not embedded within the caller's bound).",
    ["reason"],
)


def prepare_multiprocess_dir(configured: str | None) -> str:
    """Create (or empty) the multiprocess directory and export it for the worker processes.

    Writing the variable is the one place ragfleet touches ``os.environ``: prometheus_client reads
    it in each worker at import time and has no other way to be told.
    """
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="ragfleet-metrics-"))
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)


def current_registry() -> CollectorRegistry:
    """What a scrape reports: every worker's samples in multiprocess mode, else this process's."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
        return registry
    return REGISTRY


def render_latest() -> bytes:
    return generate_latest(current_registry())


def start_metrics_listener(host: str, port: int) -> None:
    """Serve ``/metrics`` on a port of its own, from a thread of the calling process.

    ``serve`` calls it in the process that starts uvicorn: with one worker that process serves the
    app, so its own registry is the whole story; with several it is their supervisor, and the
    multiprocess collector (which reads the workers' files at each scrape) sums them. Either way
    one listener answers for the whole pod, whichever worker served the requests.
    """
    start_http_server(port, addr=host, registry=current_registry())


async def metrics_endpoint() -> Response:
    return Response(render_latest(), media_type=CONTENT_TYPE_LATEST)
