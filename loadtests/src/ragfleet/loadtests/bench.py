"""The benchmark suite: run the services' benchmarks and a short Locust run in sequence, keep the result
in the history, compare it with the previous baseline and flag regressions.

    python -m ragfleet.loadtests.bench [--quick] [--only retrieval,llm-proxy,ingestion,loadtest]
        [--retrieval-n 100000] [--host URL] [--baseline FILE] [--tolerance 0.15]
        [--tolerance-for 'loadtest.*=0.3'] [--no-save]

Parts (each a script of its own, run as a child process that writes its figures as JSON):

- ``retrieval``: services/retrieval/bench/bench_store.py — embedded index in process: recall@10,
  vector/filtered/BM25/hybrid q/s, embedding throughput;
- ``llm-proxy``: services/llm-proxy/bench/bench_overhead.py — what the proxy adds per request;
- ``ingestion``: services/ingestion/bench/bench_ingest.py — chunks/s end to end vs raw embedding;
- ``loadtest``: ``ragfleet.loadtests.run``, the search scenario (vector mode) against a stack this
  command starts on free ports (or ``--host`` with a running one), gates off: its numbers are judged
  here, against history, not against the absolute targets of ``make loadtest``.

Right before each part, the reference workloads its figures scale with are measured
(ragfleet.bench.calibration: the bare echo app under an aiohttp load, raw hnswlib search, raw ONNX
embedding; the Locust part measures the echo app under its own Locust), and while it runs, the
share of the machine's CPU that other work used. The run is stored as
``benchmarks/history/<UTC time>-<commit>.json`` (commit, dirty flag, machine and its fingerprint,
calibration, load average, command, profile, per-metric value/unit/direction/reference and the
part's conditions), compared like with like with earlier runs of the same profile
(ragfleet.bench.history), and summarised in ``docs/benchmarks/latest.md`` and the table of
``docs/benchmarks/README.md``. Exit code: 0 fine, 4 a regression beyond its noise band, 5 a
benchmark failed to produce its numbers.

This module runs the suite; ``bench_parts`` says what each part runs and reports, ``bench_report``
writes the pages.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragfleet.bench import calibration, history
from ragfleet.bench.stores import FileStore
from ragfleet.loadtests.bench_parts import (
    LOADTEST_DIR,
    PART_REFERENCES,
    PARTS,
    PROFILES,
    ROOT,
    Profile,
    Target,
    loadtest_command,
    metric_entries,
    read_figures,
    script_commands,
    tolerances,
)
from ragfleet.loadtests.bench_report import baseline_notes, run_page, update_readme
from ragfleet.loadtests.options import stack_metrics_urls

log = logging.getLogger("ragfleet.loadtests.bench")

REGRESSION_EXIT_CODE = history.EXIT_REGRESSION
PART_FAILED_EXIT_CODE = 5
_PASSWORD_IN_URL = re.compile(r"(redis://)[^@/\s]*@")


# -- the machine and the repository -------------------------------------------------------------------


def shown_path(path: Path) -> str:
    """Relative to the repository when inside it: the pages that show it are committed."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# What make bench itself writes into the checkout (the default --docs-dir): not what was measured.
SUMMARIES_EXCLUDED = (":(exclude)docs/benchmarks/latest.md", ":(exclude)docs/benchmarks/README.md")


def git_state() -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            done = subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    return {
        "commit": commit or "unknown",
        "short": commit[:7] if commit else "unknown",
        # Uncommitted changes mean the commit alone does not say what was measured; the summaries
        # a previous run wrote are not code (a second run marked itself dirty by the first one's).
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", *SUMMARIES_EXCLUDED)),
    }


# -- running --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def load_target(args: argparse.Namespace, run_dir: Path) -> Iterator[Target]:
    """The stack the Locust part loads: the one at --host, or a fresh one on free ports, stopped after
    (started only for this part, so it takes no CPU from the others)."""
    if args.host:
        yield Target(args.host, args.redis_url, tuple(args.metrics_url or stack_metrics_urls()), None)
        return
    from ragfleet.devstack.settings import DevstackSettings
    from ragfleet.devstack.stack import Stack

    settings = DevstackSettings.on_free_ports(run_dir / "stack", log_level="WARNING")
    stack = Stack(settings)
    log.info("starting a stack on free ports for the Locust run...")
    stack.start()
    try:
        retrieval = f"http://127.0.0.1:{settings.retrieval_port}"
        yield Target(stack.url, stack.redis_url, tuple(stack_metrics_urls(settings)), retrieval)
    finally:
        stack.stop()


