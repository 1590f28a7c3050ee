"""Benchmark runs as history: one JSON record per run, a baseline picked from earlier records, and the
comparison that flags regressions beyond a tolerance.

Pure logic on plain data (no processes, no clock of its own), so every rule here is unit-tested; the
orchestration that produces a record lives in ``bench.py``.

A record (``benchmarks/history/<UTC date>-<short commit>.json``)::

    {"schema": 1, "started_at": "2026-11-21T18:58:00Z", "finished_at": ...,
     "git": {"commit": ..., "short": ..., "dirty": true},
     "machine": {"cpu_model": ..., "cores": 2, "memory_gib": 23.5, "python": ..., "platform": ...,
                 "load_before": [1.0, 1.5, 1.7], "load_after": [...]},
     "command": ..., "profile": {"name": "quick", ...},
     "parts": {"retrieval": {"ok": true, "seconds": 41.0, ...}, ...},
     "metrics": {"retrieval.recall_at_10": {"value": 0.99, "unit": "ratio", "better": "higher"}, ...}}
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragfleet.ops.bench import verdict

log = logging.getLogger("ragfleet.loadtests.bench")

SCHEMA = 1
DEFAULT_TOLERANCE = 0.15

Better = Literal["higher", "lower"]
Status = Literal["ok", "regression", "improvement", "new", "missing"]


@dataclass(frozen=True)
class Metric:
    value: float
    unit: str
    better: Better


@dataclass(frozen=True)
class Record:
    """One stored run; ``data`` is the JSON document as written."""

    path: Path | None
    data: dict[str, Any]

    @property
    def started_at(self) -> str:
        return str(self.data["started_at"])

    @property
    def short_commit(self) -> str:
        git = self.data.get("git", {})
        return str(git.get("short", "?")) + ("+dirty" if git.get("dirty") else "")

    @property
    def profile(self) -> dict[str, Any]:
        return dict(self.data.get("profile", {}))

    @property
    def metrics(self) -> dict[str, Metric]:
        return {
            name: Metric(float(m["value"]), str(m["unit"]), m["better"])
            for name, m in self.data.get("metrics", {}).items()
        }

    @property
    def machine_class(self) -> str:
        return machine_class(self.data.get("machine", {}))


def machine_class(machine: Mapping[str, Any]) -> str:
    """Runs are comparable on the same CPU model, core count and memory (rounded to whole GiB);
    hostnames and kernels change without changing the numbers."""
    memory = machine.get("memory_gib")
    memory_text = f"{round(memory)} GiB" if isinstance(memory, int | float) else "? GiB"
    return f"{machine.get('cpu_model', '?')} / {machine.get('cores', '?')} cores / {memory_text}"


def record_name(started_at: str, short_commit: str) -> str:
    """``20261121T185800Z-abc1234.json``: sorts by date, says which commit."""
    stamp = started_at.replace("-", "").replace(":", "")
    return f"{stamp}-{short_commit}.json"


def save(directory: Path, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / record_name(data["started_at"], data["git"]["short"])
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load(path: Path) -> Record:
    return Record(path, json.loads(path.read_text(encoding="utf-8")))


def load_history(directory: Path) -> list[Record]:
    """Every readable record in the directory, oldest first; unreadable files are skipped with a warning."""
    records = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = load(path)
            _ = record.started_at
        except (OSError, ValueError, KeyError) as exc:
            log.warning("skipping %s: not a benchmark record (%s)", path, exc)
            continue
        records.append(record)
    return sorted(records, key=lambda r: r.started_at)


@dataclass(frozen=True)
class Baseline:
    """Per metric, the value it is compared with and the run that value comes from."""

    values: dict[str, tuple[Metric, Record]]
    notes: list[str]


def pick_baseline(current: Record, history: Iterable[Record], explicit: Record | None = None) -> Baseline:
    """The previous value of each metric: from ``explicit`` if given, otherwise from the newest earlier
    run on the same machine class with the same profile that measured it (so a run of only some parts
    or a part that failed once does not hide the others' baseline)."""
    if explicit is not None:
        notes = [f"baseline: {_describe(explicit)} (given explicitly)"]
        if explicit.machine_class != current.machine_class:
            notes.append(
                f"the baseline ran on another machine class ({explicit.machine_class}); "
                "differences may be the machine's, not the code's"
            )
        if explicit.profile != current.profile:
            notes.append("the baseline ran with another profile (sizes, durations); compare with care")
        return Baseline({name: (m, explicit) for name, m in explicit.metrics.items()}, notes)

    candidates = sorted(
        (
            r
            for r in history
            if r.started_at < current.started_at
            and r.machine_class == current.machine_class
            and r.profile == current.profile
        ),
        key=lambda r: r.started_at,
    )
    values: dict[str, tuple[Metric, Record]] = {}
    for record in candidates:  # oldest first: newer runs overwrite older values
        for name, metric in record.metrics.items():
            values[name] = (metric, record)
    runs = sorted({id(r): r for _, r in values.values()}.values(), key=lambda r: r.started_at)
    if not runs:
        notes = [
            f"no earlier run on this machine class ({current.machine_class}) with profile "
            f"'{current.profile.get('name', '?')}': this run is the first baseline"
        ]
    else:
        notes = ["baseline: " + ", ".join(_describe(r) for r in reversed(runs))]
    return Baseline(values, notes)


def _describe(record: Record) -> str:
    name = record.path.name if record.path else "(unsaved)"
    return f"{name} ({record.started_at}, commit {record.short_commit})"


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    better: Better
    baseline: float | None
    current: float | None
    tolerance: float
    status: Status
    baseline_commit: str = ""

    @property
    def change(self) -> float | None:
        """Relative change from the baseline (+0.10 = 10 % more), None when it has no meaning."""
        if self.baseline is None or self.current is None or self.baseline == 0:
            return None
        return (self.current - self.baseline) / abs(self.baseline)


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerance per metric: ``overrides`` are (fnmatch pattern, tolerance), the last match
    wins; then the metric's own default; then ``default``. ``absolute`` is a floor in the metric's
    unit for metrics whose baseline can be zero (a failure ratio)."""

    default: float = DEFAULT_TOLERANCE
    per_metric: Mapping[str, float] | None = None
    overrides: tuple[tuple[str, float], ...] = ()
    absolute: Mapping[str, float] | None = None

    def relative(self, name: str) -> float:
        chosen = (self.per_metric or {}).get(name, self.default)
        for pattern, tolerance in self.overrides:
            if fnmatch.fnmatchcase(name, pattern):
                chosen = tolerance
        return chosen

    def absolute_floor(self, name: str) -> float:
        return (self.absolute or {}).get(name, 0.0)


def judge(metric: Metric, baseline: float, relative: float, absolute: float = 0.0) -> Status:
    """Worse than the baseline by more than the tolerance is a regression; better by more, an
    improvement: the in-cluster benchmark's rule (ragfleet.ops.bench), so both histories agree."""
    return verdict(metric.value, baseline, metric.better == "higher", relative, absolute)


def compare(current: Record, baseline: Baseline, tolerances: Tolerances) -> list[Row]:
    rows = []
    for name, metric in sorted(current.metrics.items()):
        tolerance = tolerances.relative(name)
        previous = baseline.values.get(name)
        if previous is None:
            rows.append(Row(name, metric.unit, metric.better, None, metric.value, tolerance, "new"))
            continue
        old, record = previous
        status = judge(metric, old.value, tolerance, tolerances.absolute_floor(name))
        rows.append(
            Row(
                name,
                metric.unit,
                metric.better,
                old.value,
                metric.value,
                tolerance,
                status,
                record.short_commit,
            )
        )
    for name in sorted(set(baseline.values) - set(current.metrics)):
        old, record = baseline.values[name]
        rows.append(
            Row(
                name,
                old.unit,
                old.better,
                old.value,
                None,
                tolerances.relative(name),
                "missing",
                record.short_commit,
            )
        )
    return rows


def regressions(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.status == "regression"]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.4f}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


VERDICT_TEXT: dict[Status, str] = {
    "ok": "ok",
    "regression": "**REGRESSION**",
    "improvement": "improved",
    "new": "new",
    "missing": "missing",
}


def table(rows: Iterable[Row]) -> str:
    """The comparison as a Markdown table (readable as plain text too)."""
    lines = [
        "| metric | unit | better | baseline | now | change | tolerance | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        change = "—" if r.change is None else f"{100 * r.change:+.1f} %"
        baseline = _number(r.baseline, r.unit) + (f" ({r.baseline_commit})" if r.baseline_commit else "")
        lines.append(
            f"| {r.name} | {r.unit} | {r.better} | {baseline} | {_number(r.current, r.unit)} | {change} | "
            f"±{100 * r.tolerance:.0f} % | {VERDICT_TEXT[r.status]} |"
        )
    return "\n".join(lines)
