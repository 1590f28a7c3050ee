"""LLM upstream faults: 429s, 500s (breaker, fallback), hangs and streams cut mid-answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ragfleet.chaos.client import ApiClient, StreamResult
from ragfleet.chaos.load import LOAD_KINDS
from ragfleet.chaos.scenarios.context import Context
from ragfleet.chaos.stack import BACKUP, BACKUP_CONTENT, PRIMARY, PRIMARY_CONTENT, SOLO
from ragfleet.chaos.verdicts import Outcome, ScenarioResult, between


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
