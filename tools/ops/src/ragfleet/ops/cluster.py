"""Connecting to the cluster (kubeconfig or in-cluster) and reading a release into a Snapshot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ragfleet.ops.diagnosis import component_problems, events_of_component, rollout_status
from ragfleet.ops.model import (
    ComponentState,
    ContainerRecommendation,
    ContainerState,
    EventRecord,
    HpaState,
    MetricState,
    PdbState,
    PodState,
    Snapshot,
    VpaState,
)

PART_OF_LABEL = "app.kubernetes.io/part-of"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# (connect, read) seconds: a hung API server must not hang `wait` past its own timeout.
REQUEST_TIMEOUT = (5.0, 30.0)


class OpsError(Exception):
    """A usage or connection problem: the CLI prints it and exits with code 2."""


@dataclass
class Connection:
    api_client: client.ApiClient
    default_namespace: str
    source: str


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """Kubeconfig (explicit file, $KUBECONFIG or ~/.kube/config), else the in-cluster service account."""
    try:
        api_client = config.new_client_from_config(
            config_file=kubeconfig, context=context, persist_config=False
        )
    except (ConfigException, OSError) as kubeconfig_error:
        if kubeconfig or context:
            raise OpsError(
                f"cannot use kubeconfig {kubeconfig or ''} context {context or ''}: {kubeconfig_error}"
            ) from None
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as incluster_error:
            raise OpsError(
                f"no Kubernetes configuration: no usable kubeconfig ({kubeconfig_error}) and not running in a "
                f"cluster ({incluster_error}); pass --kubeconfig"
            ) from None
        namespace = (
            SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.exists() else "default"
        )
        return Connection(client.ApiClient(configuration), namespace, "in-cluster service account")
    _, active = config.list_kube_config_contexts(config_file=kubeconfig)
    if context:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
        active = next((c for c in contexts if c["name"] == context), active)
    namespace = (active or {}).get("context", {}).get("namespace") or "default"
    return Connection(api_client, namespace, f"kubeconfig context {(active or {}).get('name', '?')}")


def release_selector(release: str | None) -> str:
    """A release's objects carry its instance label; without one, every ragfleet object in the namespace."""
    return f"{INSTANCE_LABEL}={release}" if release else f"{PART_OF_LABEL}=ragfleet"


