"""Documents whose task the broker lost are sent again; after ``max_resubmits`` they fail, with a reason.

A 202 must end indexed or failed. Celery with ``acks_late`` redelivers a task whose worker died,
and kombu gives a worker's unacknowledged tasks back when its broker connection drops. What is
left are the moments when the broker itself holds no copy: a task taken off the queue whose worker
and state Redis both died before kombu wrote it down as unacknowledged, or a task that failed on a
Redis error outside its own handling and was acknowledged once Redis was back. Its document would
then say ``queued`` or ``running`` for ever. The job record knows: every accepted document sits in
``ingestion:pending`` until its task records a final state, so a document that has not moved for
``reconcile_after_s`` (longer than any redelivery takes) is sent again under its own task id.
Sending a task twice is safe — a copy that finds its document final, or its content unchanged in
the index, does nothing — so the reconciler only has to be sure not to flood: a document still
``queued`` behind a non-empty queue (either lane's) is waiting its turn, not lost.

One API replica sweeps at a time (a lock in Redis); the sweep is a bounded read of a sorted set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from celery import Celery
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.ingestion import jobs
from ragfleet.ingestion.config import IngestionSettings
from ragfleet.ingestion.metrics import FAILURES

log = logging.getLogger("ragfleet.ingestion.reconcile")

LOCK_KEY = "ingestion:reconcile-lock"
LOCK_MS = 60_000
BATCH = 200


def resubmits_field(document_id: str) -> str:
    return f"resubmits:{document_id}"


async def reconcile_once(redis: Redis, celery: Celery, settings: IngestionSettings) -> dict[str, int]:
    """One sweep; returns how many documents it resubmitted, failed and found done or still moving."""
    now = time.time()
    stale_before = now - settings.reconcile_after
    counts = {"resubmitted": 0, "failed": 0, "done": 0, "moving": 0}
    members = await redis.zrangebyscore(jobs.PENDING_KEY, "-inf", stale_before, start=0, num=BATCH)
    if not members:
        return counts
    waiting = sum([int(await redis.llen(queue)) for queue in settings.document_queues])
    for raw in members:
        member = raw.decode()
        job_id, _, document_id = member.partition(":")
        key = jobs.job_key(job_id)
        entry, task, resubmits, queue = await redis.hmget(
            key,
            [
                jobs.doc_field(document_id),
                jobs.task_field(document_id),
                resubmits_field(document_id),
                jobs.queue_field(document_id),
            ],
        )
        if entry is None or task is None:  # the job expired, or predates the reconciler
            await redis.zrem(jobs.PENDING_KEY, member)
            continue
        state: dict[str, Any] = orjson.loads(entry)
        if state["state"] in jobs.DOC_STATES_DONE:
            await redis.zrem(jobs.PENDING_KEY, member)
            counts["done"] += 1
            continue
        last_seen = float(state.get("updated_at", 0))
        if last_seen > stale_before:  # it moved since: look again once it has been silent long enough
            await redis.zadd(jobs.PENDING_KEY, {member: last_seen})
            counts["moving"] += 1
            continue
        if state["state"] == "queued" and waiting > 0:  # waiting its turn, not lost
            await redis.zadd(jobs.PENDING_KEY, {member: now})
            counts["moving"] += 1
            continue
        attempts = int(resubmits or 0)
        silent_s = round(now - last_seen)
        if attempts >= settings.max_resubmits:
            message = (
                f"no worker finished this document: it stayed {state['state']!r} for {silent_s}s "
                f"after being sent {attempts + 1} times"
            )
            pipe = redis.pipeline(transaction=True)
            pipe.hset(
                key, jobs.doc_field(document_id), jobs.doc_state("failed", code="task_lost", error=message)
            )
            pipe.zrem(jobs.PENDING_KEY, member)
            pipe.delete(jobs.payload_key(job_id, document_id))
            await pipe.execute()
            FAILURES.labels("task_lost").inc()
            log.error(
                "document failed: its task was lost", extra={"job_id": job_id, "document_id": document_id}
            )
            counts["failed"] += 1
            continue
        pipe = redis.pipeline(transaction=True)
        pipe.hincrby(key, resubmits_field(document_id), 1)
        pipe.hset(
            key,
            jobs.doc_field(document_id),
            jobs.doc_state(
                "queued", resubmitted=attempts + 1, error=f"sent again: no progress for {silent_s}s"
            ),
        )
        pipe.zadd(jobs.PENDING_KEY, {member: now})
        await pipe.execute()
        args = orjson.loads(task)
        await asyncio.to_thread(
            celery.send_task,
            jobs.TASK_NAME,
            args=args,
            task_id=jobs.task_id(job_id, document_id),
            # Its own lane again (recorded by the API, or by the small lane when it moved it).
            queue=queue.decode() if queue else settings.queue_name,
        )
        log.warning(
            "document sent again: its task was lost",
            extra={"job_id": job_id, "document_id": document_id, "silent_s": silent_s},
        )
        counts["resubmitted"] += 1
    return counts


async def reconcile_forever(redis: Redis, celery: Celery, settings: IngestionSettings, replica: str) -> None:
    interval = settings.reconcile_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            # Held for one sweep only (the expiry covers a replica that dies mid-sweep).
            token = f"{replica}:{time.monotonic_ns()}"
            if await redis.set(LOCK_KEY, token, nx=True, px=LOCK_MS):
                try:
                    counts = await reconcile_once(redis, celery, settings)
                finally:
                    if await redis.get(LOCK_KEY) == token.encode():
                        await redis.delete(LOCK_KEY)
                if counts["resubmitted"] or counts["failed"]:
                    log.info("reconciled pending documents", extra=counts)
        except (RedisError, OSError) as exc:
            log.warning("cannot reconcile pending documents now: %s", exc)
        except Exception:  # the broker (kombu raises its own errors): next round
            log.exception("reconciling pending documents failed")
