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

Every run first measures its calibration (ragfleet.bench.calibration: the bare echo app under an
aiohttp load, raw hnswlib search, raw ONNX embedding), is stored as
``benchmarks/history/<UTC time>-<commit>.json`` (commit, dirty flag, machine and its fingerprint,
calibration, load average, command, profile, per-metric value/unit/direction/reference), compared
like with like with earlier runs of the same profile (ragfleet.bench.history: raw figures only on
the same machine fingerprint, figures normalised by the calibration otherwise), and summarised in
``docs/benchmarks/latest.md`` and the table of ``docs/benchmarks/README.md``. Exit code: 0 fine,
4 a regression beyond tolerance, 5 a benchmark failed to produce its numbers.
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragfleet.bench import calibration, history
from ragfleet.bench.history import Better
from ragfleet.bench.stores import FileStore
from ragfleet.loadtests.options import stack_metrics_urls
from ragfleet.loadtests.promscrape import HitRate

log = logging.getLogger("ragfleet.loadtests.bench")

ROOT = Path(__file__).resolve().parents[4]  # the repository: the benchmark scripts are not packaged
REGRESSION_EXIT_CODE = 4
PART_FAILED_EXIT_CODE = 5
PARTS = ("retrieval", "llm-proxy", "ingestion", "loadtest")
README_START = "<!-- latest-bench:start -->"
README_END = "<!-- latest-bench:end -->"


@dataclass(frozen=True)
class Profile:
    """Sizes and durations; runs are only compared with runs of the same profile."""

    name: str
    retrieval_n: int
    retrieval_queries: int
    proxy_rate: float
    proxy_seconds: float
    proxy_warmup_seconds: float
    ingest_documents: int
    loadtest_users: int
    loadtest_seconds: int


PROFILES = {
    # About 7 minutes on a quiet 2-core machine (estimated from the parts' own timings).
    "full": Profile("full", 100_000, 1000, 100, 20, 3, 200, 40, 45),
    # About two minutes: the same code paths, numbers only comparable with other quick runs.
    "quick": Profile("quick", 5_000, 200, 50, 3, 1, 20, 4, 5),
}


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    better: Better
    reference: str | None = None  # the calibration figure it scales with (ragfleet.bench.calibration)
    tolerance: float | None = None  # None: the run's default
    absolute: float = 0.0  # floor, in the metric's unit, for metrics whose baseline may be zero
    portable: bool = False  # the machine does not change it (recall, hit rate): always compared raw


HNSW, ONNX, ECHO, ECHO_CPU = "hnsw_qps", "onnx_texts_per_s", "echo_rps", "echo_requests_per_cpu_s"


