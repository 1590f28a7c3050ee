"""``python -m ragfleet.chaos``: start a stack of its own, load it, inject the faults one at a time,
write ``reports/chaos-<timestamp>/summary.{md,json}``; the exit code is 1 if any scenario failed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ragfleet.chaos.load import LoadDriver
from ragfleet.chaos.scenarios import SCENARIOS, ChaosOptions, Context, run_scenario, seed
from ragfleet.chaos.stack import ChaosStack
from ragfleet.chaos.verdicts import ScenarioResult, machine_description, write_report
from ragfleet.devstack.processes import StartupError

log = logging.getLogger("ragfleet.chaos")


async def run(names: list[str], options: ChaosOptions, stack: ChaosStack) -> list[ScenarioResult]:
    load = LoadDriver(stack.url, stack.api_key)
    ctx = Context(stack, load, options)
    await seed(ctx)
    load.start()
    try:
        return [await run_scenario(ctx, SCENARIOS[name]) for name in names]
    finally:
        await load.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragfleet.chaos", description=__doc__)
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="run only this one (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--redis-outage-s", type=float, default=ChaosOptions.redis_outage_s)
    parser.add_argument("--bulk-documents", type=int, default=ChaosOptions.bulk_documents)
    parser.add_argument("--report-dir", type=Path, default=None, help="default: reports/chaos-<timestamp>")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="the chaos stack's logs and data (default: a temporary dir)",
    )
    args = parser.parse_args(argv)

    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<20}{scenario.description}")
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    names = args.scenario or list(SCENARIOS)
    options = ChaosOptions(redis_outage_s=args.redis_outage_s, bulk_documents=args.bulk_documents)
    started = datetime.now(UTC)
    report_dir = args.report_dir or Path("reports") / f"chaos-{started:%Y%m%d-%H%M%S}"
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="ragfleet-chaos-"))
    t0 = time.monotonic()

    print(f"starting a chaos stack of its own (free ports; logs in {run_dir / 'logs'})...", flush=True)
    try:
        stack = ChaosStack.start(run_dir)
    except StartupError as exc:
        print(f"the chaos stack could not start: {exc}", file=sys.stderr)
        return 2
    try:
        results = asyncio.run(run(names, options, stack))
    finally:
        stack.stop()

    meta = {
        "command": "python -m ragfleet.chaos " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started": started.isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - t0,
        "machine": machine_description(),
        "options": vars(options),
        "logs": str(run_dir / "logs"),
    }
    summary = write_report(report_dir, results, meta)
    print()
    for result in results:
        print(
            f"  {result.verdict}  {result.name:<20} requests {result.requests_sent:>5}  "
            f"errors {result.client_errors or '{}'}  lost {result.documents_lost}  "
            f"recovery {'—' if result.recovery_s is None else f'{result.recovery_s:.1f} s'}"
        )
        for check in result.checks:
            if not check.passed:
                print(f"        failed: {check.name} — {check.detail}")
    print(f"\nreport: {summary}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
