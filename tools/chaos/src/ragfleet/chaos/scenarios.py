"""The faults, one at a time, each ending in checked conditions (``ScenarioResult.check``).

Every scenario runs under the steady load of ``load.py``, leaves the stack whole for the next one
(whatever it killed is running again), and is judged on what clients saw, on documents lost, and
on how long the stack took to be fully green again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ragfleet.chaos.client import ApiClient, SseEvent, StreamResult
from ragfleet.chaos.load import LOAD_COLLECTION, LOAD_KINDS, SEED_DOCUMENTS, LoadDriver
from ragfleet.chaos.stack import BACKUP, BACKUP_CONTENT, PRIMARY, PRIMARY_CONTENT, SLOW, SOLO, ChaosStack
from ragfleet.chaos.verdicts import Outcome, ScenarioResult, between, recovery_time

log = logging.getLogger("ragfleet.chaos")


@dataclass
class ChaosOptions:
    redis_outage_s: float = 30.0
    bulk_documents: int = 200
    green_window_s: float = 3.0
    recovery_limit_s: float = 30.0
    indexing_timeout_s: float = 180.0


@dataclass
class Context:
    stack: ChaosStack
    load: LoadDriver
    options: ChaosOptions

    def client(self) -> ApiClient:
        return ApiClient(self.stack.url, self.stack.api_key, timeout_s=30)

    def record(self, *outcomes: Outcome) -> None:
        """The scenario's own requests count in the report, as ``scenario:<kind>``: their faults are
        on purpose, so they stay out of the load's checks and its green windows."""
        self.load.outcomes.extend(replace(o, kind=f"scenario:{o.kind}") for o in outcomes)

    async def wait_green(self, fault_end: float) -> float | None:
        """Seconds from ``fault_end`` until the load's first fully-green window (None: not within the limit)."""
        deadline = time.monotonic() + self.options.recovery_limit_s + self.options.green_window_s + 5
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            found = recovery_time(
                self.load.since(fault_end), fault_end, window_s=self.options.green_window_s, kinds=LOAD_KINDS
            )
            if found is not None:
                return found
        return None

    async def missing_documents(self, collection: str, document_ids: list[str]) -> list[str]:
        """Documents not (yet) in the index after waiting up to ``indexing_timeout_s`` for them."""
        missing = list(document_ids)
        deadline = time.monotonic() + self.options.indexing_timeout_s
        while missing and time.monotonic() < deadline:
            missing = [
                d for d in missing if await asyncio.to_thread(self.stack.document_chunks, collection, d) == 0
            ]
            if missing:
                await asyncio.sleep(2)
        return missing

    async def check_load_documents(self, result: ScenarioResult, start: float, end: float) -> int:
        """Every small document the load had accepted (202) during the scenario is in the index."""
        accepted = [d for t, d in self.load.accepted_documents if start <= t < end]
        missing = await self.missing_documents(LOAD_COLLECTION, accepted)
        result.check(
            "every document the load's clients got a 202 for is indexed",
            not missing,
            f"{len(accepted) - len(missing)}/{len(accepted)} indexed"
            + (f"; missing {missing[:5]}" if missing else ""),
        )
        return len(missing)

    async def finish(self, result: ScenarioResult, start: float, fault_end: float, lost: int = 0) -> None:
        """The checks every scenario ends with: green again in time, nothing lost, nothing left dead."""
        result.recovery_s = await self.wait_green(fault_end)
        result.check(
            f"fully green again ({self.options.green_window_s:g} s window of only successes, every kind) "
            f"within {self.options.recovery_limit_s:g} s",
            result.recovery_s is not None,
            "never" if result.recovery_s is None else f"after {result.recovery_s:.1f} s",
        )
        lost += await self.check_load_documents(result, start, fault_end)
        result.documents_lost = lost
        dead = self.stack.dead()
        result.check("every process of the stack is running", not dead, ", ".join(dead))


