"""Processes SIGKILLed during a large ingest: the Celery worker (here), the state Redis (redis.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ragfleet.chaos.client import ApiClient
from ragfleet.chaos.scenarios.context import Context
from ragfleet.chaos.verdicts import ScenarioResult

FINAL_DOCUMENT_STATES = ("succeeded", "unchanged", "failed")


async def job_states(client: ApiClient, job_ids: list[str], collection: str) -> list[dict[str, Any]]:
    jobs = [await client.job(job_id, collection) for job_id in job_ids]
    return [job for job in jobs if job is not None]


@dataclass
class KilledIngest:
    """What a bulk ingest with a kill in the middle left: the jobs' last states, when the fault ended."""

    collection: str
    document_ids: list[str]
    jobs: list[dict[str, Any]]
    fault_end: float


async def kill_during_bulk_ingest(
    ctx: Context, result: ScenarioResult, client: ApiClient, victims: list[str], prefix: str
) -> KilledIngest:
    """Send ``bulk_documents`` one-chunk documents in jobs of 20, SIGKILL ``victims`` once a fifth is
    done, restart them (in that order) 2 s later, and wait until every job has finished."""
    n = ctx.options.bulk_documents
    collection = f"chaos-{prefix}-{uuid.uuid4().hex[:6]}"
    documents = [
        {
            "id": f"bulk-{i:04d}",
            "text": f"Bulk document number {i}. A short text that makes exactly one chunk.",
        }
        for i in range(n)
    ]
    job_ids = []
    for batch in range(0, n, 20):
        outcome, response = await client.ingest(collection, documents[batch : batch + 20])
        ctx.record(outcome)
        if response is not None and response.status_code == 202:
            job_ids.append(response.json()["job_id"])
    result.check("the bulk ingest was accepted", len(job_ids) == (n + 19) // 20, f"{len(job_ids)} jobs")

    # Kill once a part is done and the rest is queued or in flight.
    done = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and done < n // 5:
        done = sum(j["documents_done"] for j in await job_states(client, job_ids, collection))
        await asyncio.sleep(0.3)
    for victim in victims:
        await asyncio.to_thread(ctx.stack.kill, victim)
    await asyncio.sleep(2)
    for victim in victims:
        await asyncio.to_thread(ctx.stack.restart, victim)
    fault_end = time.monotonic()
    result.check(
        f"{' and '.join(victims)} killed mid-ingest", 0 < done < n, f"{done}/{n} documents done at the kill"
    )

    deadline = time.monotonic() + ctx.options.indexing_timeout_s
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = await job_states(client, job_ids, collection)
        if len(jobs) == len(job_ids) and all(j["state"] in ("succeeded", "failed") for j in jobs):
            break
        await asyncio.sleep(1)
    result.check(
        "every job record is still there and finished",
        len(jobs) == len(job_ids) and all(j["state"] in ("succeeded", "failed") for j in jobs),
        f"{len(jobs)}/{len(job_ids)} jobs readable, states {sorted({j['state'] for j in jobs})}",
    )
    return KilledIngest(collection, [d["id"] for d in documents], jobs, fault_end)


async def check_indexed_once(ctx: Context, result: ScenarioResult, ingest: KilledIngest) -> int:
    """Every document that did not fail is in the index exactly once; returns how many are missing."""
    failed = {d["document_id"] for job in ingest.jobs for d in job["documents"] if d["state"] == "failed"}
    chunks = {
        d: await asyncio.to_thread(ctx.stack.document_chunks, ingest.collection, d)
        for d in ingest.document_ids
        if d not in failed
    }
    missing = [d for d, c in chunks.items() if c == 0]
    duplicated = [d for d, c in chunks.items() if c > 1]
    result.check("no document missing from the index", not missing, f"{len(missing)} missing {missing[:5]}")
    result.check(
        "no document indexed twice (one chunk each)",
        not duplicated,
        f"{len(duplicated)} with extra chunks {duplicated[:5]}",
    )
    counts = (await asyncio.to_thread(ctx.stack.collection_counts)).get(ingest.collection, (0, 0))
    expected = len(ingest.document_ids) - len(failed)
    result.check(
        "the collection holds exactly the documents that did not fail, once",
        counts == (expected, expected),
        f"(documents, chunks) = {counts}, expected {expected}",
    )
    return len(missing)


async def worker_kill(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    client = ctx.client()
    try:
        ingest = await kill_during_bulk_ingest(ctx, result, client, ["ingestion-worker"], "bulk")
    finally:
        await client.aclose()
    states = sorted({j["state"] for j in ingest.jobs})
    result.check("none failed", states == ["succeeded"], f"job states {states}")
    lost = await check_indexed_once(ctx, result, ingest)
    await ctx.finish(result, start, ingest.fault_end, lost=lost)
