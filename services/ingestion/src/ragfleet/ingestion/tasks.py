"""Celery tasks of the ingestion worker.

One task per document: parse → chunk → embed in batches → replace the document in the index
through retrieval (which bumps the collection's cache version). Why it neither loses nor
duplicates anything:

- ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered again.
- Chunk ids are deterministic (``{document_id}:{position}``) and retrieval's upsert replaces by
  id, so running a document twice writes the same chunks twice, not two copies.
- A changed document's old chunks are deleted before the new ones are written, so a version
  with fewer chunks leaves no leftovers; the delete comes after the (slow) embedding, which keeps
  the window in which the document is missing from search to the duration of the writes.
- An unchanged document (same content hash *and* the full chunk count in the index) is skipped:
  that also makes a redelivery after a crash between the last write and the ack do no work.
- Transient failures (retrieval down, Redis blip) are retried with exponential backoff, a
  bounded number of times; document errors are final; a document that kills its worker
  ``max_worker_crashes`` times, or exhausts its retries, is dead-lettered.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import redis
from celery import Task, shared_task
from celery.exceptions import Retry as CeleryRetry
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_init
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

from ragfleet.ingestion import jobs
from ragfleet.ingestion.chunking import document_title, embedding_text
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.metrics import (
    CHUNKS_INGESTED,
    DOCUMENTS_INGESTED,
    FAILURES,
    TASK_DURATION,
    TEXTS_EMBEDDED,
)
from ragfleet.ingestion.parsers import DocumentError, DocumentFormat
from ragfleet.ingestion.retrieval_client import RetrievalClient, RetrievalRejected, TransientError
from ragfleet.ingestion.sandbox import ParseOptions, ParserProcess
from ragfleet.ingestion.staging import read_staged

log = logging.getLogger("ragfleet.ingestion.tasks")

# Bump when parsing, chunking or what is embedded changes (2: title and heading prefixed;
# 3: HTML read in one walk, keeping text outside blocks).
CHUNKING_VERSION = "3"


@shared_task(name="ragfleet.ingestion.ping")
def ping(sent_at: float) -> dict[str, Any]:
    """Proves a real worker consumes the queue: answers with who ran it and how long it waited."""
    log.info("worker check task ran")
    return {
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "queued_ms": round((time.time() - sent_at) * 1000, 2),
    }


# Per worker process (created lazily, so after Celery's fork): settings, Redis, retrieval, model.
@functools.cache
def _settings() -> IngestionSettings:
    return IngestionSettings()


@functools.cache
def _redis() -> redis.Redis:
    settings = _settings()
    # Ride out a Redis blip of a few seconds instead of failing the document.
    return redis.Redis.from_url(
        settings.state_redis,
        socket_timeout=max(settings.redis_socket_timeout_s, 5.0),
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=RedisRetry(ExponentialBackoff(cap=2.0, base=0.1), retries=6),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
    )


@functools.cache
def _retrieval() -> RetrievalClient:
    return RetrievalClient(_settings())


@functools.cache
def _parser() -> ParserProcess:
    return ParserProcess(_settings().parse_memory_mb * 1024 * 1024)


@worker_process_init.connect
def _start_parser(**_: Any) -> None:
    _parser().start()  # not waited for: a pool process must finish booting within seconds


@functools.cache
def _embedder() -> Any:
    from ragfleet.common.embedding_providers import create_provider

    settings = _settings()
    # Worker children (of both lanes) run side by side: split the cores between them rather than
    # oversubscribe.
    processes = settings.worker_concurrency + settings.small_lane_concurrency
    threads = max(1, (os.cpu_count() or 1) // processes)
    return create_provider(settings, threads=threads)


def content_hash(data: bytes, fmt: str, metadata: dict[str, Any], settings: IngestionSettings) -> str:
    """Everything that decides the chunks a document becomes: change any of it and it is re-ingested."""
    digest = hashlib.sha256()
    digest.update(data)
    digest.update(
        orjson.dumps(
            {
                "format": fmt,
                "metadata": metadata,
                "chunking": [CHUNKING_VERSION, settings.chunk_size_chars, settings.chunk_overlap_chars],
                "model": _embedder().model_name,
            },
            option=orjson.OPT_SORT_KEYS,
        )
    )
    return digest.hexdigest()


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        TASK_DURATION.labels(name).observe(time.perf_counter() - started)


class _Progress:
    """Writes one document's state into its job's hash."""

    def __init__(self, job_id: str, document_id: str, attempt: int) -> None:
        self.key = jobs.job_key(job_id)
        self.field = jobs.doc_field(document_id)
        self.attempt = attempt

    def set(self, state: str, **fields: Any) -> None:
        client = _redis()
        pipe = client.pipeline(transaction=False)
        pipe.hset(self.key, self.field, jobs.doc_state(state, attempt=self.attempt, **fields))
        pipe.expire(self.key, _settings().job_ttl_s)
        pipe.execute()


def _dead_letter(
    job_id: str, tenant: str, collection: str, document_id: str, reason: str, error: str, task_id: str
) -> None:
    record = {
        "job_id": job_id,
        "tenant": tenant,
        "collection": collection,
        "document_id": document_id,
        "reason": reason,
        "error": error,
        "task_id": task_id,
        "at": round(time.time(), 3),
    }
    client = _redis()
    pipe = client.pipeline(transaction=False)
    pipe.lpush(jobs.DEAD_LETTER_KEY, orjson.dumps(record))
    pipe.ltrim(jobs.DEAD_LETTER_KEY, 0, _settings().dead_letter_max - 1)
    pipe.execute()
    log.error("document dead-lettered", extra=record)


class _TooBigForSmallLane(Exception):
    """The document makes more texts to embed than the small lane takes (its size said otherwise:
    a compressed PDF, many short sections): it is moved to the bulk queue instead of holding the lane."""

    def __init__(self, texts: int) -> None:
        super().__init__(texts)
        self.texts = texts


def _ingest(
    progress: _Progress,
    tenant: str,
    collection: str,
    document_id: str,
    data: bytes,
    fmt: DocumentFormat,
    metadata: dict[str, Any],
) -> tuple[str, int]:
    """The pipeline for one document; returns (outcome, chunks in the index)."""
    settings = _settings()
    retrieval = _retrieval()
    digest = content_hash(data, fmt.value, metadata, settings)

    with _stage("parse"):
        # In a child process with a deadline: see sandbox.py for why not in this one.
        sections, chunks = _parser().run(
            data,
            fmt,
            ParseOptions(
                max_html_depth=settings.max_html_depth,
                max_pdf_pages=settings.max_pdf_pages,
                chunk_size=settings.chunk_size_chars,
                chunk_overlap=settings.chunk_overlap_chars,
            ),
            time_limit_s=settings.parse_budget_s(len(data)),
        )
        if len(chunks) > settings.max_chunks_per_document:
            raise DocumentError(
                "too_many_chunks",
                f"the document makes {len(chunks)} chunks; the limit is {settings.max_chunks_per_document} "
                "(max_chunks_per_document): split it, or raise the limit",
            )
        title = document_title(sections, metadata, document_id)
        texts = [embedding_text(chunk, title) for chunk in chunks]
        distinct = len(set(texts))
        if settings.worker_lane == "small" and distinct > settings.small_lane_max_chunks:
            raise _TooBigForSmallLane(distinct)

    existing = retrieval.get_document(tenant, collection, document_id)
    if existing and existing.get("content_hash") == digest and existing.get("chunks") == len(chunks):
        return "unchanged", len(chunks)

    progress.set("embedding", chunks_total=len(chunks), chunks_done=0)
    with _stage("embed"):
        embedder = _embedder()
        vectors = _embed_distinct(embedder, texts, settings)

    with _stage("upsert"):
        if existing:
            retrieval.delete(tenant, collection, [document_id])
        written = 0
        for start in range(0, len(chunks), settings.upsert_batch_size):
            batch = chunks[start : start + settings.upsert_batch_size]
            retrieval.upsert(
                tenant,
                collection,
                [
                    {
                        "id": f"{document_id}:{chunk.position}",
                        "document_id": document_id,
                        "text": chunk.text,
                        "position": chunk.position,
                        "metadata": {
                            **metadata,
                            "title": title,  # retrieval's document ranking compares it with the query
                            "heading": chunk.heading,
                            "format": fmt.value,
                            "_content_hash": digest,
                        },
                        "vector": vectors[chunk.position],
                    }
                    for chunk in batch
                ],
                model=embedder.model_name,
            )
            written += len(batch)
            progress.set("upserting", chunks_total=len(chunks), chunks_done=written)
    CHUNKS_INGESTED.inc(len(chunks))
    return "succeeded", len(chunks)


def _embed_distinct(embedder: Any, texts: list[str], settings: IngestionSettings) -> list[list[float]]:
    """One vector per text, each distinct text embedded once.

    Embedding is nearly all of a document's cost, and a repetitive document ("[" * 500_000: 834
    chunks of one text) used to pay it per chunk, holding a worker process for about a minute for
    one distinct vector. The same text always gets the same vector, so the chunks keep their own
    ids, positions and metadata and share it.
    """
    distinct = list(dict.fromkeys(texts))
    vector_of: dict[str, list[float]] = {}
    for start in range(0, len(distinct), settings.embed_batch_size):
        batch = distinct[start : start + settings.embed_batch_size]
        vector_of.update(zip(batch, embedder.embed(batch).tolist(), strict=True))
    TEXTS_EMBEDDED.inc(len(distinct))
    return [vector_of[text] for text in texts]


class DocumentTask(Task):
    """Records a document killed at the hard time limit as failed (Celery calls ``on_failure``
    in the worker's main process after killing the pool process, which could not record it)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, TimeLimitExceeded) or len(args) < 4:
            return
        job_id, tenant, collection, document_id = args[:4]
        message = (
            f"the document's task was killed after {_settings().hard_time_limit_s}s "
            "(task_time_limit_s); not retried"
        )
        try:
            _Progress(job_id, document_id, attempt=1).set("failed", code="time_limit_exceeded", error=message)
            FAILURES.labels("time_limit_exceeded").inc()
            DOCUMENTS_INGESTED.labels("failed").inc()
            client = _redis()
            client.decr(jobs.crashes_key(job_id, document_id))  # a kill at the limit is no crash
            lock = jobs.lock_key(tenant, collection, document_id)
            if (client.get(lock) or b"").decode() == task_id:
                client.delete(lock)
            _finish(job_id, document_id)
        except redis.RedisError:
            log.exception("cannot record a timed-out document", extra={"document_id": document_id})


@shared_task(bind=True, base=DocumentTask, name="ragfleet.ingestion.ingest_document")
def ingest_document(
    self: Task,
    job_id: str,
    tenant: str,
    collection: str,
    document_id: str,
    fmt: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    with _stage("total"):
        return _run(self, job_id, tenant, collection, document_id, fmt, metadata)


def _run(
    self: Task,
    job_id: str,
    tenant: str,
    collection: str,
    document_id: str,
    fmt: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    settings = _settings()
    client = _redis()
    task_id = self.request.id or ""
    progress = _Progress(job_id, document_id, attempt=self.request.retries + 1)

    current = client.hget(jobs.job_key(job_id), jobs.doc_field(document_id))
    if current and orjson.loads(current)["state"] in jobs.DOC_STATES_DONE:
        # A redelivery of a task that finished but was not acknowledged: nothing left to do.
        return {"document_id": document_id, "state": orjson.loads(current)["state"]}

    crashes_key = jobs.crashes_key(job_id, document_id)
    crashes = int(client.incr(crashes_key)) - 1
    client.expire(crashes_key, settings.job_ttl_s)
    if crashes >= settings.max_worker_crashes:
        message = f"the document was being processed when a worker died {crashes} times; not retried"
        _dead_letter(job_id, tenant, collection, document_id, "worker_crashed", message, task_id)
        progress.set("failed", code="worker_crashed", error=message, dead_lettered=True)
        FAILURES.labels("worker_crashed").inc()
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed"}

    lock = jobs.lock_key(tenant, collection, document_id)
    try:
        # One task per document at a time (two jobs re-posting it must not interleave their
        # writes). The redelivered copy of a task carries the same id and takes its lock back.
        if (
            not client.set(lock, task_id, nx=True, ex=settings.document_lock_s)
            and (client.get(lock) or b"").decode() != task_id
        ):
            progress.set("waiting", error="another job is writing this document")
            raise self.retry(countdown=2.0, max_retries=None)
        progress.set("running")
        data = read_staged(client, jobs.payload_key(job_id, document_id), settings.stage_chunk_bytes)
        if data is None:
            raise DocumentError("payload_expired", "the uploaded bytes expired before a worker took the job")
        outcome, chunk_count = _ingest(
            progress, tenant, collection, document_id, data, DocumentFormat(fmt), metadata
        )
        progress.set(outcome, chunks=chunk_count)
        DOCUMENTS_INGESTED.labels(outcome).inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": outcome, "chunks": chunk_count}
    except CeleryRetry:
        raise
    except _TooBigForSmallLane as moved:
        # Recorded, then sent, then this delivery acknowledged: a crash in between delivers it to
        # the small lane again, which moves it again (a second copy in the bulk queue finds the
        # document done, or its content unchanged).
        client.hset(jobs.job_key(job_id), jobs.queue_field(document_id), settings.queue_name)
        progress.set(
            "queued",
            error=f"moved to the bulk lane: {moved.texts} texts to embed, the small lane takes "
            f"{settings.small_lane_max_chunks} (small_lane_max_chunks)",
        )
        self.app.send_task(
            jobs.TASK_NAME,
            args=jobs.task_args(job_id, tenant, collection, document_id, fmt, metadata),
            task_id=task_id,
            queue=settings.queue_name,
        )
        return {"document_id": document_id, "state": "queued", "queue": settings.queue_name}
    except SoftTimeLimitExceeded:
        limit = settings.soft_time_limit_s
        message = f"the document took longer than {limit}s (task_time_limit_s); not retried"
        progress.set("failed", code="time_limit_exceeded", error=message)
        FAILURES.labels("time_limit_exceeded").inc()
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed", "code": "time_limit_exceeded"}
    except DocumentError as exc:
        progress.set("failed", code=exc.code, error=exc.message)
        FAILURES.labels(exc.code).inc()
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed", "code": exc.code}
    except (TransientError, redis.ConnectionError, redis.TimeoutError) as exc:
        reason = "retrieval_unavailable" if isinstance(exc, TransientError) else "redis_unavailable"
        FAILURES.labels(reason).inc()
        if self.request.retries < settings.task_max_retries:
            delay = min(settings.retry_backoff_s * 2**self.request.retries, settings.retry_backoff_max_s)
            log.warning(
                "transient failure, retrying in %.1fs: %s", delay, exc, extra={"document_id": document_id}
            )
            with contextlib.suppress(redis.RedisError):
                progress.set("retrying", error=str(exc)[:300], retry_in_s=delay)
            raise self.retry(countdown=delay, exc=exc, max_retries=settings.task_max_retries) from exc
        message = f"gave up after {self.request.retries + 1} attempts: {exc}"[:500]
        _dead_letter(job_id, tenant, collection, document_id, "retries_exhausted", message, task_id)
        progress.set("failed", code="retries_exhausted", error=message, dead_lettered=True)
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed", "code": "retries_exhausted"}
    except RetrievalRejected as exc:
        progress.set("failed", code="rejected_by_index", error=str(exc)[:500])
        FAILURES.labels("rejected_by_index").inc()
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed", "code": "rejected_by_index"}
    except Exception as exc:
        # A bug meeting an odd document: record it where the user sees it instead of looping.
        log.exception("unexpected failure on a document", extra={"document_id": document_id})
        message = f"{type(exc).__name__}: {exc}"[:500]
        _dead_letter(job_id, tenant, collection, document_id, "internal_error", message, task_id)
        progress.set("failed", code="internal_error", error=message, dead_lettered=True)
        FAILURES.labels("internal_error").inc()
        DOCUMENTS_INGESTED.labels("failed").inc()
        _finish(job_id, document_id)
        return {"document_id": document_id, "state": "failed", "code": "internal_error"}
    finally:
        # Reached on every exit but a killed process: what stays counted is a crash.
        with contextlib.suppress(redis.RedisError):
            client.decr(crashes_key)
            if (client.get(lock) or b"").decode() == task_id:
                client.delete(lock)


def _finish(job_id: str, document_id: str) -> None:
    """The document reached a final state: its staged bytes are no longer needed, nor the reconciler's watch."""
    pipe = _redis().pipeline(transaction=False)
    pipe.delete(jobs.payload_key(job_id, document_id))
    pipe.zrem(jobs.PENDING_KEY, jobs.pending_member(job_id, document_id))
    pipe.execute()