async def eventually(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    for _ in range(max(1, round(timeout_s / interval_s))):
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return predicate()


def count_ok(outcomes: list[Outcome], kind: str) -> tuple[int, int]:
    of_kind = [o for o in outcomes if o.kind == kind]
    return sum(o.ok for o in of_kind), len(of_kind)


def ok_detail(outcomes: list[Outcome], kind: str) -> str:
    ok, total = count_ok(outcomes, kind)
    bad = sorted({o.status for o in outcomes if o.kind == kind and not o.ok})
    return f"{ok}/{total} succeeded" + (f" (others: {', '.join(bad)})" if bad else "")


# -- Redis stopped, then back ---------------------------------------------------------------------


async def redis_outage(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    await asyncio.sleep(ctx.options.green_window_s)  # caches warm, baseline load
    redis = ctx.stack.redis_process().name
    pids = {name: pid for name, pid in ctx.stack.pids().items() if name != redis}
    down = time.monotonic()
    await asyncio.to_thread(ctx.stack.stop_process, redis)
    await asyncio.sleep(ctx.options.redis_outage_s)
    back = time.monotonic()
    await asyncio.to_thread(ctx.stack.restart, redis)
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


# -- Celery worker SIGKILLed during a large ingest ------------------------------------------------


async def job_states(client: ApiClient, job_ids: list[str], collection: str) -> list[dict[str, Any]]:
    jobs = [await client.job(job_id, collection) for job_id in job_ids]
    return [job for job in jobs if job is not None]


async def worker_kill(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    n = ctx.options.bulk_documents
    collection = f"chaos-bulk-{uuid.uuid4().hex[:6]}"
    documents = [
        {
            "id": f"bulk-{i:04d}",
            "text": f"Bulk document number {i}. A short text that makes exactly one chunk.",
        }
        for i in range(n)
    ]
    client = ctx.client()
    try:
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
        await asyncio.to_thread(ctx.stack.kill, "ingestion-worker")
        killed_at_done = done
        await asyncio.sleep(2)
        await asyncio.to_thread(ctx.stack.restart, "ingestion-worker")
        fault_end = time.monotonic()
        result.check(
            "the worker was killed mid-ingest",
            0 < killed_at_done < n,
            f"{killed_at_done}/{n} done at the kill",
        )

        deadline = time.monotonic() + ctx.options.indexing_timeout_s
        jobs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            jobs = await job_states(client, job_ids, collection)
            if len(jobs) == len(job_ids) and all(j["state"] in ("succeeded", "failed") for j in jobs):
                break
            await asyncio.sleep(1)
        states = sorted({j["state"] for j in jobs})
        result.check(
            "every job finished and none failed",
            states == ["succeeded"] and len(jobs) == len(job_ids),
            f"job states {states}",
        )
    finally:
        await client.aclose()

    chunks = {
        d["id"]: await asyncio.to_thread(ctx.stack.document_chunks, collection, d["id"]) for d in documents
    }
    missing = [d for d, c in chunks.items() if c == 0]
    duplicated = [d for d, c in chunks.items() if c > 1]
    result.check("no document missing from the index", not missing, f"{len(missing)} missing {missing[:5]}")
    result.check(
        "no document indexed twice (one chunk each)",
        not duplicated,
        f"{len(duplicated)} with extra chunks {duplicated[:5]}",
    )
    counts = (await asyncio.to_thread(ctx.stack.collection_counts)).get(collection, (0, 0))
    result.check(
        "the collection holds exactly the documents sent, once",
        counts == (n, n),
        f"(documents, chunks) = {counts}",
    )
    await ctx.finish(result, start, fault_end, lost=len(missing))


# -- LLM upstream faults --------------------------------------------------------------------------


def llm_metric(ctx: Context, name: str, **labels: str) -> float:
    """Sum of an llm-proxy counter over the series matching ``labels``."""
    text = httpx.get(f"{ctx.stack.llm_proxy_url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def answers(primary: bool = True) -> list[dict[str, Any]]:
    """The upstream's ordinary answers, queued after a step's faults."""
    normal = [{"model": "backup", "content": BACKUP_CONTENT, "times": 10_000}]
    if primary:
        normal.insert(0, {"model": "primary", "content": PRIMARY_CONTENT, "times": 10_000})
    return normal


async def scripted(ctx: Context, *behaviours: dict[str, Any]) -> None:
    upstream = ctx.stack.upstream()
    try:
        await asyncio.to_thread(upstream.reset)
        await asyncio.to_thread(upstream.script, *behaviours)
    finally:
        upstream.close()


async def upstream_requests(ctx: Context, model: str) -> list[dict[str, Any]]:
    upstream = ctx.stack.upstream()
    try:
        return await asyncio.to_thread(upstream.requests, model)
    finally:
        upstream.close()


async def rest_answer(ctx: Context, client: ApiClient, model: str) -> tuple[Outcome, str]:
    outcome, response = await client.chat("What does the model answer?", model=model)
    ctx.record(outcome)
    answer = response.json().get("answer", "") if response is not None and response.status_code == 200 else ""
    return outcome, answer


async def streamed(ctx: Context, client: ApiClient, model: str, timeout_s: float = 20) -> StreamResult | None:
    try:
        result = await asyncio.wait_for(
            client.chat_stream("What does the model answer?", model=model), timeout_s
        )
    except TimeoutError:
        return None
    ctx.record(result.outcome)
    return result


async def llm_upstream(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    client = ctx.client()
    try:
        # 429 twice, honouring Retry-After: the third attempt answers.
        await scripted(ctx, {"model": "primary", "status": 429, "retry_after": 0.2, "times": 2}, *answers())
        outcome, answer = await rest_answer(ctx, client, PRIMARY)
        tries = len(await upstream_requests(ctx, "primary"))
        result.check(
            "429s are retried (Retry-After honoured) and the primary answers",
            outcome.ok and answer == PRIMARY_CONTENT and tries == 3,
            f"{outcome.status}, {tries} upstream attempts, answer {answer!r}",
        )

        # 500s: the fallback answers every request, and the breaker stops the calls to the primary.
        opened_before = await asyncio.to_thread(
            llm_metric, ctx, "ragfleet_llm_proxy_breaker_transitions_total", state="open"
        )
        await scripted(ctx, {"model": "primary", "status": 500, "times": 10_000}, *answers(primary=False))
        got = [await rest_answer(ctx, client, PRIMARY) for _ in range(6)]
        fallback_ok = all(o.ok and a == BACKUP_CONTENT for o, a in got)
        result.check(
            "with the primary failing (500), the fallback model answers every request",
            fallback_ok,
            ", ".join(f"{o.status}:{a[:20]!r}" for o, a in got),
        )
        primary_calls = len(await upstream_requests(ctx, "primary"))
        opened = await asyncio.to_thread(
            llm_metric, ctx, "ragfleet_llm_proxy_breaker_transitions_total", state="open"
        )
        result.check(
            "the breaker opened and spared the failing upstream",
            opened > opened_before and primary_calls < 6 * 3,
            f"{primary_calls} calls reached the primary for 6 requests; open transitions {opened_before:g} -> {opened:g}",
        )

        # The primary heals: a half-open probe closes the breaker and the primary answers again.
        await scripted(ctx, *answers())
        healed_from = time.monotonic()
        healed_after = None
        while time.monotonic() - healed_from < 30:
            outcome, answer = await rest_answer(ctx, client, PRIMARY)
            if answer == PRIMARY_CONTENT:
                healed_after = time.monotonic() - healed_from
                break
            await asyncio.sleep(0.5)
        result.recovery_s = healed_after
        result.check(
            "once the primary heals, the breaker closes and it answers again",
            healed_after is not None,
            f"after {healed_after:.1f} s" if healed_after is not None else "never in 30 s",
        )

        # Hanging before the first token: the proxy gives up and answers from elsewhere, no hang.
        await scripted(ctx, {"model": "primary", "hang": True, "times": 1}, *answers())
        stream = await streamed(ctx, client, PRIMARY)
        hung = [r for r in await upstream_requests(ctx, "primary") if r["behaviour"].get("hang")]
        done = stream is not None and stream.terminal is not None and stream.terminal.event == "done"
        result.check(
            "a hanging upstream is abandoned and the stream still answers",
            done and all(r["client_disconnected"] for r in hung),
            f"status {stream.outcome.status if stream else 'no end within 20 s'}, {len(hung)} hung call(s) abandoned",
        )

        # Dropping mid-stream after tokens went out: nothing can be retried, so a clean error event.
        await scripted(
            ctx,
            {"model": "primary", "drop_at": 3, "content": "one two three four five six", "times": 1},
            *answers(),
        )
        stream = await streamed(ctx, client, PRIMARY)
        terminal = stream.terminal if stream else None
        result.check(
            "a stream dropped mid-way ends with a terminal event (error or done), not a hang",
            terminal is not None,
            f"ended with {terminal.event if terminal else 'nothing'}: {terminal.data if terminal else ''}",
        )

        # No fallback left: the SSE client gets an error event, the REST client a JSON error.
        await scripted(ctx, {"model": "solo", "status": 500, "times": 10_000})
        stream = await streamed(ctx, client, SOLO)
        terminal = stream.terminal if stream else None
        result.check(
            "with no fallback left, the SSE client gets a clean `event: error`",
            terminal is not None and terminal.event == "error",
            f"{terminal.event if terminal else 'no terminal event'} {terminal.data if terminal else ''}",
        )
        outcome, response = await client.chat("What does the model answer?", model=SOLO)
        ctx.record(outcome)
        error = (
            response.json().get("error", {})
            if response is not None
            and response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        result.check(
            "... and the REST client a JSON 5xx naming the error",
            outcome.status.startswith("5") and bool(error.get("code")),
            f"{outcome.status} {error}",
        )
        fault_end = time.monotonic()
    finally:
        await client.aclose()
        await scripted(ctx, *answers())
    load = [o for o in between(ctx.load.outcomes, start, fault_end) if o.kind in LOAD_KINDS]
    result.check(
        "the load (the extractive model) was untouched by another model's faults",
        all(o.ok for o in load),
        f"{sum(o.ok for o in load)}/{len(load)} succeeded",
    )
    result.check(
        "the fallback was counted",
        await asyncio.to_thread(
            llm_metric, ctx, "ragfleet_llm_proxy_fallbacks_total", model=PRIMARY, fallback=BACKUP
        )
        > 0,
    )
    recovery = result.recovery_s
    await ctx.finish(result, start, fault_end)
    result.recovery_s = recovery  # the breaker's healing is this scenario's recovery


# -- a gateway replica SIGKILLed during streaming chats ---------------------------------------------


async def pinned_clients(ctx: Context, per_replica: int) -> dict[str, list[ApiClient]]:
    """Clients with an affinity cookie, grouped by the replica NGINX pinned them to."""
    groups: dict[str, list[ApiClient]] = {}
    for _ in range(per_replica * 8):
        client = ctx.client()
        response = await client.http.get("/healthz")
        group = groups.setdefault(response.headers.get("x-ragfleet-replica", "?"), [])
        if len(group) < per_replica:
            group.append(client)
        else:
            await client.aclose()
        if len(groups) >= 2 and all(len(g) >= per_replica for g in groups.values()):
            break
    return groups


def continues(before: list[SseEvent], after: list[SseEvent]) -> bool:
    """The resumed events pick up right after the last one seen: no gap, nothing twice."""
    return bool(before and after) and after[0].seq == before[-1].seq + 1


def finished_whole(events: list[SseEvent]) -> bool:
    """Ends with ``done`` whose answer is exactly the tokens after the last ``restart``."""
    if not events or events[-1].event != "done":
        return False
    restarts = [i for i, e in enumerate(events) if e.event == "restart"]
    tokens = events[restarts[-1] + 1 :] if restarts else events
    return "".join(e.data.get("text", "") for e in tokens if e.event == "token") == events[-1].data.get(
        "answer"
    )


async def gateway_kill(ctx: Context, result: ScenarioResult) -> None:
    start = time.monotonic()
    words = " ".join(f"word{i}" for i in range(40))
    await scripted(
        ctx, {"model": "slow", "content": words, "token_interval_ms": 150, "times": 10_000}, *answers()
    )
    groups = await pinned_clients(ctx, per_replica=3)
    clients = [c for group in groups.values() for c in group]
    try:
        victim = "gateway-1"
        slow_on = {name: group[:2] for name, group in groups.items()}  # streaming when the replica dies
        fast_on_victim = groups.get(victim, [])[2:]  # finished generating, client gone, resumes later
        result.check(
            "clients are pinned to both replicas",
            len(groups) >= 2 and victim in groups,
            str({k: len(v) for k, v in groups.items()}),
        )

        fast = [
            await c.chat_stream("How often are API keys rotated?", stop_after=1, kind="chat-sse")
            for c in fast_on_victim
        ]
        live: dict[ApiClient, list[SseEvent]] = {c: [] for cs in slow_on.values() for c in cs}
        tasks = {
            c: asyncio.create_task(
                c.chat_stream("Tell me slowly.", model=SLOW, events=events, kind="chat-sse")
            )
            for c, events in live.items()
        }
        # Kill while every slow stream is mid-answer (sources and a few tokens delivered).
        await eventually(lambda: all(len(e) >= 4 for e in live.values()), timeout_s=20)
        killed_at = time.monotonic()
        await asyncio.to_thread(ctx.stack.kill, victim)
        finished = {c: await t for c, t in tasks.items()}
        for stream in finished.values():
            ctx.record(stream.outcome)

        survivors = [finished[c] for c in slow_on.get(next(n for n in groups if n != victim), [])]
        result.check(
            "streams on the surviving replica finished untouched",
            all(s.outcome.ok for s in survivors),
            ", ".join(s.outcome.status for s in survivors),
        )

        completed, continued, restarted, details = 0, 0, 0, []
        to_resume = [(c, finished[c].events) for c in slow_on.get(victim, [])] + [
            (c, s.events) for c, s in zip(fast_on_victim, fast, strict=True)
        ]
        for client, seen in to_resume:
            if not seen:
                details.append("no event before the kill")
                continue
            resumed = await client.chat_stream(last_event_id=seen[-1].id, kind="chat-sse")
            ctx.record(resumed.outcome)
            other = resumed.replica not in (None, victim)
            if continues(seen, resumed.events) and other:
                continued += 1
            restarted += any(e.event == "restart" for e in resumed.events)
            if finished_whole(seen + resumed.events):
                completed += 1
            terminal = resumed.terminal
            details.append(
                f"{resumed.replica}: {len(seen)} seen, then {[e.event for e in resumed.events][:3]}…{terminal.event if terminal else 'no end'}"
            )
        result.check(
            "every cut-off client resumed on the other replica exactly after its last event",
            continued == len(to_resume) and bool(to_resume),
            "; ".join(details),
        )
        result.check(
            "every resumed stream ended with `done` and a whole answer (regenerated after `restart` "
            "when its replica died mid-answer)",
            completed == len(to_resume),
            f"{completed} of {len(to_resume)} complete, {restarted} after a restart",
        )
        result.check(
            "the answers cut off mid-generation were taken over by the other replica",
            restarted >= len(slow_on.get(victim, [])),
            f"{restarted} restarted, {len(slow_on.get(victim, []))} were mid-answer",
        )
        await asyncio.to_thread(ctx.stack.restart, victim)
        fault_end = time.monotonic()
        result.notes.append(f"{victim} was down for {fault_end - killed_at:.1f} s (SIGKILL, then restarted)")
    finally:
        for client in clients:
            await client.aclose()
        await scripted(ctx, *answers())
    # NGINX keeps a replica it failed to reach out of rotation for fail_timeout (5 s): the
    # resumes above tried the dead one until just before its restart.
    for _ in range(15):
        spread = await pinned_clients(ctx, per_replica=1)
        for group in spread.values():
            for client in group:
                await client.aclose()
        if len(spread) >= 2:
            break
        await asyncio.sleep(1)
    result.check("the restarted replica takes new clients again", len(spread) >= 2, str(sorted(spread)))
    await ctx.finish(result, start, killed_at)


# -- a retrieval replica restarted ------------------------------------------------------------------

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


async def seed(ctx: Context) -> None:
    """Index what the load searches for, before the load starts."""
    client = ctx.client()
    try:
        documents = [{"id": doc_id, "text": text} for doc_id, text in SEED_DOCUMENTS]
        outcome, response = await client.ingest("default", documents)
        if response is None or response.status_code != 202:
            raise RuntimeError(f"seeding the corpus was refused: {outcome.status}")
        job_id = response.json()["job_id"]
        for _ in range(600):
            job = await client.job(job_id, "default")
            if job is not None and job["state"] in ("succeeded", "failed"):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("seeding the corpus did not finish in 120 s")
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: Callable[[Context, ScenarioResult], Awaitable[None]]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "redis-outage",
            "Redis stopped (SIGTERM) for the outage, then started again on the same port and data.",
            redis_outage,
        ),
        Scenario(
            "worker-kill",
            "The Celery worker SIGKILLed during a large ingest, then restarted: every document ingested exactly once.",
            worker_kill,
        ),
        Scenario(
            "llm-upstream",
            "The LLM upstream answers 429, 500, hangs and drops mid-stream: retries, breaker, fallback, clean errors.",
            llm_upstream,
        ),
        Scenario(
            "gateway-kill",
            "One gateway replica SIGKILLed during streaming chats: clients resume on the other replica.",
            gateway_kill,
        ),
        Scenario(
            "retrieval-restart",
            "The retrieval replica SIGKILLed and restarted while a document is updated: no loss, caches correct.",
            retrieval_restart,
        ),
    )
}


async def run_scenario(ctx: Context, scenario: Scenario) -> ScenarioResult:
    result = ScenarioResult(scenario.name, scenario.description)
    start = time.monotonic()
    log.info("scenario %s: %s", scenario.name, scenario.description)
    try:
        await scenario.run(ctx, result)
    except Exception as exc:
        log.exception("scenario %s failed to run", scenario.name)
        result.check("the scenario ran to its end", False, f"{type(exc).__name__}: {exc}")
    for name in ctx.stack.dead():  # leave the stack whole for the next scenario
        await asyncio.to_thread(ctx.stack.restart, name)
    result.duration_s = time.monotonic() - start
    result.record_load(ctx.load.since(start))
    log.info("scenario %s: %s", scenario.name, result.verdict)
    return result
