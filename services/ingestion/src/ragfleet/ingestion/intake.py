"""Accepting documents: staged, recorded as a job, queued — or refused with nothing left behind.

The worker does the rest. Everything a client can get wrong is refused here with a 4xx that
names the document (``validation.py``, while the body is read: ``uploads.py``); what only parsing
can tell (binary in a .txt, a PDF without text) comes back as a per-document error in the job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from celery import Celery
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.errors import ServiceUnavailable, UnsupportedMediaType
from ragfleet.ingestion import jobs, uploads, validation
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.metrics import DOCUMENTS_ACCEPTED
from ragfleet.ingestion.schemas import JobAccepted
from ragfleet.ingestion.staging import StagedRequest

log = logging.getLogger("ragfleet.ingestion.intake")

CONTENT_TYPES = ("application/json", "multipart/form-data")


async def accept_documents(
    *,
    settings: IngestionSettings,
    redis: Redis,
    celery: Celery,
    tenant: str,
    collection: str,
    content_type: str,
    content_length: str | None,
    body: AsyncIterator[bytes],
) -> JobAccepted:
    """``content_type`` and ``content_length`` are the request's headers, ``body`` its stream."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"send documents as application/json or multipart/form-data, not {media_type or 'no content type'}"
        )
    declared = int(content_length) if content_length and content_length.isdigit() else None
    if declared is not None and declared > settings.max_request_bytes:
        raise validation.request_too_large(settings, declared)
    if (
        media_type == "application/json"
        and declared is not None
        and declared > validation.json_request_limit(settings)
    ):
        raise validation.json_request_too_large(settings, declared)

    job_id = uuid.uuid4().hex
    staged = StagedRequest(redis, job_id, settings.stage_chunk_bytes)
    try:
        if media_type == "application/json":
            documents = await uploads.stage_json(body, settings, staged)
        else:
            documents = await uploads.stage_multipart(body, content_type, settings, staged)
        args = {
            doc.document_id: jobs.task_args(
                job_id, tenant, collection, doc.document_id, doc.fmt.value, doc.metadata
            )
            for doc in documents
        }
        queues = {doc.document_id: settings.queue_for(doc.size) for doc in documents}
        await _record_job(redis, settings, staged, job_id, tenant, collection, args, queues)
    except RedisError as exc:
        await staged.discard()
        raise ServiceUnavailable(f"cannot stage documents: Redis is unavailable ({exc})") from exc
    except BaseException:  # refused, or the client went away mid-upload: nothing half-staged stays
        await staged.discard()
        raise

    def enqueue() -> None:
        # Through the app object, not the task proxy: Celery's "current app" is per thread.
        for document_id, task_args in args.items():
            celery.send_task(
                jobs.TASK_NAME,
                args=task_args,
                task_id=jobs.task_id(job_id, document_id),
                queue=queues[document_id],
            )

    try:
        await asyncio.to_thread(enqueue)
    except Exception as exc:
        # Answered 503, so not accepted: the job is withdrawn (a task sent before the broker failed
        # finds no bytes and records payload_expired under a job nobody was told about).
        await _withdraw(redis, staged, job_id, list(args))
        raise ServiceUnavailable(f"cannot queue the job: the broker is unavailable ({exc})") from exc
    DOCUMENTS_ACCEPTED.inc(len(args))
    return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}", documents=list(args))


async def _record_job(
    redis: Redis,
    settings: IngestionSettings,
    staged: StagedRequest,
    job_id: str,
    tenant: str,
    collection: str,
    args: dict[str, list[Any]],
    queues: dict[str, str],
) -> None:
    ids = list(args)
    meta = {"tenant": tenant, "collection": collection, "created_at": round(time.time(), 3), "documents": ids}
    pipe = redis.pipeline(transaction=True)
    staged.keep(pipe, settings.payload_ttl_s)
    pipe.hset(
        jobs.job_key(job_id),
        mapping={
            "meta": orjson.dumps(meta),
            **{jobs.doc_field(i): jobs.doc_state("queued") for i in ids},
            **{
                field: value
                for document_id, a in args.items()
                for field, value in jobs.pending_fields(a, queues[document_id]).items()
            },
        },
    )
    pipe.expire(jobs.job_key(job_id), settings.job_ttl_s)
    # Watched by the reconciler until each document is final (a task the broker lost is sent again).
    pipe.zadd(jobs.PENDING_KEY, {jobs.pending_member(job_id, i): time.time() for i in ids})
    await pipe.execute()


async def _withdraw(redis: Redis, staged: StagedRequest, job_id: str, ids: list[str]) -> None:
    await staged.discard()
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.delete(jobs.job_key(job_id))
        pipe.zrem(jobs.PENDING_KEY, *[jobs.pending_member(job_id, i) for i in ids])
        await pipe.execute()
    except RedisError as exc:  # the reconciler sends it again later: accepted after all, not lost
        log.warning("cannot withdraw job %s after the broker failed: %s", job_id, exc)
