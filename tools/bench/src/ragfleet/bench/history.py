"""Benchmark records and the one comparison rule: like with like, or no verdict.

A record is one run: its metrics (value, unit, direction), the machine it ran on (and that
machine's fingerprint), and a *calibration* — fixed reference workloads measured in the same run
(ragfleet.bench.calibration). Two runs are compared metric by metric, on the first basis that holds:

1. ``portable`` metrics (recall, hit rate, failure ratio) do not depend on the machine: raw values;
2. the same machine fingerprint: raw values — and, when the metric has a calibration reference,
   the normalised values too; a regression then needs both, because a shared CPU that was busier
   in one run slows the reference workload as much as the benchmark (the calibration explains it);
3. another machine: values normalised by the metric's reference (a rate divided by the reference
   rate, a time multiplied by it), measured in each run;
4. otherwise: shown, never judged ("not comparable").

Pure logic on plain data: no processes, no clock. Both histories (``make bench``'s files and the
release's ConfigMap) store these records and judge them with ``compare``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA = 2
DEFAULT_TOLERANCE = 0.15

Better = Literal["higher", "lower"]
Verdict = Literal["ok", "regression", "improvement"]
Status = Literal["ok", "regression", "improvement", "new", "missing", "not comparable"]
Basis = Literal["portable", "same machine", "normalised", "none"]


@dataclass(frozen=True)
class Metric:
    value: float
    unit: str
    better: Better
    # The calibration figure this metric scales with (a throughput with the reference's rate);
    # None for a machine-independent (portable) metric or one no reference explains.
    reference: str | None = None
    portable: bool = False
    # Moves smaller than this, in the metric's unit, are noise whatever the relative change.
    noise_floor: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "unit": self.unit, "better": self.better}
        if self.reference:
            data["reference"] = self.reference
        if self.portable:
            data["portable"] = True
        if self.noise_floor:
            data["noise_floor"] = self.noise_floor
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metric:
        better = data.get("better")
        if better is None:  # ragfleet-ops records before schema 2 said higher_is_better
            better = "higher" if data.get("higher_is_better", True) else "lower"
        return cls(
            float(data["value"]),
            str(data.get("unit", "")),
            "higher" if better == "higher" else "lower",
            reference=data.get("reference"),
            portable=bool(data.get("portable", False)),
            noise_floor=float(data.get("noise_floor", 0.0)),
        )

    def normalised(self, calibration: Mapping[str, float]) -> float | None:
        """The value in units of the reference workload: rate divided by the reference rate, time multiplied by it."""
        ref = calibration.get(self.reference or "")
        if not ref:
            return None
        return self.value / ref if self.better == "higher" else self.value * ref


@dataclass(frozen=True)
class Record:
    """One run as stored. ``label`` says what was measured (a commit, a chart version)."""

    started_at: str
    label: str
    metrics: dict[str, Metric]
    machine: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    calibration: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # everything else of the document, kept as is

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "schema": SCHEMA,
            "started_at": self.started_at,
            "label": self.label,
            "machine": self.machine,
            "fingerprint": self.fingerprint,
            "calibration": self.calibration,
            "profile_name": self.profile,
            "metrics": {name: m.to_json() for name, m in sorted(self.metrics.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Reads this schema and the two older ones (make bench's schema 1, ragfleet-ops' records)."""
        data = dict(data)
        started_at = str(data.pop("started_at", None) or data.pop("recorded_at"))
        git = data.get("git") or {}
        label = str(
            data.pop("label", None)
            or (git.get("short", "?") + ("+dirty" if git.get("dirty") else "") if git else None)
            or data.get("chart_version", "?")
        )
        metrics = {name: Metric.from_json(m) for name, m in (data.pop("metrics", None) or {}).items()}
        profile = (
            data.pop("profile_name", None)
            or (data.get("profile") or {}).get("name")
            or data.get("scenario", "")
        )
        data.pop("schema", None)
        return cls(
            started_at=started_at,
            label=label,
            metrics=metrics,
            machine=dict(data.pop("machine", None) or {}),
            fingerprint=str(data.pop("fingerprint", "") or ""),
            calibration={k: float(v) for k, v in (data.pop("calibration", None) or {}).items()},
            profile=str(profile),
            extra=data,
        )


def verdict(value: float, baseline: float, better: Better, relative: float, floor: float = 0.0) -> Verdict:
    """A move from the baseline counts when it exceeds ``relative`` of the baseline and ``floor``;
    the wrong way is a regression, the right way an improvement."""
    worse_by = baseline - value if better == "higher" else value - baseline
    allowed = max(relative * abs(baseline), floor)
    if worse_by > allowed:
        return "regression"
    if -worse_by > allowed:
        return "improvement"
    return "ok"


