"""What every scenario shares: the options, the context (the stack, the load, the checks every
scenario ends with) and small helpers; and the corpus the load searches, seeded first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ragfleet.chaos.client import ApiClient
from ragfleet.chaos.load import LOAD_COLLECTION, LOAD_KINDS, SEED_DOCUMENTS, LoadDriver
from ragfleet.chaos.stack import ChaosStack
from ragfleet.chaos.verdicts import Outcome, ScenarioResult, recovery_time


@dataclass
class ChaosOptions:
    redis_outage_s: float = 30.0
    bulk_documents: int = 200
    green_window_s: float = 3.0
    recovery_limit_s: float = 30.0
    indexing_timeout_s: float = 180.0
    eviction_maxmemory: str = "8mb"


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
            if job is not None and job["state"] == "succeeded":
                return
            if job is not None and job["state"] == "failed":
                # Said here, not discovered later as every search answering 404 collection_not_found.
                raise RuntimeError(f"seeding the corpus failed: {job.get('error') or job}")
            await asyncio.sleep(0.2)
        raise RuntimeError("seeding the corpus did not finish in 120 s")
    finally:
        await client.aclose()
