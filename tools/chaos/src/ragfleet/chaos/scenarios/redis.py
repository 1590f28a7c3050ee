"""Redis faults: both stopped for an outage; the state Redis SIGKILLed; the cache Redis under
eviction pressure."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis import Redis

from ragfleet.chaos.client import ApiClient
from ragfleet.chaos.scenarios.context import Context, count_ok, eventually, ok_detail
from ragfleet.chaos.scenarios.ingestion import (
    FINAL_DOCUMENT_STATES,
    check_indexed_once,
    kill_during_bulk_ingest,
)
from ragfleet.chaos.verdicts import ScenarioResult, between


async def redis_outage(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    await asyncio.sleep(ctx.options.green_window_s)  # caches warm, baseline load
    redis = ctx.stack.redis_names()  # both: what the single Redis of old took down at once
    pids = {name: pid for name, pid in ctx.stack.pids().items() if name not in redis}
    down = time.monotonic()
    for name in redis:
        await asyncio.to_thread(ctx.stack.stop_process, name)
    await asyncio.sleep(ctx.options.redis_outage_s)
    back = time.monotonic()
    for name in redis:
        await asyncio.to_thread(ctx.stack.restart, name)
    fault_end = time.monotonic()

    during = between(ctx.load.outcomes, down, back)
    ok, total = count_ok(during, "search")
    result.check(
        "searches answered 200 while Redis was down (L1 + backend)",
        total > 0 and ok == total,
        ok_detail(during, "search"),
    )
    ok, total = count_ok(during, "chat")
    result.check(
        "REST chats answered 200 while Redis was down (memory is best effort)",
        total > 0 and ok == total,
        ok_detail(during, "chat"),
    )
    hung = [o for o in during if o.status in ("timeout", "truncated")]
    result.check("no request hung or was cut off while Redis was down", not hung, f"{len(hung)} did")
    unclean = [
        o for o in during if not o.ok and o.status not in ("503",) and not o.status.startswith("error-event:")
    ]
    result.check(
        "what could not work without Redis failed cleanly (503 or an SSE error event)",
        not unclean,
        ", ".join(sorted({f"{o.kind} {o.status}" for o in unclean}))
        or ok_detail(during, "chat-sse") + " (SSE chats)",
    )
    await ctx.finish(result, start, fault_end)
    restarted = [name for name, pid in pids.items() if ctx.stack.pids().get(name) != pid]
    result.check("no service was restarted to recover", not restarted, ", ".join(restarted))


async def key_authenticates(ctx: Context, api_key: str, timeout_s: float = 30) -> str:
    """The status an authenticated request gets once the gateway reaches Redis again (503 meanwhile)."""
    client = ApiClient(ctx.stack.url, api_key, timeout_s=10)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            outcome, _ = await client.search("how many vacation days do employees get")
            ctx.record(outcome)
            if outcome.status != "503" or time.monotonic() > deadline:
                return outcome.status
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def state_redis_kill(ctx: Context, result: ScenarioResult) -> None:
    """The state Redis SIGKILLed mid-ingest and started again from its own config (its AOF)."""
    start = time.monotonic()
    # In no replica's key cache: only the state Redis can vouch for it after the restart.
    fresh_key = await asyncio.to_thread(ctx.stack.create_api_key, "chaos-before-kill")
    pids = {name: pid for name, pid in ctx.stack.pids().items() if name != "redis-state"}
    client = ctx.client()
    try:
        ingest = await kill_during_bulk_ingest(ctx, result, client, ["redis-state"], "state-kill")
    finally:
        await client.aclose()
    status = await key_authenticates(ctx, fresh_key)
    result.check(
        "an API key made before the kill, never used, authenticates after it", status == "200", status
    )
    documents = [d for job in ingest.jobs for d in job["documents"]]
    unexplained = [d["document_id"] for d in documents if d["state"] == "failed" and not d.get("code")]
    failed = [f"{d['document_id']}: {d.get('code')}" for d in documents if d["state"] == "failed"]
    result.check(
        "every accepted document ended indexed or failed with a reason",
        len(documents) == len(ingest.document_ids)
        and all(d["state"] in FINAL_DOCUMENT_STATES for d in documents)
        and not unexplained,
        f"{len(documents)}/{len(ingest.document_ids)} documents reported, {len(failed)} failed"
        + (f" ({', '.join(failed[:5])})" if failed else ""),
    )
    if failed:
        result.notes.append(f"{len(failed)} documents failed with a reason: {failed[:10]}")
    lost = await check_indexed_once(ctx, result, ingest)
    await ctx.finish(result, start, ingest.fault_end, lost=lost)
    restarted = [name for name, pid in pids.items() if ctx.stack.pids().get(name) != pid]
    result.check("no service was restarted to recover", not restarted, ", ".join(restarted))


async def cache_eviction(ctx: Context, result: ScenarioResult) -> None:
    """The cache Redis squeezed to a few MiB and flooded: it evicts, and nobody notices."""
    start = time.monotonic()
    await asyncio.sleep(ctx.options.green_window_s)
    fresh_key = await asyncio.to_thread(ctx.stack.create_api_key, "chaos-before-eviction")
    cache, state = ctx.stack.redis("redis-cache"), ctx.stack.redis("redis-state")
    try:
        old_limit = cache.config_get("maxmemory")["maxmemory"]
        state_keys = await asyncio.to_thread(state.dbsize)
        evicted_before = int(cache.info("stats")["evicted_keys"])
        cache.config_set("maxmemory", ctx.options.eviction_maxmemory)
        pressure_from = time.monotonic()
        blob = b"x" * 65_536
        written = 0
        # Several times the cap in big junk values, while the load keeps going.
        while written < 4 * _bytes(ctx.options.eviction_maxmemory):
            pipe = cache.pipeline(transaction=False)
            for _ in range(16):
                pipe.set(f"chaos:junk:{uuid.uuid4().hex}", blob, ex=600)
            await asyncio.to_thread(pipe.execute)
            written += 16 * len(blob)
            await asyncio.sleep(0.05)
        await asyncio.sleep(ctx.options.green_window_s)  # the load under a full, evicting cache
        pressure_to = time.monotonic()
        evicted = int(cache.info("stats")["evicted_keys"]) - evicted_before
        result.check("the cache Redis evicted under pressure", evicted > 0, f"{evicted} keys evicted")

        during = between(ctx.load.outcomes, pressure_from, pressure_to)
        failed = [o for o in during if not o.ok]
        result.check(
            "every request of the load succeeded while the cache evicted",
            bool(during) and not failed,
            f"{len(during) - len(failed)}/{len(during)} succeeded"
            + (f" (others: {sorted({f'{o.kind} {o.status}' for o in failed})})" if failed else ""),
        )
        status = await key_authenticates(ctx, fresh_key)
        result.check("keys live on the state Redis: a fresh one still authenticates", status == "200", status)
        await resumes_of_evicted_buffers(ctx, result, cache)
        now_state_keys = await asyncio.to_thread(state.dbsize)
        result.check(
            "the state Redis lost nothing (it never evicts)",
            now_state_keys >= state_keys
            and state.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction",
            f"{state_keys} keys before, {now_state_keys} after",
        )
    finally:
        cache.config_set("maxmemory", old_limit)
        for key in cache.scan_iter(match="chaos:junk:*", count=1000):
            cache.delete(key)
        cache.close()
        state.close()
    fault_end = time.monotonic()
    await ctx.finish(result, start, fault_end)


async def resumes_of_evicted_buffers(ctx: Context, result: ScenarioResult, cache: Redis) -> None:
    """A client walks away from a stream, its buffer is evicted (here: deleted, as allkeys-lru drops
    a cold key), the client resumes: it is told the answer is gone, never handed part of one."""
    client = ctx.client()
    try:
        statuses = []
        for evicted in (("",), ("", ":meta")):  # the events only; the events and the stream's meta
            left = await client.chat_stream("How many vacation days do employees get?", stop_after=2)
            if len(left.events) < 2 or not left.events[0].data.get("stream_id"):
                statuses.append(f"could not start a stream: {left.outcome.status}")
                continue
            stream_id = left.events[0].data["stream_id"]
            key = f"gw:stream:{stream_id}"

            def finished(key: str = key) -> bool:  # evicted after the answer ended: nobody rewrites it
                last = cache.xrevrange(key, count=1)
                return bool(last) and last[0][1][b"event"] in (b"done", b"error")

            await eventually(finished, timeout_s=60)
            await asyncio.to_thread(cache.delete, *(f"{key}{suffix}" for suffix in evicted))
            resumed = await client.chat_stream(last_event_id=left.events[-1].id, kind="chat-sse-resume")
            statuses.append(resumed.outcome.status)
    finally:
        await client.aclose()
    result.check(
        "a resume whose buffer was evicted is told so (stream_gone), never given a truncated answer",
        statuses == ["error-event:stream_gone", "410"],
        ", ".join(statuses),
    )


def _bytes(size: str) -> int:
    """Redis's memory units (``8mb``) in bytes."""
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
    for unit, factor in units.items():
        if size.lower().endswith(unit):
            return int(size[: -len(unit)]) * factor
    return int(size)
