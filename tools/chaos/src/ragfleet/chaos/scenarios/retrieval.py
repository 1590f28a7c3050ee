"""The retrieval replica restarted while a document is updated: nothing lost, caches right."""

from __future__ import annotations

import asyncio
import time
import uuid

from ragfleet.chaos.client import ApiClient
from ragfleet.chaos.scenarios.context import Context
from ragfleet.chaos.verdicts import ScenarioResult

UPDATE_QUERY = "How long are the audit logs of the chaos vault retained?"


async def indexed_job(ctx: Context, client: ApiClient, collection: str, text: str) -> bool:
    """Upload the one updatable document (retrying while the stack refuses) and wait for its job."""
    deadline = time.monotonic() + ctx.options.indexing_timeout_s
    while time.monotonic() < deadline:
        outcome, response = await client.ingest(collection, [{"id": "vault-policy", "text": text}])
        ctx.record(outcome)
        if response is not None and response.status_code == 202:
            job_id = response.json()["job_id"]
            while time.monotonic() < deadline:
                job = await client.job(job_id, collection)
                if job is not None and job["state"] in ("succeeded", "failed"):
                    return bool(job["state"] == "succeeded")
                await asyncio.sleep(0.5)
        await asyncio.sleep(1)
    return False


async def top_text(ctx: Context, client: ApiClient, collection: str) -> tuple[str, str]:
    outcome, response = await client.search(UPDATE_QUERY, collection=collection)
    ctx.record(outcome)
    if response is None or response.status_code != 200 or not response.json()["results"]:
        return "", outcome.status
    return str(response.json()["results"][0]["text"]), response.headers.get("x-cache", "")


async def retrieval_restart(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    collection = f"chaos-update-{uuid.uuid4().hex[:6]}"
    client = ctx.client()
    try:
        old = "The audit logs of the chaos vault are retained for thirty days."
        new = "The audit logs of the chaos vault are retained for ninety days since the update."
        result.check("the document to update is indexed", await indexed_job(ctx, client, collection, old))
        text, _ = await top_text(ctx, client, collection)
        text, cache = await top_text(ctx, client, collection)  # now cached
        result.check(
            "searches see it (and cache it) before the restart",
            "thirty" in text,
            f"X-Cache {cache}: {text!r}",
        )
        before = await asyncio.to_thread(ctx.stack.collection_counts)

        killed_at = time.monotonic()
        await asyncio.to_thread(ctx.stack.kill, "retrieval")
        update = asyncio.create_task(indexed_job(ctx, client, collection, new))  # during the restart
        await asyncio.sleep(2)
        await asyncio.to_thread(ctx.stack.restart, "retrieval")
        fault_end = time.monotonic()
        result.notes.append(f"retrieval was down for {fault_end - killed_at:.1f} s (SIGKILL, then restarted)")
        result.check("the update sent during the restart was indexed", await update)

        after = await asyncio.to_thread(ctx.stack.collection_counts)
        lost = {
            name: (docs, after.get(name, (0, 0))[0])
            for name, (docs, _) in before.items()
            if after.get(name, (0, 0))[0] < docs
        }
        result.check(
            "no document lost by the index across the restart",
            not lost,
            f"{sum(d for d, _ in before.values())} documents before, {sum(d for d, _ in after.values())} after"
            + (f"; fewer in {lost}" if lost else ""),
        )
        same = after.get(collection) == before.get(collection)
        result.check(
            "the updated document replaced the old one (same counts)",
            same,
            f"{before.get(collection)} -> {after.get(collection)}",
        )
        texts = [await top_text(ctx, client, collection) for _ in range(2)]
        fresh = all("ninety" in t and "thirty" not in t for t, _ in texts)
        result.check(
            "searches after the update show the new text, cached or not",
            fresh,
            "; ".join(f"X-Cache {c}: {t!r}" for t, c in texts),
        )
    finally:
        await client.aclose()
    await ctx.finish(result, start, fault_end, lost=sum(b - a for b, a in lost.values()))
