"""Is a rollout done, and if not, why: the answers an SRE would otherwise dig out of kubectl."""

from __future__ import annotations

import re
from typing import Any

from ragfleet.ops.model import ComponentState, EventRecord, PodState

# Waiting reasons that do not fix themselves by waiting a bit longer.
FAILING_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def rollout_status(kind: str, workload: Any) -> tuple[bool, str, bool]:
    """(complete, what it is waiting for, failed) — the rules of `kubectl rollout status`."""
    meta, spec, status = workload.metadata, workload.spec, workload.status
    desired = spec.replicas if spec.replicas is not None else 1
    if status is None or (meta.generation or 0) > (status.observed_generation or 0):
        return False, "waiting for the controller to observe the new spec", False
    updated = status.updated_replicas or 0
    if kind == "Deployment":
        for condition in status.conditions or []:
            if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
                return False, f"rollout failed: {condition.message or 'progress deadline exceeded'}", True
        if updated < desired:
            return False, f"{updated} of {desired} new replicas updated", False
        if (status.replicas or 0) > updated:
            return False, f"{(status.replicas or 0) - updated} old replicas pending termination", False
        if (status.available_replicas or 0) < updated:
            return False, f"{status.available_replicas or 0} of {updated} updated replicas available", False
        return True, f"{desired} of {desired} replicas available", False
    ready = status.ready_replicas or 0
    if ready < desired:
        return False, f"{ready} of {desired} pods ready", False
    strategy = spec.update_strategy
    if strategy is not None and strategy.type == "OnDelete":
        return True, f"{ready} of {desired} pods ready (OnDelete: update progress not tracked)", False
    partition = strategy.rolling_update.partition if strategy and strategy.rolling_update else None
    if partition:
        if updated < desired - partition:
            return False, f"{updated} of {desired - partition} pods above the partition updated", False
    elif status.update_revision and status.current_revision != status.update_revision:
        return False, f"{updated} of {desired} pods updated to revision {status.update_revision}", False
    return True, f"{ready} of {desired} pods ready", False


def events_of_component(state: ComponentState, events: list[EventRecord]) -> list[EventRecord]:
    """Events about the workload, its ReplicaSets, its HPA and its pods (also pods already gone)."""
    pod_names = {p.name for p in state.pods}
    # Names the controllers give (also to pods already gone): <deployment>-<hash>-<suffix>,
    # <deployment>-<hash> for ReplicaSets, <statefulset>-<ordinal>. Exact shapes, so that
    # "ingestion" does not claim the pods of "ingestion-worker".
    escaped = re.escape(state.name)
    pod_pattern = re.compile(
        rf"{escaped}-\d+" if state.kind == "StatefulSet" else rf"{escaped}-[a-z0-9]+-[a-z0-9]+"
    )
    replicaset_pattern = re.compile(rf"{escaped}-[a-z0-9]+")

    def concerns(event: EventRecord) -> bool:
        kind, name = event.object_kind, event.object_name
        if kind == state.kind:
            return name == state.name
        if kind == "Pod":
            return name in pod_names or pod_pattern.fullmatch(name) is not None
        if kind == "ReplicaSet":
            return state.kind == "Deployment" and replicaset_pattern.fullmatch(name) is not None
        if kind == "HorizontalPodAutoscaler":
            return state.hpa is not None and name == state.hpa.name
        return False

    return [e for e in events if concerns(e)]


def pod_problems(pod: PodState) -> list[str]:
    # An evicted pod stays behind as Failed once its ReplicaSet replaced it: history (`watch`
    # records evictions), not a current problem.
    if pod.terminating or pod.phase in ("Succeeded", "Failed"):
        return []
    problems = []
    if pod.unschedulable:
        problems.append(f"pod {pod.name} unschedulable: {pod.unschedulable}")
    for container in pod.containers:
        if container.waiting_reason in FAILING_WAITING_REASONS:
            line = f"pod {pod.name} container {container.name}: {container.waiting_reason}"
            if container.waiting_message:
                line += f" ({container.waiting_message})"
            if container.last_terminated_reason:
                line += f"; last exit {container.last_terminated_reason} code {container.last_exit_code}"
            line += f"; {container.restarts} restarts"
            problems.append(line)
    if not problems and pod.phase == "Running" and not pod.ready:
        not_ready = ", ".join(c.name for c in pod.containers if not c.ready) or "?"
        problems.append(f"pod {pod.name} running but not ready (containers not ready: {not_ready})")
    if not problems and pod.phase == "Pending" and not pod.unschedulable:
        waiting = ", ".join(f"{c.name} {c.waiting_reason}" for c in pod.containers if c.waiting_reason)
        problems.append(f"pod {pod.name} pending" + (f" ({waiting})" if waiting else ""))
    return problems


def component_problems(state: ComponentState) -> list[str]:
    problems = []
    if state.rollout_failed:
        problems.append(state.rollout_message)
    for pod in state.pods:
        problems.extend(pod_problems(pod))
    if state.hpa is not None:
        problems.extend(state.hpa.problems)
    if state.desired > 0 and not state.pods:
        problems.append(f"no pods match {state.kind} {state.name}'s selector")
    return problems


def explain_not_ready(state: ComponentState) -> list[str]:
    """The lines printed under a component that is not ready: rollout, pods, recent warnings."""
    lines = [state.rollout_message, *state.problems]
    for event in state.warnings:
        times = f" x{event.count}" if event.count > 1 else ""
        lines.append(
            f"Warning {event.reason}{times} on {event.object_kind} {event.object_name}: {event.message}"
        )
    return list(dict.fromkeys(lines))