def run_loadtest_part(
    args: argparse.Namespace, profile: Profile, reports: Path, work: Path, timeout_s: float
) -> dict[str, Any]:
    from ragfleet.devstack.processes import StartupError

    try:
        with load_target(args, work) as target:
            argv = loadtest_command(profile, reports, target)
            return run_part("loadtest", argv, reports / "loadtest.log", timeout_s)
    except StartupError as exc:
        load = load_average()
        return {
            "ok": False,
            "error": f"the stack did not start: {exc}",
            "seconds": 0.0,
            "load_before": load,
            "load_after": load,
        }


def run_part(part: str, argv: list[str], log_file: Path, timeout_s: float) -> dict[str, Any]:
    """Run one benchmark as a child process; its output goes to log_file. Returns the part's facts."""
    # The virtualenv's interpreter path says nothing; a Redis password must not reach the history.
    shown = _PASSWORD_IN_URL.sub(r"\1***@", shlex.join(["python", *argv[1:]]))
    facts: dict[str, Any] = {"ok": False, "command": shown, "load_before": load_average()}
    log.info("%s: %s", part, shown)
    started = time.monotonic()
    with log_file.open("w") as out:
        try:
            done = subprocess.run(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
            facts["exit_code"] = done.returncode
            facts["ok"] = done.returncode == 0
        except subprocess.TimeoutExpired:
            facts["error"] = f"timed out after {timeout_s:.0f} s"
    facts["seconds"] = round(time.monotonic() - started, 1)
    facts["load_after"] = load_average()
    if not facts["ok"] and "error" not in facts:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        facts["error"] = f"exit code {facts['exit_code']}: " + "\n".join(tail)
    return facts


def collect(part: str, facts: dict[str, Any], figures: Path, reports: Path) -> dict[str, history.Metric]:
    """The part's metrics from its JSON, with the conditions they were measured under; a part that
    produced none is marked failed."""
    if not facts["ok"]:
        return {}
    try:
        values, own_references = read_figures(part, figures, reports)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        facts["ok"] = False
        facts["error"] = f"no figures: {exc!r}"
        return {}
    facts["references"] = {**facts["references"], **own_references}
    return metric_entries(values, facts["references"], facts["foreign_cpu"])


def run_measured(part: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The part's references measured right before it, then the part; other work's share of the CPU
    over both (the references are this run's work too)."""
    meter = calibration.ForeignCpu().start()
    references = calibration.measure(PART_REFERENCES[part])
    facts: dict[str, Any] = run()
    facts["references"] = references["figures"]
    facts["references_skipped"] = references["skipped"]
    facts["foreign_cpu"] = meter.share()
    log.info("%s: other work used %s of the CPU meanwhile", part, _share(facts["foreign_cpu"]))
    return facts


def _share(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.0f} %"


# -- output -----------------------------------------------------------------------------------------------


# -- the command -----------------------------------------------------------------------------------------


def parse_tolerance_override(text: str) -> tuple[str, float]:
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"expected PATTERN=FRACTION (e.g. 'loadtest.*=0.3'), got {text!r}")
    try:
        return pattern, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {value!r} in {text!r}") from None


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ragfleet.loadtests.bench",
        description="Run the benchmark suite, store it in the history and flag regressions.",
        allow_abbrev=False,
    )
    p.add_argument("--quick", action="store_true", help="small sizes and short runs (about two minutes)")
    p.add_argument(
        "--only", type=parse_parts, default=list(PARTS), help=f"comma-separated: {','.join(PARTS)}"
    )
    p.add_argument("--retrieval-n", type=int, default=None, help="chunks in the retrieval benchmark's index")
    p.add_argument(
        "--host", default=None, help="load a running stack (gateway or NGINX URL) instead of starting one"
    )
    p.add_argument(
        "--redis-url", default=None, help="with --host: its gateway's state Redis (default: make run's)"
    )
    p.add_argument(
        "--metrics-url",
        action="append",
        default=None,
        help="with --host: /metrics of retrieval and each gateway (repeat); default: make run's",
    )
    p.add_argument("--baseline", type=Path, default=None, help="compare with this record, not the history")
    p.add_argument(
        "--tolerance",
        type=float,
        default=history.DEFAULT_TOLERANCE,
        help="default tolerance floor (relative)",
    )
    p.add_argument(
        "--tolerance-for",
        type=parse_tolerance_override,
        action="append",
        default=[],
        metavar="PATTERN=FRACTION",
        help="per-metric tolerance, fnmatch pattern (repeatable), e.g. 'loadtest.*=0.3'",
    )
    p.add_argument("--history-dir", type=Path, default=ROOT / "benchmarks" / "history")
    p.add_argument(
        "--docs-dir", type=Path, default=ROOT / "docs" / "benchmarks", help="latest.md and README.md"
    )
    p.add_argument(
        "--reports-dir", type=Path, default=None, help="the parts' own reports (default reports/bench-<time>)"
    )
    p.add_argument(
        "--max-foreign-cpu",
        type=float,
        default=history.MAX_FOREIGN_CPU,
        help="share of the CPU other work may use during a part before its figures are not judged (1: always judged)",
    )
    p.add_argument("--no-save", action="store_true", help="compare only: keep this run out of the history")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the stack's readiness polls, one line each
    cli = parser()
    args = cli.parse_args(argv)
    explicit: history.Record | None = None
    if args.baseline:  # read it now, not after minutes of benchmarks
        try:
            explicit = history.Record.from_json(json.loads(args.baseline.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            cli.error(f"--baseline {args.baseline}: not a readable benchmark record ({exc})")
    profile: Profile = PROFILES["quick" if args.quick else "full"]
    if args.retrieval_n is not None:
        profile = replace(profile, retrieval_n=args.retrieval_n)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reports: Path = args.reports_dir or ROOT / "reports" / f"bench-{started_at.replace(':', '')}"
    reports.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(
        ["python", "-m", "ragfleet.loadtests.bench", *(sys.argv[1:] if argv is None else argv)]
    )
    the_machine = {**calibration.machine(), "load_before": load_average()}
    git = git_state()
    extra: dict[str, Any] = {"git": git, "command": shown, "profile": asdict(profile), "parts": {}}
    metrics: dict[str, history.Metric] = {}
    timeout_s = 300 if args.quick else 1200
    with tempfile.TemporaryDirectory(prefix="ragfleet-bench-") as tmp:
        figures = Path(tmp)
        commands = script_commands(profile, reports, figures)
        for part in args.only:
            if part == "loadtest":
                facts = run_measured(
                    part, functools.partial(run_loadtest_part, args, profile, reports, figures, timeout_s)
                )
                facts["report"] = shown_path(reports / LOADTEST_DIR / "summary.md")
            else:
                facts = run_measured(
                    part,
                    functools.partial(run_part, part, commands[part], reports / f"{part}.log", timeout_s),
                )
                facts["report"] = shown_path(reports / f"{part}.md")
            extra["parts"][part] = facts
            metrics.update(collect(part, facts, figures, reports))
            if not facts["ok"]:
                log.error("%s failed: %s", part, facts.get("error"))
    the_machine["load_after"] = load_average()
    extra["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The run's calibration, for the pages and for records read without per-metric references: each
    # reference as first measured in this run.
    run_calibration: dict[str, float] = {}
    for facts in extra["parts"].values():
        for name, value in (facts.get("references") or {}).items():
            run_calibration.setdefault(name, value)
    record = history.Record(
        started_at=started_at,
        label=git["short"] + ("+dirty" if git["dirty"] else ""),
        metrics=metrics,
        machine=the_machine,
        fingerprint=calibration.fingerprint(the_machine),
        calibration=run_calibration,
        profile=profile.key(own_stack=not args.host),
        extra=extra,
    )
    store = FileStore(args.history_dir)
    earlier = store.records()
    if not args.no_save:
        log.info("stored %s", store.append(record))
    rules = tolerances(args.tolerance, args.tolerance_for, args.max_foreign_cpu)
    rows = history.compare(record, earlier, rules, baseline=explicit)
    notes = baseline_notes(record, rows)
    args.docs_dir.mkdir(parents=True, exist_ok=True)
    latest = args.docs_dir / "latest.md"
    latest.write_text(run_page(record, rows, notes), encoding="utf-8")
    update_readme(args.docs_dir / "README.md", record, rows, latest)
    sys.stdout.write("\n".join(notes) + "\n\n" + history.table(rows) + "\n\n")
    log.info("summary: %s; the parts' reports and logs: %s", latest, reports)

    flagged = history.regressions(rows)
    if flagged:
        log.error("regression beyond tolerance: %s", ", ".join(r.name for r in flagged))
        return REGRESSION_EXIT_CODE
    if not all(facts["ok"] for facts in extra["parts"].values()):
        return PART_FAILED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
