"""Prometheus instruments of the ingestion API and worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DOCUMENTS_INGESTED = Counter(
    "ragfleet_ingestion_documents_total",
    "Documents finished by the worker, by outcome (succeeded, unchanged, failed).",
    ["outcome"],
)
CHUNKS_INGESTED = Counter("ragfleet_ingestion_chunks_total", "Chunks embedded and upserted into the index.")
TEXTS_EMBEDDED = Counter(
    "ragfleet_ingestion_texts_embedded_total",
    "Texts sent to the embedding model: a document's identical chunk texts are embedded once, so "
    "this stays below ragfleet_ingestion_chunks_total by the repeats.",
)
FAILURES = Counter(
    "ragfleet_ingestion_failures_total",
    "Ingestion failures by reason (a document error code, or a transient cause that was retried).",
    ["reason"],
)
TASK_DURATION = Histogram(
    "ragfleet_ingestion_task_duration_seconds",
    "Time a worker spent on one document, by stage.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
QUEUE_DEPTH = Gauge(
    "ragfleet_ingestion_queue_depth",
    "Tasks waiting in the Celery queue (Redis list length): scale workers on this (HPA/KEDA).",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_UNACKED = Gauge(
    "ragfleet_ingestion_tasks_unacked",
    "Tasks taken by a worker and not yet acknowledged (running, or waiting for redelivery).",
    multiprocess_mode="mostrecent",
)
DOCUMENTS_ACCEPTED = Counter(
    "ragfleet_ingestion_documents_accepted_total", "Documents accepted by the API and queued."
)
