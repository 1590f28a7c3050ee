"""Benchmark records and the one comparison rule: like with like, or no verdict.

A record is one run: its metrics (value, unit, direction), the machine it ran on (and that
machine's fingerprint), and a *calibration* — fixed reference workloads measured in the same run
(ragfleet.bench.calibration). Each metric also carries the conditions it was measured under: the
value of its reference workload measured right before its part (so the reference sees the machine
as the metric did, not as it was minutes earlier) and the share of the machine's CPU that *other*
work used meanwhile.

A metric is compared with the **median of the last** ``BASELINE_RUNS`` **like-for-like runs** (same
profile; the same machine fingerprint when there are any, else runs with a calibration; runs on a
busy machine never serve as baselines), on the first basis that holds:

1. ``portable`` metrics (recall, hit rate, failure ratio) do not depend on the machine: raw values;
2. either run measured it while other work used more than ``MAX_FOREIGN_CPU`` of the machine:
   shown, not judged ("not comparable", busy) — a shared CPU is not the code's regression;
3. the same machine fingerprint: raw values — and, when the metric has a calibration reference,
   the normalised values too; a regression then needs both;
4. another machine: values normalised by the metric's reference (a rate divided by the reference
   rate, a time multiplied by it), measured in each run — except across machines with other
   vector extensions for a metric whose reference is vector code (raw hnswlib, raw ONNX): shown,
   not judged ("not comparable"), since those references scale otherwise than the code around them;
5. otherwise: shown, never judged ("not comparable").

How far a figure may move is its **noise band**: ``SPREAD_FACTOR`` robust standard deviations of
the baseline runs' own values (1.4826 x their median absolute deviation, relative to their median),
never narrower than the metric's tolerance (the floor). With fewer than ``SPREAD_MIN_RUNS``
baseline runs the spread is unknown and the floor alone applies.

Pure logic on plain data: no processes, no clock. Both histories (``make bench``'s files and the
release's ConfigMap) store these records and judge them with ``compare``.
"""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ragfleet.bench.calibration import HNSW_QPS, ONNX_TEXTS_PER_S

SCHEMA = 3
# The exit code of a run that found a regression (make bench, ragfleet-ops bench-record; the gateway's
# benchmark API reads it), distinct from the load test's own codes (1 request errors, 2 crash, 3 gates).
EXIT_REGRESSION = 4
DEFAULT_TOLERANCE = 0.15
BASELINE_RUNS = 5  # the median of this many like-for-like runs: one odd run neither flags nor hides
SPREAD_MIN_RUNS = 3  # a spread from fewer runs says nothing
SPREAD_FACTOR = 3.0  # beyond three robust standard deviations of the history's own spread
# Other work using more than this share of the machine while a part ran (the lead's load test on
# one of two cores is 0.5) makes the part's figures a measure of the neighbour, not of the code.
MAX_FOREIGN_CPU = 0.25
_MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a normal distribution times this is sigma

Better = Literal["higher", "lower"]
Verdict = Literal["ok", "regression", "improvement"]
Status = Literal["ok", "regression", "improvement", "new", "missing", "not comparable"]
Basis = Literal["portable", "same machine", "normalised", "busy machine", "none"]


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
    # The reference figure measured right before this metric's part (None: the run's calibration).
    reference_value: float | None = None
    # The share (0-1) of the machine's CPU other processes used while this metric's part ran.
    foreign_cpu: float | None = None

    def busy(self, max_foreign_cpu: float = MAX_FOREIGN_CPU) -> bool:
        return not self.portable and self.foreign_cpu is not None and self.foreign_cpu > max_foreign_cpu

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "unit": self.unit, "better": self.better}
        if self.reference:
            data["reference"] = self.reference
        if self.portable:
            data["portable"] = True
        if self.noise_floor:
            data["noise_floor"] = self.noise_floor
        if self.reference_value is not None:
            data["reference_value"] = self.reference_value
        if self.foreign_cpu is not None:
            data["foreign_cpu"] = self.foreign_cpu
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metric:
        better = data.get("better")
        if better is None:  # ragfleet-ops records before schema 2 said higher_is_better
            better = "higher" if data.get("higher_is_better", True) else "lower"
        reference_value, foreign_cpu = data.get("reference_value"), data.get("foreign_cpu")
        return cls(
            float(data["value"]),
            str(data.get("unit", "")),
            "higher" if better == "higher" else "lower",
            reference=data.get("reference"),
            portable=bool(data.get("portable", False)),
            noise_floor=float(data.get("noise_floor", 0.0)),
            reference_value=None if reference_value is None else float(reference_value),
            foreign_cpu=None if foreign_cpu is None else float(foreign_cpu),
        )

    def normalised(self, calibration: Mapping[str, float]) -> float | None:
        """The value in units of the reference workload: rate divided by the reference rate, time
        multiplied by it. The reference measured beside the metric wins over the run's calibration."""
        ref = (
            self.reference_value
            if self.reference_value is not None
            else calibration.get(self.reference or "")
        )
        if not self.reference or not ref:
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
    max_foreign_cpu: float = MAX_FOREIGN_CPU  # above it a figure is not judged (1.0: always judged)

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
    baseline: float | None  # the median of the baseline runs' raw values
    current: float | None
    raw_change: float | None  # relative change of the raw values
    normalised_change: float | None  # relative change of the calibrated values
    basis: Basis
    status: Status
    tolerance: float  # the noise band the verdict used: the spread of the history, at least the floor
    baseline_label: str = ""
    baseline_runs: int = 0
    reason: str = ""  # why a metric is not judged

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _change(old: float | None, new: float | None) -> float | None:
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old)


