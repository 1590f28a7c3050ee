"""The cluster timeline `watch` records while a load test runs: samples and the events between them.

Files, in the output directory:
- ``timeline.jsonl`` — one JSON object per line, written as it happens (a crash keeps what was
  seen): ``{"type": "meta"}`` first, then ``sample``, ``event`` and ``error`` lines, ``end`` last.
- ``timeline.csv`` — one row per (sample, component), for spreadsheets and the report's tables.
- ``timeline.png`` — the plot (``ragfleet.ops.plot``), when matplotlib is installed.

Event kinds: ``restart`` (a container's restart count went up), ``evicted`` (a pod evicted by the
kubelet, the eviction API — drains — or otherwise disrupted), ``pod-deleted`` (a pod gone without
a recorded eviction), ``hpa-desired`` (an HPA changed its desired replicas), ``scaled`` (a
workload's replicas changed) and ``k8s-event`` (a new Warning event, or an HPA's
SuccessfulRescale with its reason).
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ragfleet.ops.diagnosis import events_of_component
from ragfleet.ops.model import ComponentState, EventRecord, PodState, Snapshot

JSONL_NAME = "timeline.jsonl"
CSV_NAME = "timeline.csv"
PNG_NAME = "timeline.png"
CSV_COLUMNS = [
    "t_seconds",
    "time",
    "component",
    "kind",
    "desired",
    "ready",
    "updated",
    "available",
    "pods",
    "restarts",
    "evictions",
    "hpa_current",
    "hpa_desired",
    "hpa_min",
    "hpa_max",
    "hpa_metrics",
    "pdb_disruptions_allowed",
    "pdb_current_healthy",
    "pdb_desired_healthy",
]
# Normal events worth a line in the timeline; every Warning event is recorded.
NOTABLE_NORMAL_REASONS = frozenset({"SuccessfulRescale"})


def component_sample(component: ComponentState, evictions: int) -> dict[str, Any]:
    hpa, pdb = component.hpa, component.pdb
    return {
        "component": component.component,
        "kind": component.kind,
        "desired": component.desired,
        "ready": component.ready,
        "updated": component.updated,
        "available": component.available,
        "pods": sum(1 for p in component.pods if p.phase in ("Running", "Pending") and not p.terminating),
        "restarts": component.restarts,
        "evictions": evictions,
        "hpa": None
        if hpa is None
        else {
            "name": hpa.name,
            "current": hpa.current_replicas,
            "desired": hpa.desired_replicas,
            "min": hpa.min_replicas,
            "max": hpa.max_replicas,
            "metrics": {m.name: {"current": m.current, "target": m.target} for m in hpa.metrics},
        },
        "pdb": None
        if pdb is None
        else {
            "name": pdb.name,
            "disruptions_allowed": pdb.disruptions_allowed,
            "current_healthy": pdb.current_healthy,
            "desired_healthy": pdb.desired_healthy,
            "expected_pods": pdb.expected_pods,
        },
    }


@dataclass
class ChangeDetector:
    """Turns consecutive snapshots into events; remembers what it already reported."""

    seen_events: dict[str, int] = field(default_factory=dict)
    evicted_pods: set[str] = field(default_factory=set)
    evictions: Counter[str] = field(default_factory=Counter)
    previous: Snapshot | None = None

    def changes(self, current: Snapshot) -> list[dict[str, Any]]:
        """Events since the previous snapshot. The first snapshot is the baseline: what happened
        before the watch started is not reported."""
        baseline = self.previous is None
        found: list[dict[str, Any]] = []
        before = {c.name: c for c in self.previous.components} if self.previous else {}
        for component in current.components:
            found += self._pod_changes(component, before.get(component.name), baseline)
            old = before.get(component.name)
            if old is not None and old.desired != component.desired:
                found.append(
                    _event(
                        "scaled",
                        component,
                        f"{component.kind} {component.name} replicas {old.desired} -> {component.desired}",
                    )
                )
            if (
                old is not None
                and old.hpa
                and component.hpa
                and old.hpa.desired_replicas != component.hpa.desired_replicas
            ):
                metrics = ", ".join(
                    f"{m.name} {m.current or '<unknown>'}/{m.target}" for m in component.hpa.metrics
                )
                found.append(
                    _event(
                        "hpa-desired",
                        component,
                        f"HPA {component.hpa.name} desired {old.hpa.desired_replicas} -> {component.hpa.desired_replicas} ({metrics})",
                    )
                )
            for event in events_of_component(component, current.events):
                found += self._new_cluster_event(event, component, baseline)
        for event in current.events:
            found += self._new_cluster_event(event, None, baseline)
        self.previous = current
        return [] if baseline else found

    def _pod_changes(
        self, component: ComponentState, old: ComponentState | None, baseline: bool
    ) -> list[dict[str, Any]]:
        found = []
        old_pods = {p.name: p for p in old.pods} if old else {}
        disrupted = set(component.pdb.disrupted_pods) if component.pdb else set()
        current_names = set()
        for pod in component.pods:
            current_names.add(pod.name)
            why = _eviction(pod, disrupted)
            if why and pod.name not in self.evicted_pods:
                self.evicted_pods.add(pod.name)
                if not baseline:
                    self.evictions[component.component] += 1
                    found.append(_event("evicted", component, f"pod {pod.name} {why}", pod=pod.name))
            previous = old_pods.get(pod.name)
            if previous is not None:
                restarted = {c.name: c.restarts for c in previous.containers}
                for container in pod.containers:
                    if container.restarts > restarted.get(container.name, container.restarts):
                        last = (
                            f" (last exit {container.last_terminated_reason} code {container.last_exit_code})"
                            if container.last_terminated_reason
                            else ""
                        )
                        found.append(
                            _event(
                                "restart",
                                component,
                                f"pod {pod.name} container {container.name} restarted{last}",
                                pod=pod.name,
                            )
                        )
        for gone in sorted(set(old_pods) - current_names):
            if gone not in self.evicted_pods:
                found.append(_event("pod-deleted", component, f"pod {gone} deleted", pod=gone))
        return found

    def _new_cluster_event(
        self, event: EventRecord, component: ComponentState | None, baseline: bool
    ) -> list[dict[str, Any]]:
        if event.type != "Warning" and event.reason not in NOTABLE_NORMAL_REASONS:
            return []
        if self.seen_events.get(event.uid, 0) >= event.count:
            return []
        self.seen_events[event.uid] = event.count
        if baseline:
            return []
        times = f" (x{event.count})" if event.count > 1 else ""
        message = (
            f"{event.type} {event.reason}{times} on {event.object_kind} {event.object_name}: {event.message}"
        )
        return [
            {
                "kind": "k8s-event",
                "component": component.component if component else "",
                "message": message,
                "reason": event.reason,
            }
        ]


def _eviction(pod: PodState, disrupted_by_pdb: set[str]) -> str | None:
    if pod.reason == "Evicted":
        return f"evicted by the kubelet: {pod.message or 'node pressure'}"
    if pod.disruption:
        return f"disrupted ({pod.disruption})"
    if pod.name in disrupted_by_pdb:
        return "evicted through the eviction API (PDB disruptedPods)"
    return None


def _event(kind: str, component: ComponentState, message: str, **extra: str) -> dict[str, Any]:
    return {"kind": kind, "component": component.component, "message": message, **extra}


class TimelineRecorder:
    """Writes the timeline of one watch into a directory."""

    def __init__(self, out_dir: Path, meta: dict[str, Any]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.detector = ChangeDetector()
        self.samples = 0
        self._rows: list[dict[str, Any]] = []
        self._started = time.monotonic()
        self._jsonl: TextIO = (out_dir / JSONL_NAME).open("w", encoding="utf-8")
        self._write({"type": "meta", "started_at": _now(), **meta})

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def record(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        """Writes one sample and the events since the previous one; returns those events."""
        t, now = round(self.elapsed, 3), _now()
        events = self.detector.changes(snapshot)
        for event in events:
            self._write({"type": "event", "t": t, "time": now, **event})
        components = [component_sample(c, self.detector.evictions[c.component]) for c in snapshot.components]
        self._write(
            {"type": "sample", "t": t, "time": now, "namespace": snapshot.namespace, "components": components}
        )
        self._rows += [_csv_row(t, now, c) for c in components]
        self.samples += 1
        return events

    def record_error(self, message: str) -> None:
        self._write({"type": "error", "t": round(self.elapsed, 3), "time": _now(), "message": message})

    def finish(self, exit_code: int) -> None:
        self._write(
            {
                "type": "end",
                "t": round(self.elapsed, 3),
                "time": _now(),
                "exit_code": exit_code,
                "samples": self.samples,
            }
        )
        self._jsonl.close()
        with (self.out_dir / CSV_NAME).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(self._rows)

    def _write(self, record: dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record, sort_keys=False) + "\n")
        self._jsonl.flush()


def _csv_row(t: float, now: str, sample: dict[str, Any]) -> dict[str, Any]:
    hpa, pdb = sample["hpa"] or {}, sample["pdb"] or {}
    metrics = "; ".join(
        f"{name} {m['current'] or '<unknown>'}/{m['target']}" for name, m in hpa.get("metrics", {}).items()
    )
    return {
        "t_seconds": t,
        "time": now,
        **{
            k: sample[k]
            for k in (
                "component",
                "kind",
                "desired",
                "ready",
                "updated",
                "available",
                "pods",
                "restarts",
                "evictions",
            )
        },
        "hpa_current": hpa.get("current", ""),
        "hpa_desired": hpa.get("desired", ""),
        "hpa_min": hpa.get("min", ""),
        "hpa_max": hpa.get("max", ""),
        "hpa_metrics": metrics,
        "pdb_disruptions_allowed": pdb.get("disruptions_allowed", ""),
        "pdb_current_healthy": pdb.get("current_healthy", ""),
        "pdb_desired_healthy": pdb.get("desired_healthy", ""),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Timeline:
    meta: dict[str, Any]
    samples: list[dict[str, Any]]
    events: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    end: dict[str, Any] | None


def load_timeline(path: Path) -> Timeline:
    """Reads timeline.jsonl (a directory holding it, or the file itself)."""
    path = path / JSONL_NAME if path.is_dir() else path
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record.get("type", ""), []).append(record)
    return Timeline(
        meta=(by_type.get("meta") or [{}])[0],
        samples=by_type.get("sample", []),
        events=by_type.get("event", []),
        errors=by_type.get("error", []),
        end=by_type["end"][0] if by_type.get("end") else None,
    )


def components_in(samples: Iterable[dict[str, Any]]) -> list[str]:
    return sorted({c["component"] for s in samples for c in s["components"]})


def component_summaries(timeline: Timeline) -> list[dict[str, Any]]:
    """Per component, what the cluster did over the whole watch: the range of ready replicas, the
    HPA's desired replicas from first to last and at most, restarts and evictions during the
    watch, and the fewest disruptions its PDB allowed (0: the PDB was holding pods back)."""
    summaries = []
    for name in components_in(timeline.samples):
        seen = [c for s in timeline.samples for c in s["components"] if c["component"] == name]
        hpas = [c["hpa"] for c in seen if c.get("hpa")]
        pdbs = [c["pdb"] for c in seen if c.get("pdb")]
        summaries.append(
            {
                "component": name,
                "ready_first": seen[0]["ready"],
                "ready_min": min(c["ready"] for c in seen),
                "ready_max": max(c["ready"] for c in seen),
                "ready_last": seen[-1]["ready"],
                "hpa_desired_first": hpas[0]["desired"] if hpas else None,
                "hpa_desired_max": max(h["desired"] for h in hpas) if hpas else None,
                "hpa_desired_last": hpas[-1]["desired"] if hpas else None,
                "restarts": seen[-1]["restarts"] - seen[0]["restarts"],
                "evictions": seen[-1].get("evictions", 0),
                "pdb_allowed_min": min(p["disruptions_allowed"] for p in pdbs) if pdbs else None,
            }
        )
    return summaries
