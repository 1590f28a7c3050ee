"""The faults, one at a time, each ending in checked conditions (``ScenarioResult.check``).

Every scenario runs under the steady load of ``load.py``, leaves the stack whole for the next one
(whatever it killed is running again), and is judged on what clients saw, on documents lost, and
on how long the stack took to be fully green again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ragfleet.chaos.scenarios.context import ChaosOptions, Context, seed
from ragfleet.chaos.scenarios.gateway import gateway_kill
from ragfleet.chaos.scenarios.ingestion import worker_kill
from ragfleet.chaos.scenarios.llm import llm_upstream
from ragfleet.chaos.scenarios.redis import cache_eviction, redis_outage, state_redis_kill
from ragfleet.chaos.scenarios.retrieval import retrieval_restart
from ragfleet.chaos.verdicts import ScenarioResult

__all__ = ["SCENARIOS", "ChaosOptions", "Context", "Scenario", "run_scenario", "seed"]

log = logging.getLogger("ragfleet.chaos")


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
            "Both Redis (state and cache) stopped (SIGTERM) for the outage, then started again on the same ports and data.",
            redis_outage,
        ),
        Scenario(
            "state-redis-kill",
            "The state Redis SIGKILLed during a large ingest, restarted from its config: keys and every accepted document survive.",
            state_redis_kill,
        ),
        Scenario(
            "cache-eviction",
            "The cache Redis squeezed to a few MiB and flooded: it evicts, requests still succeed, the state Redis is untouched.",
            cache_eviction,
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