class ClusterReader:
    """Reads everything `status`, `wait` and `watch` show about one release, in one pass of list calls."""

    def __init__(self, connection: Connection, namespace: str, release: str | None = None) -> None:
        self.namespace = namespace
        self.selector = release_selector(release)
        self._apps = client.AppsV1Api(connection.api_client)
        self._core = client.CoreV1Api(connection.api_client)
        self._autoscaling = client.AutoscalingV2Api(connection.api_client)
        self._policy = client.PolicyV1Api(connection.api_client)
        self._custom = client.CustomObjectsApi(connection.api_client)

    def snapshot(self) -> Snapshot:
        """Raises OpsError when the API cannot be reached or refuses the workloads' list."""
        try:
            return self._snapshot()
        except ApiException as error:
            raise OpsError(
                f"the API server answered {error.status} {error.reason}: {api_message(error)}"
            ) from None
        except urllib3.exceptions.HTTPError as error:
            raise OpsError(f"cannot reach the API server: {error}") from None

    def _snapshot(self) -> Snapshot:
        ns, selector, timeout = self.namespace, self.selector, REQUEST_TIMEOUT
        deployments = self._apps.list_namespaced_deployment(
            ns, label_selector=selector, _request_timeout=timeout
        ).items
        statefulsets = self._apps.list_namespaced_stateful_set(
            ns, label_selector=selector, _request_timeout=timeout
        ).items
        pods = self._core.list_namespaced_pod(ns, _request_timeout=timeout).items
        notes: list[str] = []
        events = self._optional(
            notes, "events", lambda: self._core.list_namespaced_event(ns, _request_timeout=timeout).items
        )
        hpas = self._optional(
            notes,
            "HorizontalPodAutoscalers",
            lambda: (
                self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
                    ns, _request_timeout=timeout
                ).items
            ),
        )
        pdbs = self._optional(
            notes,
            "PodDisruptionBudgets",
            lambda: self._policy.list_namespaced_pod_disruption_budget(ns, _request_timeout=timeout).items,
        )
        vpas, vpa_installed = self._vpas(notes)
        event_records = sorted((_event(e) for e in events), key=lambda e: e.last_seen or "", reverse=True)

        components = []
        for workload in [*deployments, *statefulsets]:
            kind = "Deployment" if isinstance(workload, client.V1Deployment) else "StatefulSet"
            components.append(_component(kind, workload, pods, hpas, pdbs, vpas, event_records))
        components.sort(key=lambda c: (c.component, c.name))
        return Snapshot(
            namespace=ns,
            selector=selector,
            taken_at=datetime.now(UTC).isoformat(timespec="seconds"),
            components=components,
            vpa_installed=vpa_installed,
            notes=notes,
            events=event_records,
        )

    def _optional(self, notes: list[str], what: str, read: Any) -> list[Any]:
        """Events, HPAs and PDBs enrich the report; a service account not allowed to read them still gets one."""
        try:
            return list(read())
        except ApiException as error:
            if error.status in (403, 404):
                notes.append(f"cannot read {what}: {error.status} {api_message(error)}")
                return []
            raise

    def _vpas(self, notes: list[str]) -> tuple[list[dict[str, Any]], bool]:
        try:
            answer = self._custom.list_namespaced_custom_object(
                "autoscaling.k8s.io",
                "v1",
                self.namespace,
                "verticalpodautoscalers",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404:
                notes.append(
                    "VerticalPodAutoscaler CRD (autoscaling.k8s.io/v1) not installed: no VPA recommendations"
                )
                return [], False
            if error.status == 403:
                notes.append(f"cannot read VerticalPodAutoscalers: 403 {api_message(error)}")
                return [], False
            raise
        return list(answer.get("items", [])) if isinstance(answer, dict) else [], True


def _component(
    kind: str,
    workload: Any,
    pods: list[client.V1Pod],
    hpas: list[client.V2HorizontalPodAutoscaler],
    pdbs: list[client.V1PodDisruptionBudget],
    vpas: list[dict[str, Any]],
    events: list[EventRecord],
) -> ComponentState:
    meta, spec, status = workload.metadata, workload.spec, workload.status
    name = meta.name or ""
    desired = spec.replicas if spec.replicas is not None else 1
    own_pods = [_pod(p) for p in pods if selector_matches(spec.selector, _metadata(p).labels or {})]
    complete, message, failed = rollout_status(kind, workload)
    template_labels = (spec.template.metadata.labels if spec.template.metadata else None) or {}
    state = ComponentState(
        component=(meta.labels or {}).get(COMPONENT_LABEL, name),
        kind=kind,
        name=name,
        desired=desired,
        ready=(status.ready_replicas or 0) if status else 0,
        updated=(status.updated_replicas or 0) if status else 0,
        available=(status.available_replicas or 0) if status else 0,
        rollout_complete=complete,
        rollout_message=message,
        rollout_failed=failed,
        restarts=sum(p.restarts for p in own_pods),
        pods=own_pods,
        hpa=next((_hpa(h) for h in hpas if _targets(h.spec.scale_target_ref, kind, name)), None),
        pdb=next(
            (_pdb(p) for p in pdbs if p.spec and selector_matches(p.spec.selector, template_labels)), None
        ),
        vpa=next(
            (_vpa(v) for v in vpas if _targets_dict(v.get("spec", {}).get("targetRef"), kind, name)), None
        ),
    )
    state.warnings = [e for e in events_of_component(state, events) if e.type == "Warning"][:5]
    state.problems = component_problems(state)
    return state


def selector_matches(selector: client.V1LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty or missing selector matches nothing here
    (a PDB without a selector must not be attributed to every component)."""
    if selector is None or (not selector.match_labels and not selector.match_expressions):
        return False
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    for requirement in selector.match_expressions or []:
        values, present = requirement.values or [], requirement.key in labels
        value = labels.get(requirement.key)
        ok = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(requirement.operator, False)
        if not ok:
            return False
    return True


def _metadata(obj: Any) -> client.V1ObjectMeta:
    return obj.metadata or client.V1ObjectMeta()


def _targets(ref: Any, kind: str, name: str) -> bool:
    return ref is not None and ref.kind == kind and ref.name == name


def _targets_dict(ref: Mapping[str, Any] | None, kind: str, name: str) -> bool:
    return bool(ref) and ref.get("kind") == kind and ref.get("name") == name  # type: ignore[union-attr]


def _pod(pod: client.V1Pod) -> PodState:
    status = pod.status or client.V1PodStatus()
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    containers = [_container(c) for c in statuses]
    conditions = {c.type: c for c in status.conditions or []}
    scheduled = conditions.get("PodScheduled")
    disruption = conditions.get("DisruptionTarget")
    ready = conditions.get("Ready")
    return PodState(
        name=_metadata(pod).name or "",
        phase=status.phase or "Unknown",
        ready=ready is not None and ready.status == "True",
        node=pod.spec.node_name if pod.spec else None,
        restarts=sum(c.restarts for c in containers),
        containers=containers,
        reason=status.reason,
        message=status.message,
        unschedulable=(scheduled.message or scheduled.reason or "unschedulable")
        if scheduled is not None and scheduled.status == "False"
        else None,
        disruption=(disruption.reason or "DisruptionTarget")
        if disruption is not None and disruption.status == "True"
        else None,
        terminating=_metadata(pod).deletion_timestamp is not None,
    )


def _container(status: client.V1ContainerStatus) -> ContainerState:
    waiting = status.state.waiting if status.state else None
    terminated = status.last_state.terminated if status.last_state else None
    return ContainerState(
        name=status.name,
        ready=bool(status.ready),
        restarts=status.restart_count or 0,
        waiting_reason=waiting.reason if waiting else None,
        waiting_message=waiting.message if waiting else None,
        last_terminated_reason=terminated.reason if terminated else None,
        last_exit_code=terminated.exit_code if terminated else None,
    )


def _hpa(hpa: client.V2HorizontalPodAutoscaler) -> HpaState:
    spec, status = hpa.spec, hpa.status
    current = {_metric_key(m): m for m in (status.current_metrics if status else None) or []}
    metrics = [
        MetricState(
            name=_metric_key(m), current=_metric_value(current.get(_metric_key(m))), target=_metric_target(m)
        )
        for m in spec.metrics or []
    ]
    problems, limited = [], None
    for condition in (status.conditions if status else None) or []:
        if condition.type in ("AbleToScale", "ScalingActive") and condition.status == "False":
            problems.append(f"HPA {condition.type}=False ({condition.reason}): {condition.message}")
        if condition.type == "ScalingLimited" and condition.status == "True":
            limited = f"{condition.reason}: {condition.message}"
    return HpaState(
        name=_metadata(hpa).name or "",
        min_replicas=spec.min_replicas if spec.min_replicas is not None else 1,
        max_replicas=spec.max_replicas,
        current_replicas=(status.current_replicas or 0) if status else 0,
        desired_replicas=status.desired_replicas if status else 0,
        metrics=metrics,
        problems=problems,
        scaling_limited=limited,
    )


def _metric_source(metric: Any) -> Any:
    return {
        "Resource": metric.resource,
        "ContainerResource": metric.container_resource,
        "Pods": metric.pods,
        "Object": metric.object,
        "External": metric.external,
    }.get(metric.type)


def _metric_key(metric: Any) -> str:
    source = _metric_source(metric)
    if source is None:
        return metric.type
    if metric.type == "Resource":
        return str(source.name)
    if metric.type == "ContainerResource":
        return f"{source.container}/{source.name}"
    return f"{metric.type.lower()}:{source.metric.name}"


def _metric_target(metric: Any) -> str:
    source = _metric_source(metric)
    return _format_value(source.target if source is not None else None) or "?"


def _metric_value(metric: Any) -> str | None:
    source = _metric_source(metric) if metric is not None else None
    return _format_value(source.current if source is not None else None)


def _format_value(value: Any) -> str | None:
    if value is None:
        return None
    if value.average_utilization is not None:
        return f"{value.average_utilization}%"
    return value.average_value or value.value


def _pdb(pdb: client.V1PodDisruptionBudget) -> PdbState:
    spec, status = pdb.spec, pdb.status or client.V1PodDisruptionBudgetStatus()
    return PdbState(
        name=_metadata(pdb).name or "",
        disruptions_allowed=status.disruptions_allowed or 0,
        current_healthy=status.current_healthy or 0,
        desired_healthy=status.desired_healthy or 0,
        expected_pods=status.expected_pods or 0,
        min_available=None if spec is None or spec.min_available is None else str(spec.min_available),
        max_unavailable=None if spec is None or spec.max_unavailable is None else str(spec.max_unavailable),
        disrupted_pods=sorted(status.disrupted_pods or {}),
    )


def _vpa(vpa: Mapping[str, Any]) -> VpaState:
    recommendations = vpa.get("status", {}).get("recommendation", {}).get("containerRecommendations", [])
    return VpaState(
        name=vpa.get("metadata", {}).get("name", ""),
        update_mode=vpa.get("spec", {}).get("updatePolicy", {}).get("updateMode"),
        recommendations=[
            ContainerRecommendation(
                container=r.get("containerName", "?"),
                target=dict(r.get("target", {})),
                lower_bound=dict(r.get("lowerBound", {})),
                upper_bound=dict(r.get("upperBound", {})),
            )
            for r in recommendations
        ],
    )


def _event(event: client.CoreV1Event) -> EventRecord:
    seen = (
        event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    )
    involved = event.involved_object
    return EventRecord(
        uid=event.metadata.uid or f"{event.metadata.name}",
        type=event.type or "Normal",
        reason=event.reason or "",
        message=(event.message or "").strip(),
        object_kind=involved.kind or "",
        object_name=involved.name or "",
        count=event.count or (event.series.count if event.series and event.series.count else 1),
        last_seen=seen.astimezone(UTC).isoformat(timespec="seconds") if seen else None,
    )


def api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
