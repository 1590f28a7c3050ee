"""What ragfleet-ops knows about a release at one moment, as plain data (JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ContainerState:
    name: str
    ready: bool
    restarts: int
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_terminated_reason: str | None = None
    last_exit_code: int | None = None


@dataclass
class PodState:
    name: str
    phase: str
    ready: bool
    node: str | None
    restarts: int
    containers: list[ContainerState] = field(default_factory=list)
    # status.reason, e.g. "Evicted" after node-pressure eviction.
    reason: str | None = None
    message: str | None = None
    unschedulable: str | None = None
    # The DisruptionTarget condition's reason, e.g. "EvictionByEvictionAPI" during a drain.
    disruption: str | None = None
    terminating: bool = False


@dataclass
class MetricState:
    """One HPA metric: e.g. name "cpu", current "35%", target "70%"."""

    name: str
    current: str | None
    target: str


@dataclass
class HpaState:
    name: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int
    metrics: list[MetricState] = field(default_factory=list)
    # Conditions that stop the HPA from doing its job (ScalingActive/AbleToScale false).
    problems: list[str] = field(default_factory=list)
    scaling_limited: str | None = None


@dataclass
class PdbState:
    name: str
    disruptions_allowed: int
    current_healthy: int
    desired_healthy: int
    expected_pods: int
    min_available: str | None = None
    max_unavailable: str | None = None
    disrupted_pods: list[str] = field(default_factory=list)


@dataclass
class ContainerRecommendation:
    container: str
    target: dict[str, str]
    lower_bound: dict[str, str]
    upper_bound: dict[str, str]


@dataclass
class VpaState:
    name: str
    update_mode: str | None
    recommendations: list[ContainerRecommendation] = field(default_factory=list)


@dataclass
class EventRecord:
    uid: str
    type: str
    reason: str
    message: str
    object_kind: str
    object_name: str
    count: int
    last_seen: str | None


@dataclass
class ComponentState:
    component: str
    kind: str
    name: str
    desired: int
    ready: int
    updated: int
    available: int
    rollout_complete: bool
    rollout_message: str
    # True when the rollout cannot finish by itself (ProgressDeadlineExceeded).
    rollout_failed: bool = False
    restarts: int = 0
    pods: list[PodState] = field(default_factory=list)
    hpa: HpaState | None = None
    pdb: PdbState | None = None
    vpa: VpaState | None = None
    # Why it is degraded, one line each (pods failing, unschedulable, HPA without metrics...).
    problems: list[str] = field(default_factory=list)
    # Recent Warning events of the workload, its ReplicaSets and its pods (newest first).
    warnings: list[EventRecord] = field(default_factory=list)

    @property
    def is_ready(self) -> bool:
        return self.rollout_complete and self.available >= self.desired

    @property
    def degraded(self) -> bool:
        return not self.is_ready or bool(self.problems)


@dataclass
class Snapshot:
    namespace: str
    selector: str
    taken_at: str
    components: list[ComponentState]
    # False: the VerticalPodAutoscaler API (autoscaling.k8s.io/v1) is not installed or not readable.
    vpa_installed: bool
    notes: list[str] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return not self.components or any(c.degraded for c in self.components)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("events")
        for component, state in zip(data["components"], self.components, strict=True):
            component["ready_state"] = "ready" if state.is_ready else "not-ready"
            component["degraded"] = state.degraded
        data["degraded"] = self.degraded
        return data