@dataclass(frozen=True)
class Tolerances:
    """Relative tolerance per metric: ``overrides`` (fnmatch pattern, tolerance), the last match
    wins; then ``per_metric``; then ``default``."""

    default: float = DEFAULT_TOLERANCE
    per_metric: Mapping[str, float] = field(default_factory=dict)
    overrides: tuple[tuple[str, float], ...] = ()

    def of(self, name: str) -> float:
        chosen = self.per_metric.get(name, self.default)
        for pattern, tolerance in self.overrides:
            if fnmatch.fnmatchcase(name, pattern):
                chosen = tolerance
        return chosen


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    better: Better
    baseline: float | None
    current: float | None
    raw_change: float | None  # relative change of the raw values
    normalised_change: float | None  # relative change of the calibrated values
    basis: Basis
    status: Status
    tolerance: float
    baseline_label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _change(old: float | None, new: float | None) -> float | None:
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old)


def judge(current: Record, name: str, baseline: Record, tolerance: float) -> Row:
    """One metric of ``current`` against the same metric of ``baseline``, on the first basis that holds."""
    new, old = current.metrics[name], baseline.metrics[name]
    new_norm, old_norm = new.normalised(current.calibration), old.normalised(baseline.calibration)
    raw_change, norm_change = _change(old.value, new.value), _change(old_norm, new_norm)
    raw = verdict(new.value, old.value, new.better, tolerance, new.noise_floor)
    normalised: Verdict | None = None
    if new_norm is not None and old_norm is not None:
        # The floor is in the metric's unit: carry it over at the baseline's scale.
        floor = new.noise_floor * (old_norm / old.value) if old.value else 0.0
        normalised = verdict(new_norm, old_norm, new.better, tolerance, floor)
    same_machine = bool(current.fingerprint) and current.fingerprint == baseline.fingerprint
    basis: Basis
    status: Status
    if new.portable:
        basis, status = "portable", raw
    elif same_machine:
        basis = "same machine"
        status = raw if normalised is None or normalised == raw else "ok"
    elif normalised is not None:
        basis, status = "normalised", normalised
    else:
        basis, status = "none", "not comparable"
    return Row(
        name, new.unit, new.better, old.value, new.value, raw_change, norm_change,
        basis, status, tolerance, baseline.label,
    )  # fmt: skip


def pick_baselines(current: Record, history: Iterable[Record]) -> dict[str, Record]:
    """Per metric, the newest earlier run of the same profile that measured it — one on the same
    machine when there is one, else one with a calibration (normalised comparison)."""
    earlier = sorted(
        (r for r in history if r.started_at < current.started_at and r.profile == current.profile),
        key=lambda r: r.started_at,
    )
    chosen: dict[str, Record] = {}
    for name in current.metrics:
        measured = [r for r in earlier if name in r.metrics]
        same = [r for r in measured if current.fingerprint and r.fingerprint == current.fingerprint]
        calibrated = [r for r in measured if r.calibration]
        pool = same or calibrated or measured
        if pool:
            chosen[name] = pool[-1]
    return chosen


def compare(
    current: Record, history: Iterable[Record], tolerances: Tolerances, baseline: Record | None = None
) -> list[Row]:
    """Every metric of ``current`` against its baseline (``baseline`` if given, else picked from history)."""
    history = list(history)
    baselines = (
        {n: baseline for n in current.metrics if n in baseline.metrics}
        if baseline is not None
        else pick_baselines(current, history)
    )
    rows = []
    for name, metric in sorted(current.metrics.items()):
        tolerance = tolerances.of(name)
        if name in baselines:
            rows.append(judge(current, name, baselines[name], tolerance))
        else:
            rows.append(
                Row(
                    name, metric.unit, metric.better, None, metric.value, None, None, "none", "new", tolerance
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


def _percent(change: float | None) -> str:
    return "—" if change is None else f"{100 * change:+.1f} %"


VERDICT_TEXT: dict[Status, str] = {
    "ok": "ok",
    "regression": "**REGRESSION**",
    "improvement": "improved",
    "new": "new",
    "missing": "missing",
    "not comparable": "not comparable",
}


def table(rows: Iterable[Row]) -> str:
    """Raw and normalised changes side by side, the basis of the verdict, the verdict."""
    lines = [
        "| metric | unit | better | baseline | now | raw change | normalised change | basis | tolerance | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in rows:
        baseline = _number(r.baseline, r.unit) + (f" ({r.baseline_label})" if r.baseline_label else "")
        lines.append(
            f"| {r.name} | {r.unit} | {r.better} | {baseline} | {_number(r.current, r.unit)} | "
            f"{_percent(r.raw_change)} | {_percent(r.normalised_change)} | {r.basis} | "
            f"±{100 * r.tolerance:.0f} % | {VERDICT_TEXT[r.status]} |"
        )
    return "\n".join(lines)
