"""The one page a person reads after a run: the gates' verdicts, the machine and the command, and
plots of throughput, latency percentiles and cache hit rate over time (Markdown + PNGs, and the same
facts as JSON for tools). Locust's own CSV and HTML are written next to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import contextlib

import matplotlib.pyplot as plt

from ragfleet.loadtests.gates import TTFT_REQUEST_TYPE, RunSummary, Verdict
from ragfleet.loadtests.shapes import StepResult, capacity

SUMMARY_PAGE = "summary.md"
SUMMARY_JSON = "summary.json"


@dataclass(frozen=True)
class Sample:
    t_s: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    hit_rate: float | None


@dataclass
class RunReport:
    scenario: str
    host: str
    command: str
    summary: RunSummary
    verdicts: list[Verdict]
    samples: list[Sample] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    x_cache_seen: dict[str, int] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    """Where the numbers come from: they mean little without it."""
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    memory_gib = None
    with contextlib.suppress(ValueError, OSError):
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit,
    }


def _plot(samples: list[Sample], directory: Path) -> list[str]:
    if not samples:
        return []
    # Imported here, not at the top: importing matplotlib takes seconds, and Locust's run-time timer,
    # armed on gevent's cached clock right after the locustfile loads, would fire that much early.
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI

    t = [s.t_s for s in samples]
    written = []

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [s.rps for s in samples], label="requests/s")
    ax.plot(t, [s.failures_per_s for s in samples], label="failures/s", color="tab:red")
    users = ax.twinx()
    users.plot(t, [s.users for s in samples], label="users", color="tab:gray", linestyle=":")
    users.set_ylabel("users")
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    ax.set_title("Throughput")
    ax.legend(loc="upper left")
    written.append(_save(fig, directory / "throughput.png"))

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for label, values in (
        ("p50", [s.p50_ms for s in samples]),
        ("p95", [s.p95_ms for s in samples]),
        ("p99", [s.p99_ms for s in samples]),
    ):
        ax.plot(t, values, label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("ms")
    ax.set_title("Latency percentiles (all requests, ~10 s sliding window)")
    ax.legend(loc="upper left")
    written.append(_save(fig, directory / "latency.png"))

    rates = [(s.t_s, s.hit_rate) for s in samples if s.hit_rate is not None]
    if rates:
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.plot([r[0] for r in rates], [100 * (r[1] or 0) for r in rates])
        ax.set_ylim(0, 100)
        ax.set_xlabel("seconds")
        ax.set_ylabel("%")
        ax.set_title("Cache hit rate since the start (from the services' /metrics)")
        written.append(_save(fig, directory / "hit_rate.png"))
    return written


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    fig.clf()
    return path.name


def _markdown(run: RunReport, info: dict[str, Any], plots: list[str]) -> str:
    passed = all(v.passed for v in run.verdicts)
    s = run.summary
    lines = [
        f"# Load test: {run.scenario} — {'PASSED' if passed else 'FAILED'}",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- target: {run.host}",
        f"- command: `{run.command or '(not given)'}`",
        f"- machine: {info['cpus']} CPUs, {info['memory_gib']} GiB, {info['platform']}, "
        f"Python {info['python']}, host {info['hostname']}",
        f"- git commit: {info['git_commit']}",
        f"- duration: {s.duration_s:.1f} s, {s.total_requests} requests, {s.total_failures} failures",
        "",
        "## Gates",
        "",
        "| gate | target | measured | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {v.gate} | {v.target} | {v.measured} | **{v.status}** |" for v in run.verdicts]
    lines += [
        "",
        "## Endpoints",
        "",
        "| type | name | requests | failures | req/s | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in s.endpoints:
        kind = "time to first token" if e.method == TTFT_REQUEST_TYPE else e.method
        lines.append(
            f"| {kind} | {e.name} | {e.requests} | {e.failures} | {e.rps:,.1f} | "
            f"{e.p50_ms:g} | {e.p95_ms:g} | {e.p99_ms:g} |"
        )
    if run.x_cache_seen:
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(run.x_cache_seen.items()))
        lines += ["", f"`X-Cache` as the clients saw it (informative; the gate uses /metrics): {seen}"]
    if run.steps:
        best = capacity(run.steps)
        lines += [
            "",
            "## Step ramp",
            "",
            f"Capacity (last step within the p95 limit): {best.users} users, {best.rps:,.0f} req/s"
            if best
            else "The first step already broke the p95 limit.",
            "",
            "| users | req/s | p95 ms | |",
            "| ---: | ---: | ---: | --- |",
        ]
        lines += [
            f"| {r.users} | {r.rps:,.1f} | {r.p95_ms:g} | {'broke' if r.broke else ''} |" for r in run.steps
        ]
    if plots:
        lines += ["", "## Over time", ""] + [f"![{name}]({name})" for name in plots]
    lines += [
        "",
        "Locust's own report: `locust.html`, CSV: `locust_stats.csv` and `locust_stats_history.csv`.",
        "",
    ]
    return "\n".join(lines)


def write(directory: Path, run: RunReport) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    info = machine()
    plots = _plot(run.samples, directory)
    page = directory / SUMMARY_PAGE
    page.write_text(_markdown(run, info, plots), encoding="utf-8")
    facts = {
        "scenario": run.scenario,
        "host": run.host,
        "command": run.command,
        "machine": info,
        "passed": all(v.passed for v in run.verdicts),
        "verdicts": [dataclasses.asdict(v) for v in run.verdicts],
        "summary": dataclasses.asdict(run.summary),
        "steps": [dataclasses.asdict(r) for r in run.steps],
        "x_cache_seen": run.x_cache_seen,
    }
    (directory / SUMMARY_JSON).write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return page
