"""The pages of a ``make bench`` run: ``docs/benchmarks/latest.md`` and the table between the
markers of ``docs/benchmarks/README.md``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ragfleet.bench import calibration, history

log = logging.getLogger("ragfleet.loadtests.bench")

README_START = "<!-- latest-bench:start -->"
README_END = "<!-- latest-bench:end -->"


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
    skipped = {
        k: v for facts in extra["parts"].values() for k, v in (facts.get("references_skipped") or {}).items()
    }
    lines = [
        f"# Benchmarks — {record.profile} run, {record.started_at}: {verdict}",
        "",
        f"- commit `{record.label}`",
        f"- machine: {calibration.describe(m)}, fingerprint `{record.fingerprint}`, Python {m['python']}, {m['platform']}",
        "- calibration (reference workloads, each measured right before the parts that use it; first values): "
        + (", ".join(f"{k} {v:,.1f}" for k, v in sorted(record.calibration.items())) or "none")
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in skipped.items())}" if skipped else ""),
        f"- load average (1, 5, 15 min) before {m['load_before']}, after {m['load_after']}"
        + (" — **the machine was busy before the run: treat the raw figures as noisy**" if busy else ""),
        f"- command: `{extra['command']}`",
        f"- profile: {', '.join(f'{k}={v}' for k, v in extra['profile'].items())}",
        "",
        "| part | result | seconds | load before → after | other work's CPU | references right before it | report |",
        "| --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for name, facts in extra["parts"].items():
        state = "ok" if facts["ok"] else "**FAILED**"
        foreign = facts.get("foreign_cpu")
        refs = ", ".join(f"{k} {v:,.1f}" for k, v in sorted((facts.get("references") or {}).items()))
        lines.append(
            f"| {name} | {state} | {facts['seconds']} | {facts['load_before'][0]} → "
            f"{facts['load_after'][0]} | {'?' if foreign is None else f'{100 * foreign:.0f} %'} | "
            f"{refs or '—'} | {facts.get('report', '')} |"
        )
    lines += ["", *(f"- {note}" for note in notes), "", history.table(rows), ""]
    for name, facts in extra["parts"].items():
        if not facts["ok"]:
            lines += [f"`{name}` failed:", "", "```", str(facts.get("error", "")), "```", ""]
    lines += [
        "Baseline: the median of the last like-for-like runs (same profile; same machine when there",
        "are any; none measured on a busy machine). Noise band: three robust standard deviations of",
        "those runs' own spread, at least the metric's tolerance. Basis: *same machine* compares raw",
        "figures (same fingerprint) and flags a regression only when the figure normalised by its",
        "calibration reference (measured right before its part) regressed too; *normalised* compares",
        "figures divided by (times: multiplied by) that reference, across machines; *portable* figures",
        "(recall, hit rate, failure ratio) do not depend on the machine; *busy machine*: other work",
        "used more than a quarter of the CPU during the part, so it is shown, not judged.",
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
