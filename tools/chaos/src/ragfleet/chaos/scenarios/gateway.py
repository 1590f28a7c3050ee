"""A gateway replica SIGKILLed during streaming chats: clients resume on the other one."""

from __future__ import annotations

import asyncio
import time

from ragfleet.chaos.client import ApiClient, SseEvent
from ragfleet.chaos.scenarios.context import Context, eventually
from ragfleet.chaos.scenarios.llm import answers, scripted
from ragfleet.chaos.stack import SLOW
from ragfleet.chaos.verdicts import ScenarioResult


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