# Every metric the suite records, with its unit and direction; extractors below must only use these.
CATALOG: dict[str, MetricSpec] = {
    "retrieval.recall_at_10": MetricSpec("ratio", "higher", tolerance=0.01, portable=True),
    "retrieval.vector_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.vector_qps_2_threads": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.vector_filtered_third_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.vector_filtered_rare_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.bm25_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.hybrid_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.hybrid_rrf_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.async_search_qps": MetricSpec("q/s", "higher", reference=HNSW),
    "retrieval.build_s": MetricSpec("s", "lower", reference=HNSW, tolerance=0.25),
    "retrieval.load_s": MetricSpec("s", "lower", reference=HNSW, tolerance=0.25),
    "retrieval.embed_query_single_per_s": MetricSpec("texts/s", "higher", reference=ONNX),
    "retrieval.embed_query_batched_per_s": MetricSpec("texts/s", "higher", reference=ONNX),
    "retrieval.embed_passage_batched_per_s": MetricSpec("texts/s", "higher", reference=ONNX),
    # Sub-millisecond latencies swing by tens of percent on a shared CPU: CPU time per request is
    # the steadier measure of the proxy's cost, the medians get wide tolerances. The added p99 is
    # left to the proxy's own report: on a starved CPU the open-loop tail went from 1 s to 38 s.
    # Three back-to-back runs on a quiet box gave 3.0, 3.7 and 4.1 ms: ±30 % is this figure's noise.
    "llm_proxy.json_cpu_ms_per_request": MetricSpec("ms", "lower", reference=ECHO_CPU, tolerance=0.4),
    "llm_proxy.stream_cpu_ms_per_request": MetricSpec("ms", "lower", reference=ECHO_CPU, tolerance=0.4),
    "llm_proxy.json_overhead_p50_ms": MetricSpec(
        "ms", "lower", reference=ECHO_CPU, tolerance=0.5, absolute=0.2
    ),
    "llm_proxy.stream_overhead_p50_ms": MetricSpec(
        "ms", "lower", reference=ECHO_CPU, tolerance=0.5, absolute=0.2
    ),
    "llm_proxy.errors": MetricSpec("count", "lower", portable=True),
    "ingestion.end_to_end_chunks_per_s": MetricSpec("chunks/s", "higher", reference=ONNX),
    "ingestion.raw_embed_chunks_per_s": MetricSpec("chunks/s", "higher", reference=ONNX),
    "ingestion.share_of_raw": MetricSpec("ratio", "higher", portable=True),
    "loadtest.vector_search_qps": MetricSpec("req/s", "higher", reference=ECHO),
    "loadtest.vector_search_p95_ms": MetricSpec("ms", "lower", reference=ECHO, tolerance=0.3),
    "loadtest.cache_hit_rate": MetricSpec("ratio", "higher", tolerance=0.05, portable=True),
    "loadtest.failure_ratio": MetricSpec("ratio", "lower", absolute=0.005, portable=True),
}


def metric_entries(values: dict[str, float]) -> dict[str, history.Metric]:
    """Values as stored in a record: each with its unit, direction and reference from the catalog."""
    return {
        name: history.Metric(
            value,
            spec.unit,
            spec.better,
            reference=spec.reference,
            portable=spec.portable,
            noise_floor=spec.absolute,
        )
        for name, value in values.items()
        for spec in (CATALOG[name],)
    }


def tolerances(default: float, overrides: Sequence[tuple[str, float]]) -> history.Tolerances:
    return history.Tolerances(
        default=default,
        per_metric={name: spec.tolerance for name, spec in CATALOG.items() if spec.tolerance is not None},
        overrides=tuple(overrides),
    )


# -- the parts: how each runs and which figures it reports ------------------------------------------


def retrieval_metrics(raw: dict[str, Any]) -> dict[str, float]:
    store, embeddings = raw["store"], raw["embeddings"]
    qps = store["qps"]  # query kind -> {"1": q/s on one thread, "2": on two}
    return {
        "retrieval.recall_at_10": store["recall@10"],
        "retrieval.vector_qps": qps["vector"]["1"],
        "retrieval.vector_qps_2_threads": qps["vector"]["2"],
        "retrieval.vector_filtered_third_qps": qps["vector + filter (1/3 match)"]["1"],
        "retrieval.vector_filtered_rare_qps": qps["vector + filter (~1 % match)"]["1"],
        "retrieval.bm25_qps": qps["bm25"]["1"],
        "retrieval.hybrid_qps": qps["hybrid (relative_score)"]["1"],
        "retrieval.hybrid_rrf_qps": qps["hybrid (rrf)"]["1"],
        "retrieval.async_search_qps": store["async_qps"],
        "retrieval.build_s": store["build_s"],
        "retrieval.load_s": store["load_s"],
        "retrieval.embed_query_single_per_s": embeddings["query_single_per_s"],
        "retrieval.embed_query_batched_per_s": embeddings["query_batched_per_s"],
        "retrieval.embed_passage_batched_per_s": embeddings["passage_batched_per_s"],
    }


