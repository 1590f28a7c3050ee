"""Verdicts and the report: what every scenario checked, what clients saw, what was lost, how fast it healed.

Everything here is pure (outcomes in, numbers and files out), so it is unit-tested without a stack.
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK_STATUSES = frozenset({"200", "202"})


@dataclass(frozen=True)
class Outcome:
    """One client-visible result: an HTTP status ("200", "503"), or what went wrong before one
    (``timeout``, ``connection-error``), or how an SSE stream ended (``error-event:<code>``,
    ``truncated`` when it stopped without a terminal event)."""

    kind: str
    started: float
    duration_s: float
    status: str

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


def statuses_by_kind(outcomes: Iterable[Outcome]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        counts.setdefault(outcome.kind, Counter())[outcome.status] += 1
    return {kind: dict(sorted(counter.items())) for kind, counter in sorted(counts.items())}


def errors_by_status(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """Every non-success a client saw, by status, over all kinds of request."""
    return dict(sorted(Counter(o.status for o in outcomes if not o.ok).items()))


def between(outcomes: Iterable[Outcome], start: float, end: float) -> list[Outcome]:
    """Outcomes of requests that were started in [start, end)."""
    return [o for o in outcomes if start <= o.started < end]


def recovery_time(
    outcomes: Sequence[Outcome], fault_end: float, *, window_s: float, kinds: Iterable[str]
) -> float | None:
    """Seconds from ``fault_end`` to the start of the first fully-green window.

    A window is green when every request started in it succeeded and every kind in ``kinds``
    was sent at least once — a quiet window proves nothing. The window must also fit before the
    last outcome, so the answer never rests on a window the load did not fill. None: never green.
    """
    needed = set(kinds)
    after = sorted((o for o in outcomes if o.started >= fault_end), key=lambda o: o.started)
    if not after:
        return None
    last = after[-1].started
    for index, first in enumerate(after):
        start = first.started
        if start + window_s > last:
            break
        window = [o for o in after[index:] if o.started < start + window_s]
        if all(o.ok for o in window) and needed <= {o.kind for o in window}:
            return max(0.0, start - fault_end)
    return None


@dataclass(frozen=True)
class Check:
    """One condition a scenario verified, with the evidence."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    description: str
    checks: list[Check] = field(default_factory=list)
    requests_sent: int = 0
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)
    documents_lost: int | None = None
    recovery_s: float | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(passed), detail))
        return bool(passed)

    def record_load(self, outcomes: Sequence[Outcome]) -> None:
        """Count what the clients saw over the whole scenario (load and scenario's own requests)."""
        self.requests_sent = len(outcomes)
        self.statuses = statuses_by_kind(outcomes)
        self.client_errors = errors_by_status(outcomes)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _fmt_seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def render_markdown(results: Sequence[ScenarioResult], meta: dict[str, Any]) -> str:
    lines = [
        "# ragfleet chaos report",
        "",
        f"- command: `{meta.get('command', '')}`",
        f"- started: {meta.get('started', '')}; total {meta.get('duration_s', 0):.0f} s",
        f"- machine: {meta.get('machine', '')}",
        f"- overall: **{'PASS' if all(r.passed for r in results) else 'FAIL'}**",
        "",
        "| scenario | verdict | requests | client errors by status | documents lost | recovery |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        errors = ", ".join(f"{status}: {count}" for status, count in r.client_errors.items()) or "none"
        lost = "—" if r.documents_lost is None else str(r.documents_lost)
        lines.append(
            f"| {r.name} | **{r.verdict}** | {r.requests_sent} | {errors} | {lost} | {_fmt_seconds(r.recovery_s)} |"
        )
    for r in results:
        lines += ["", f"## {r.name} — {r.verdict}", "", r.description, ""]
        lines += [
            f"- [{'x' if c.passed else ' '}] {c.name}" + (f" — {c.detail}" if c.detail else "")
            for c in r.checks
        ]
        lines += ["", "Client outcomes by kind: " + json.dumps(r.statuses), ""]
        lines += [f"Note: {note}" for note in r.notes]
    return "\n".join(lines).rstrip() + "\n"


def machine_description() -> str:
    return f"{platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · {platform.platform()}"


def write_report(directory: Path, results: Sequence[ScenarioResult], meta: dict[str, Any]) -> Path:
    """``summary.md`` and ``summary.json`` in ``directory``; returns the Markdown path."""
    directory.mkdir(parents=True, exist_ok=True)
    summary = {
        **meta,
        "passed": all(r.passed for r in results),
        "documents_lost": sum(r.documents_lost or 0 for r in results),
        "scenarios": [r.to_json() for r in results],
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    markdown = directory / "summary.md"
    markdown.write_text(render_markdown(results, meta))
    return markdown