def noise_band(values: Sequence[float], floor: float) -> float:
    """How far a figure may move from the median of ``values`` before it counts, relative to that
    median: ``SPREAD_FACTOR`` robust standard deviations of the values, at least ``floor``."""
    if len(values) < SPREAD_MIN_RUNS:
        return floor
    middle = statistics.median(values)
    if middle == 0:
        return floor
    mad = statistics.median(abs(v - middle) for v in values)
    return max(floor, SPREAD_FACTOR * _MAD_TO_SIGMA * mad / abs(middle))


def _busy_reason(current: Metric) -> str:
    return f"other work used {100 * (current.foreign_cpu or 0):.0f} % of the machine's CPU during this part"


def judge(current: Record, name: str, baselines: Sequence[Record], tolerances: Tolerances) -> Row:
    """One metric of ``current`` against the median of the same metric in ``baselines`` (like-for-like
    runs, oldest first), on the first basis that holds."""
    new, tolerance = current.metrics[name], tolerances.of(name)
    olds = [(r, r.metrics[name]) for r in baselines]
    raw_values = [m.value for _, m in olds]
    old_raw = statistics.median(raw_values)
    norm_values = [m.normalised(r.calibration) for r, m in olds]
    new_norm = new.normalised(current.calibration)
    old_norm = (
        statistics.median(v for v in norm_values if v is not None)
        if all(v is not None for v in norm_values)
        else None
    )
    raw_band = noise_band(raw_values, tolerance)
    raw = verdict(new.value, old_raw, new.better, raw_band, new.noise_floor)
    normalised: Verdict | None = None
    norm_band = tolerance
    if new_norm is not None and old_norm is not None:
        norm_band = noise_band([v for v in norm_values if v is not None], tolerance)
        # The floor is in the metric's unit: carry it over at the baseline's scale.
        floor = new.noise_floor * (old_norm / old_raw) if old_raw else 0.0
        normalised = verdict(new_norm, old_norm, new.better, norm_band, floor)
    same_machine = bool(current.fingerprint) and all(r.fingerprint == current.fingerprint for r in baselines)
    basis: Basis
    status: Status
    band, reason = raw_band, ""
    if new.portable:
        basis, status = "portable", raw
    elif new.busy(tolerances.max_foreign_cpu):
        basis, status, reason = "busy machine", "not comparable", _busy_reason(new)
    elif same_machine:
        basis = "same machine"
        status = raw if normalised is None or normalised == raw else "ok"
    elif (
        normalised is not None
        and new.reference in SIMD_REFERENCES
        and (differ := _other_vector_extensions(current, baselines))
    ):
        # hnswlib and ONNX (these references) are SIMD code: AVX-512 speeds them up by more than
        # the Python around them. Across that line the normalised figure is biased, not just noisy:
        # two runs on a 2-vCPU EPYC with AVX-512 against one without showed BM25 and filtered
        # search +23-32 % raw and -23-28 % normalised, same code. Shown, not judged. A figure
        # normalised by an echo app (interpreter and sockets, no vector code) is still judged.
        basis, status, band = "normalised", "not comparable", norm_band
        reason = f"the machines' vector extensions differ ({differ}): the references scale otherwise"
    elif normalised is not None:
        basis, status, band = "normalised", normalised, norm_band
    else:
        basis, status = "none", "not comparable"
        reason = "another machine and no calibration reference in both runs"
    labels = [r.label for r in baselines]
    return Row(
        name, new.unit, new.better, old_raw, new.value, _change(old_raw, new.value),
        _change(old_norm, new_norm), basis, status, band,
        labels[0] if len(labels) == 1 else f"median of {len(labels)}: {labels[0]} … {labels[-1]}",
        len(labels), reason,
    )  # fmt: skip


