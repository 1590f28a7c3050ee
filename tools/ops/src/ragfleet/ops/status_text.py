"""Text renderings of a Snapshot: the `status` table and the `wait` progress and verdict."""

from __future__ import annotations

from collections.abc import Sequence

from ragfleet.ops.diagnosis import explain_not_ready
from ragfleet.ops.model import ComponentState, HpaState, Snapshot


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _hpa_replicas(hpa: HpaState | None) -> str:
    if hpa is None:
        return "-"
    return f"{hpa.current_replicas}->{hpa.desired_replicas} ({hpa.min_replicas}-{hpa.max_replicas})"


def _hpa_metrics(hpa: HpaState | None) -> str:
    if hpa is None:
        return "-"
    return ", ".join(f"{m.name} {m.current or '<unknown>'}/{m.target}" for m in hpa.metrics) or "-"


def _state(component: ComponentState) -> str:
    if component.rollout_failed:
        return "FAILED"
    if not component.is_ready:
        return "NOT READY"
    return "DEGRADED" if component.problems else "ok"


def status_report(snapshot: Snapshot) -> str:
    verdict = "DEGRADED" if snapshot.degraded else "healthy"
    lines = [
        f"ragfleet in namespace {snapshot.namespace} ({snapshot.selector}) at {snapshot.taken_at}: {verdict}",
        "",
    ]
    if not snapshot.components:
        lines.append(
            "No Deployments or StatefulSets match the selector: is the release installed in this namespace?"
        )
    else:
        rows = [
            [
                "COMPONENT",
                "KIND",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "RESTARTS",
                "HPA CUR->DESIRED (MIN-MAX)",
                "HPA METRICS (CUR/TARGET)",
                "PDB ALLOWED",
                "STATE",
            ]
        ]
        for c in snapshot.components:
            pdb = (
                "-"
                if c.pdb is None
                else f"{c.pdb.disruptions_allowed} ({c.pdb.current_healthy}/{c.pdb.desired_healthy} healthy)"
            )
            rows.append(
                [
                    c.component,
                    c.kind,
                    f"{c.ready}/{c.desired}",
                    str(c.updated),
                    str(c.available),
                    str(c.restarts),
                    _hpa_replicas(c.hpa),
                    _hpa_metrics(c.hpa),
                    pdb,
                    _state(c),
                ]
            )
        lines.append(table(rows))
    lines += ["", "VPA recommendations"]
    recommendations = [(c, r) for c in snapshot.components if c.vpa for r in c.vpa.recommendations]
    if not snapshot.vpa_installed:
        lines.append("  VPA not installed (no autoscaling.k8s.io/v1 VerticalPodAutoscaler API)")
    elif not recommendations:
        lines.append("  none yet")
    else:
        rows = [["COMPONENT", "CONTAINER", "MODE", "TARGET CPU", "TARGET MEMORY", "LOWER", "UPPER"]]
        for c, r in recommendations:
            bounds = [
                ", ".join(f"{k} {v}" for k, v in sorted(b.items())) or "-"
                for b in (r.lower_bound, r.upper_bound)
            ]
            mode = c.vpa.update_mode if c.vpa and c.vpa.update_mode else "-"
            rows.append(
                [
                    c.component,
                    r.container,
                    mode,
                    r.target.get("cpu", "-"),
                    r.target.get("memory", "-"),
                    *bounds,
                ]
            )
        lines.append(table(rows))
    degraded = [c for c in snapshot.components if c.degraded]
    if degraded:
        lines += ["", "Problems"]
        for c in degraded:
            lines.append(f"  {c.component} ({c.kind} {c.name}):")
            lines += [f"    - {line}" for line in explain_not_ready(c)]
    if snapshot.notes:
        lines += ["", "Notes", *(f"  - {note}" for note in snapshot.notes)]
    return "\n".join(lines)


def progress_line(snapshot: Snapshot, elapsed: float) -> str:
    ready = [c for c in snapshot.components if c.is_ready]
    waiting = [c for c in snapshot.components if not c.is_ready]
    line = f"[{elapsed:5.0f}s] {len(ready)}/{len(snapshot.components)} rollouts ready"
    if not snapshot.components:
        return line + f" (no Deployments/StatefulSets matching {snapshot.selector} yet)"
    if waiting:
        line += "; waiting for " + "; ".join(f"{c.component}: {c.rollout_message}" for c in waiting)
    return line


def not_ready_report(snapshot: Snapshot, headline: str) -> str:
    lines = [headline, ""]
    if not snapshot.components:
        lines.append(
            f"No Deployments or StatefulSets matching {snapshot.selector} in namespace {snapshot.namespace}."
        )
    for c in snapshot.components:
        if c.is_ready:
            continue
        lines.append(
            f"{c.component} ({c.kind} {c.name}): {c.ready}/{c.desired} ready, {c.updated} up to date, {c.available} available"
        )
        lines += [f"    - {line}" for line in explain_not_ready(c)]
    ready = [c.component for c in snapshot.components if c.is_ready]
    if ready:
        lines += ["", "Ready: " + ", ".join(ready)]
    return "\n".join(lines)