def llm_proxy_metrics(raw: dict[str, Any]) -> dict[str, float]:
    rows = {(row["mode"], row["target"]): row for row in raw["rows"]}
    proxied = rows[("json", "proxy")]
    return {
        "llm_proxy.json_cpu_ms_per_request": proxied["cpu_ms_per_request"]["proxy"],
        "llm_proxy.stream_cpu_ms_per_request": rows[("stream", "proxy")]["cpu_ms_per_request"]["proxy"],
        "llm_proxy.json_overhead_p50_ms": proxied["overhead_header_p50_ms"],
        "llm_proxy.stream_overhead_p50_ms": rows[("stream", "proxy")]["overhead_header_p50_ms"],
        "llm_proxy.errors": float(sum(row["errors"] for row in raw["rows"])),
    }


def ingestion_metrics(raw: dict[str, Any]) -> dict[str, float]:
    end_to_end, embed_only = raw["end_to_end"]["per_s"], raw["raw"]["per_s"]
    return {
        "ingestion.end_to_end_chunks_per_s": end_to_end,
        "ingestion.raw_embed_chunks_per_s": embed_only,
        "ingestion.share_of_raw": end_to_end / embed_only,
    }


def loadtest_metrics(raw: dict[str, Any]) -> dict[str, float]:
    summary = raw["summary"]
    search = [e for e in summary["endpoints"] if e["name"].startswith("/v1/search")]
    if not search:
        raise ValueError("the Locust run made no search request")
    values = {
        "loadtest.vector_search_qps": sum(e["rps"] for e in search),
        "loadtest.vector_search_p95_ms": max(e["p95_ms"] for e in search),
        "loadtest.failure_ratio": summary["total_failures"] / max(1, summary["total_requests"]),
    }
    counts = summary.get("hit_rate")
    rate = HitRate(**counts).rate if counts else None  # from the services' /metrics, as the gate reads it
    if rate is not None:
        values["loadtest.cache_hit_rate"] = rate
    return values


@dataclass(frozen=True)
class Target:
    """Where the Locust part sends its load: a running stack (--host) or one this command starts."""

    host: str
    redis_url: str | None  # None: the keys CLI finds make run's state Redis
    metrics_urls: tuple[str, ...]  # retrieval's and the gateways': where the cache hit rate is counted
    seed_corpus_url: str | None  # retrieval, to write the corpus a fresh stack lacks


def script_commands(profile: Profile, reports: Path, figures: Path) -> dict[str, list[str]]:
    """The services' benchmark scripts, run from the repository root; figures/<part>.json is their output."""
    p = profile
    commands = {
        "retrieval": [
            *("services/retrieval/bench/bench_store.py", "--n", str(p.retrieval_n)),
            *("--queries", str(p.retrieval_queries), "--out", str(reports / "retrieval.md")),
        ],
        "llm-proxy": [
            *("services/llm-proxy/bench/bench_overhead.py", "--rate", f"{p.proxy_rate:g}"),
            *("--duration", f"{p.proxy_seconds:g}", "--warmup", f"{p.proxy_warmup_seconds:g}"),
            *("--output", str(reports / "llm-proxy.md")),
        ],
        "ingestion": [
            *("services/ingestion/bench/bench_ingest.py", "--documents", str(p.ingest_documents)),
            *("--out", str(reports / "ingestion.md")),
        ],
    }
    missing = [argv[0] for argv in commands.values() if not (ROOT / argv[0]).exists()]
    if missing:
        raise SystemExit(f"benchmark scripts not found under {ROOT}: {missing} (run from a checkout)")
    return {
        part: [sys.executable, *argv, "--json", str(figures / f"{part}.json")]
        for part, argv in commands.items()
    }


LOADTEST_DIR = "loadtest-search-vector"


def loadtest_command(profile: Profile, reports: Path, target: Target) -> list[str]:
    argv = [
        *(sys.executable, "-m", "ragfleet.loadtests.run", "--scenario", "search"),
        *("--search-modes", "vector", "--users", str(profile.loadtest_users)),
        *("--duration", f"{profile.loadtest_seconds}s", "--host", target.host),
        *(("--redis-url", target.redis_url) if target.redis_url else ()),
        *("--report-dir", str(reports / LOADTEST_DIR), "--seed", "1"),
        # Judged against history here; `make loadtest` holds the absolute targets.
        *("--gate-qps", "off", "--gate-hit-rate", "off", "--gate-failure-ratio", "off"),
        *("--gate-p95-ms", "off", "--gate-ttft-p95-ms", "off"),
    ]
    for url in target.metrics_urls:
        argv += ["--metrics-url", url]
    if target.seed_corpus_url:
        argv += ["--seed-corpus", target.seed_corpus_url]
    return argv


