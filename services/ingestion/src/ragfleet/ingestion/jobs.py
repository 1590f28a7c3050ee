"""Job state in Redis: what the API shows in ``GET /v1/jobs/{id}``.

Layout (every key expires; nothing here is the record of what is indexed — the index is, and
``GET /v1/documents/{id}`` reads it from retrieval — so losing Redis loses only progress reports):

- ``ingestion:job:{job_id}`` — a hash: ``meta`` (tenant, collection, created_at, document ids) and
  one field ``doc:{document_id}`` per document with its state, chunk count, error and attempts.
- ``ingestion:payload:{job_id}:{document_id}`` — the document's bytes, staged by the API so that
  the broker carries only references (Redis lists are a poor place for 20 MB messages).
- ``ingestion:crashes:{job_id}:{document_id}`` — starts of a task that never finished (its worker
  was killed): how poison documents are recognised.
- ``ingestion:lock:{tenant}:{collection}:{document_id}`` — one task at a time per document.
- ``ingestion:deadletter`` — the newest dead-letter records, a capped list.
- ``ingestion:pending`` — a sorted set of ``{job_id}:{document_id}`` accepted and not yet final,
  scored by when last seen moving; with the task's arguments in the job hash (``task:{document_id}``)
  it lets ``reconcile.py`` send again a task the broker lost, so every 202 ends indexed or failed;
  ``queue:{document_id}`` names the lane's queue it was sent to (the bulk queue when missing).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ragfleet.common.errors import NotFound, ServiceUnavailable

DOC_STATES_DONE = frozenset({"succeeded", "unchanged", "failed"})
DEAD_LETTER_KEY = "ingestion:deadletter"
PENDING_KEY = "ingestion:pending"
TASK_NAME = "ragfleet.ingestion.ingest_document"


def job_key(job_id: str) -> str:
    return f"ingestion:job:{job_id}"


def payload_key(job_id: str, document_id: str) -> str:
    return f"ingestion:payload:{job_id}:{document_id}"


def crashes_key(job_id: str, document_id: str) -> str:
    return f"ingestion:crashes:{job_id}:{document_id}"


def lock_key(tenant: str, collection: str, document_id: str) -> str:
    return f"ingestion:lock:{tenant}:{collection}:{document_id}"


def doc_field(document_id: str) -> str:
    return f"doc:{document_id}"


def task_field(document_id: str) -> str:
    return f"task:{document_id}"


def pending_member(job_id: str, document_id: str) -> str:
    return f"{job_id}:{document_id}"  # job ids are hex: the first ':' separates them


def task_id(job_id: str, document_id: str) -> str:
    """The one task id of a document of a job: a redelivered or resubmitted copy carries it too."""
    return f"{job_id}:{document_id}"


def task_args(
    job_id: str, tenant: str, collection: str, document_id: str, fmt: str, metadata: dict[str, Any]
) -> list[Any]:
    return [job_id, tenant, collection, document_id, fmt, metadata]


def queue_field(document_id: str) -> str:
    return f"queue:{document_id}"


def pending_fields(args: list[Any], queue: str) -> dict[str, bytes | str]:
    """What the API writes into the job hash, beside the document's state, when it accepts one: the
    task's arguments and its lane's queue, for the reconciler to send it again the same way."""
    return {task_field(args[3]): orjson.dumps(args), queue_field(args[3]): queue}


def doc_state(state: str, **fields: Any) -> bytes:
    return orjson.dumps({"state": state, "updated_at": round(time.time(), 3), **fields})


def summarise(job_id: str, raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    """The public view of a job from its Redis hash; None when the job is unknown or expired."""
    meta_raw = raw.get(b"meta")
    if meta_raw is None:
        return None
    meta = orjson.loads(meta_raw)
    documents = []
    for document_id in meta["documents"]:
        entry = raw.get(doc_field(document_id).encode())
        documents.append(
            {"document_id": document_id, **(orjson.loads(entry) if entry else {"state": "queued"})}
        )
    counts: dict[str, int] = {}
    for doc in documents:
        counts[doc["state"]] = counts.get(doc["state"], 0) + 1
    done = sum(counts.get(state, 0) for state in DOC_STATES_DONE)
    if done == len(documents):
        state = "failed" if counts.get("failed") else "succeeded"
    elif done == 0 and counts.get("queued", 0) == len(documents):
        state = "queued"
    else:
        state = "running"
    return {
        "job_id": job_id,
        "state": state,
        "tenant": meta["tenant"],
        "collection": meta["collection"],
        "created_at": meta["created_at"],
        "documents_total": len(documents),
        "documents_done": done,
        "documents_failed": counts.get("failed", 0),
        "chunks": sum(doc.get("chunks") or 0 for doc in documents if doc["state"] != "failed"),
        "documents": documents,
    }


async def read_job(redis: Redis, job_id: str, tenant: str, *, kept_s: int) -> dict[str, Any]:
    """A job as ``GET /v1/jobs/{id}`` shows it; ``kept_s`` (job_ttl_s) is said when it is missing."""
    try:
        raw = await redis.hgetall(job_key(job_id))
    except RedisError as exc:
        raise ServiceUnavailable(f"job status is unavailable: Redis is unreachable ({exc})") from exc
    job = summarise(job_id, raw)
    # Another tenant's job is reported as missing, never as someone else's.
    if job is None or job["tenant"] != tenant:
        raise NotFound(f"job {job_id!r} not found (jobs are kept {kept_s}s)", code="job_not_found")
    return job