# The calibration references that are vector code (ragfleet.bench.calibration): they scale with a
# machine's vector extensions otherwise than the figures they normalise.
SIMD_REFERENCES = frozenset({HNSW_QPS, ONNX_TEXTS_PER_S})


def _other_vector_extensions(current: Record, baselines: Sequence[Record]) -> str:
    """How the vector extensions of ``current``'s machine and its baselines' differ ("" when they do
    not, or when a record does not say)."""
    mine = current.machine.get("cpu_flags")
    if mine is None:
        return ""
    theirs = {tuple(r.machine["cpu_flags"]) for r in baselines if r.machine.get("cpu_flags") is not None}
    others = [flags for flags in theirs if flags != tuple(mine)]
    if not others:
        return ""
    return f"{', '.join(mine) or 'none'} here, {' / '.join(', '.join(f) or 'none' for f in others)} before"


def pick_baselines(
    current: Record, history: Iterable[Record], max_foreign_cpu: float = MAX_FOREIGN_CPU
) -> dict[str, list[Record]]:
    """Per metric, the last ``BASELINE_RUNS`` earlier runs of the same profile that measured it on a
    machine not busy with other work — on the same machine when there are any, else runs with a
    calibration for it (a normalised comparison), else any (shown, not judged). Oldest first."""
    earlier = sorted(
        # Same-second records count as earlier: callers pass what was stored before this run.
        (
            r
            for r in history
            if r is not current and r.started_at <= current.started_at and r.profile == current.profile
        ),
        key=lambda r: r.started_at,
    )
    chosen: dict[str, list[Record]] = {}
    for name in current.metrics:
        measured = [r for r in earlier if name in r.metrics and not r.metrics[name].busy(max_foreign_cpu)]
        same = [r for r in measured if current.fingerprint and r.fingerprint == current.fingerprint]
        calibrated = [r for r in measured if r.metrics[name].normalised(r.calibration) is not None]
        pool = same or calibrated or measured
        if pool:
            chosen[name] = pool[-BASELINE_RUNS:]
    return chosen


def compare(
    current: Record, history: Iterable[Record], tolerances: Tolerances, baseline: Record | None = None
) -> list[Row]:
    """Every metric of ``current`` against its baselines (``baseline`` alone if given, else picked from history)."""
    history = list(history)
    baselines = (
        {n: [baseline] for n in current.metrics if n in baseline.metrics}
        if baseline is not None
        else pick_baselines(current, history, tolerances.max_foreign_cpu)
    )
    rows = []
    for name, metric in sorted(current.metrics.items()):
        if name in baselines:
            rows.append(judge(current, name, baselines[name], tolerances))
        else:
            rows.append(
                Row(
                    name,
                    metric.unit,
                    metric.better,
                    None,
                    metric.value,
                    None,
                    None,
                    "none",
                    "new",
                    tolerances.of(name),
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
        "| metric | unit | better | baseline | now | raw change | normalised change | basis | noise band | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in rows:
        baseline = _number(r.baseline, r.unit) + (f" ({r.baseline_label})" if r.baseline_label else "")
        lines.append(
            f"| {r.name} | {r.unit} | {r.better} | {baseline} | {_number(r.current, r.unit)} | "
            f"{_percent(r.raw_change)} | {_percent(r.normalised_change)} | {r.basis} | "
            f"±{100 * r.tolerance:.0f} % | {VERDICT_TEXT[r.status]}{f' ({r.reason})' if r.reason else ''} |"
        )
    return "\n".join(lines)