EXTRACTORS: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "retrieval": retrieval_metrics,
    "llm-proxy": llm_proxy_metrics,
    "ingestion": ingestion_metrics,
    "loadtest": loadtest_metrics,
}


def figures_file(part: str, figures: Path, reports: Path) -> Path:
    # The Locust run writes its own summary.json; the scripts write what --json asked for.
    if part == "loadtest":
        return reports / LOADTEST_DIR / "summary.json"
    return figures / f"{part}.json"


# -- the machine and the repository -------------------------------------------------------------------


def shown_path(path: Path) -> str:
    """Relative to the repository when inside it: the pages that show it are committed."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
        # Uncommitted changes mean the commit alone does not say what was measured.
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
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
    shown = shlex.join(["python", *argv[1:]])  # the virtualenv's interpreter path says nothing
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


def collect(part: str, facts: dict[str, Any], figures: Path, reports: Path) -> dict[str, float]:
    """The part's metrics from its JSON; a part that produced none is marked failed."""
    if not facts["ok"]:
        return {}
    try:
        raw = json.loads(figures_file(part, figures, reports).read_text())
        return EXTRACTORS[part](raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        facts["ok"] = False
        facts["error"] = f"no figures: {exc!r}"
        return {}


# -- output -----------------------------------------------------------------------------------------------


def run_page(record: history.Record, rows: list[history.Row], notes: list[str]) -> str:
    extra, m = record.extra, record.machine
    flagged = history.regressions(rows)
    failed = [name for name, facts in extra["parts"].items() if not facts["ok"]]
    verdict = (
        f"REGRESSION in {len(flagged)} metric(s)"
        if flagged
        else ("a benchmark FAILED" if failed else "no regression beyond tolerance")
    )
    # Only the load before the run tells of other work: during it, the benchmarks load the CPU themselves.
    busy = m["load_before"][0] > 0.5 * (m["cores"] or 1)
    skipped = extra.get("calibration_skipped") or {}
    lines = [
        f"# Benchmarks — {record.profile} run, {record.started_at}: {verdict}",
        "",
        f"- commit `{record.label}`",
        f"- machine: {calibration.describe(m)}, fingerprint `{record.fingerprint}`, Python {m['python']}, {m['platform']}",
        "- calibration (reference workloads in this run): "
        + (", ".join(f"{k} {v:,.1f}" for k, v in sorted(record.calibration.items())) or "none")
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else ""),
        f"- load average (1, 5, 15 min) before {m['load_before']}, after {m['load_after']}"
        + (" — **the machine was busy before the run: treat the raw figures as noisy**" if busy else ""),
        f"- command: `{extra['command']}`",
        f"- profile: {', '.join(f'{k}={v}' for k, v in extra['profile'].items())}",
        "",
        "| part | result | seconds | load before → after | report |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for name, facts in extra["parts"].items():
        state = "ok" if facts["ok"] else "**FAILED**"
        lines.append(
            f"| {name} | {state} | {facts['seconds']} | {facts['load_before'][0]} → "
            f"{facts['load_after'][0]} | {facts.get('report', '')} |"
        )
    lines += ["", *(f"- {note}" for note in notes), "", history.table(rows), ""]
    for name, facts in extra["parts"].items():
        if not facts["ok"]:
            lines += [f"`{name}` failed:", "", "```", str(facts.get("error", "")), "```", ""]
    lines += [
        "Basis: *same machine* compares raw figures (same fingerprint) and flags a regression only when",
        "the figure normalised by its calibration reference regressed too (a busier shared CPU slows",
        "the reference as much); *normalised* compares figures divided by (times: multiplied by) the",
        "reference measured in each run, across machines; *portable* figures (recall, hit rate, failure",
        "ratio) do not depend on the machine. Nothing else is judged.",
        "",
    ]
    return "\n".join(lines)


def baseline_notes(record: history.Record, rows: list[history.Row]) -> list[str]:
    bases = sorted({r.basis for r in rows if r.baseline is not None})
    labels = sorted({r.baseline_label for r in rows if r.baseline_label})
    if not labels:
        return [f"no earlier run with profile '{record.profile}': this run is the first baseline"]
    return [f"baseline run(s): {', '.join(labels)}; basis: {', '.join(bases)}"]


def update_readme(readme: Path, record: history.Record, rows: list[history.Row], latest: Path) -> None:
    """Replace the latest-run table between the README's markers (the rest is written by hand)."""
    if not readme.exists():
        return
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), flags=re.DOTALL)
    if not pattern.search(text):
        log.warning("%s has no %s ... %s markers: its table is not updated", readme, README_START, README_END)
        return
    block = "\n".join(
        [
            README_START,
            f"Latest run ({latest.name}): {record.profile} profile, {record.started_at}, "
            f"commit `{record.label}`, {calibration.describe(record.machine)}; calibration "
            + ", ".join(f"{k} {v:,.1f}" for k, v in sorted(record.calibration.items()))
            + ".",
            "",
            history.table(rows),
            README_END,
        ]
    )
    readme.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


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
        "--tolerance", type=float, default=history.DEFAULT_TOLERANCE, help="default relative tolerance"
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
    profile = PROFILES["quick" if args.quick else "full"]
    if args.retrieval_n is not None:
        profile = replace(profile, retrieval_n=args.retrieval_n)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reports: Path = args.reports_dir or ROOT / "reports" / f"bench-{started_at.replace(':', '')}"
    reports.mkdir(parents=True, exist_ok=True)
    shown = shlex.join(
        ["python", "-m", "ragfleet.loadtests.bench", *(sys.argv[1:] if argv is None else argv)]
    )
    the_machine = {**calibration.machine(), "load_before": load_average()}
    log.info("calibration: the reference workloads (echo app, hnswlib, ONNX)...")
    calibrated = calibration.measure()
    git = git_state()
    extra: dict[str, Any] = {
        "git": git,
        "command": shown,
        "profile": asdict(profile),
        "parts": {},
        "calibration_skipped": calibrated["skipped"],
    }
    values: dict[str, float] = {}
    timeout_s = 300 if args.quick else 1200
    with tempfile.TemporaryDirectory(prefix="ragfleet-bench-") as tmp:
        figures = Path(tmp)
        commands = script_commands(profile, reports, figures)
        for part in args.only:
            if part == "loadtest":
                facts = run_loadtest_part(args, profile, reports, figures, timeout_s)
                facts["report"] = shown_path(reports / LOADTEST_DIR / "summary.md")
            else:
                facts = run_part(part, commands[part], reports / f"{part}.log", timeout_s)
                facts["report"] = shown_path(reports / f"{part}.md")
            extra["parts"][part] = facts
            values.update(collect(part, facts, figures, reports))
            if not facts["ok"]:
                log.error("%s failed: %s", part, facts.get("error"))
    the_machine["load_after"] = load_average()
    extra["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = history.Record(
        started_at=started_at,
        label=git["short"] + ("+dirty" if git["dirty"] else ""),
        metrics=metric_entries(values),
        machine=the_machine,
        fingerprint=calibration.fingerprint(the_machine),
        calibration=calibrated["figures"],
        profile=profile.name,
        extra=extra,
    )
    store = FileStore(args.history_dir)
    earlier = store.records()
    if not args.no_save:
        log.info("stored %s", store.append(record))
    rows = history.compare(record, earlier, tolerances(args.tolerance, args.tolerance_for), baseline=explicit)
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
