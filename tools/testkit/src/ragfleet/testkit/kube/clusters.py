"""Scenario fixtures for the fake API: the objects a ragfleet release shows in each situation.

The builders return objects in the API's JSON shape (what `kubectl get -o json` prints), with the
labels the chart puts on them, so the CLI parses them with the official client's models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragfleet.testkit.kube.fake_apiserver import Frame, Scenario

NAMESPACE = "ragfleet"
RELEASE = "ragfleet"
NOW = "2026-11-20T10:00:00Z"
Obj = dict[str, Any]


def labels(component: str, release: str = RELEASE) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ragfleet",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "ragfleet",
    }


def selector_labels(component: str, release: str = RELEASE) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ragfleet",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
    }


def _meta(name: str, component: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "labels": labels(component), **extra}


def _template(component: str) -> Obj:
    return {
        "metadata": {"labels": labels(component)},
        "spec": {"containers": [{"name": component, "image": f"ragfleet-{component}:0.1.0"}]},
    }


def deployment(
    component: str,
    replicas: int = 2,
    *,
    ready: int | None = None,
    updated: int | None = None,
    available: int | None = None,
    total: int | None = None,
    deadline_exceeded: bool = False,
) -> Obj:
    ready = replicas if ready is None else ready
    conditions = [
        {
            "type": "Available",
            "status": "True" if ready >= replicas else "False",
            "reason": "MinimumReplicasAvailable",
        }
    ]
    if deadline_exceeded:
        conditions.append(
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "ragfleet-{component}-7d9f8c6b5" has timed out progressing.',
            }
        )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"ragfleet-{component}", component, generation=2),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(component)},
            "template": _template(component),
        },
        "status": {
            "observedGeneration": 2,
            "replicas": replicas if total is None else total,
            "updatedReplicas": replicas if updated is None else updated,
            "readyReplicas": ready,
            "availableReplicas": ready if available is None else available,
            "conditions": conditions,
        },
    }


def statefulset(component: str, replicas: int = 1, *, ready: int | None = None) -> Obj:
    ready = replicas if ready is None else ready
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(f"ragfleet-{component}", component, generation=1),
        "spec": {
            "replicas": replicas,
            "serviceName": f"ragfleet-{component}",
            "selector": {"matchLabels": selector_labels(component)},
            "template": _template(component),
            "updateStrategy": {"type": "RollingUpdate"},
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": f"ragfleet-{component}-5c7d",
            "updateRevision": f"ragfleet-{component}-5c7d",
        },
    }


# The chart's HTTP components and their container port (named "http"); the worker and Redis have none.
HTTP_PORTS = {"gateway": 8000, "retrieval": 8010, "llm-proxy": 8020, "ingestion": 8030}


def pod_ip(component: str, index: int) -> str:
    """A stable address per pod: one /24 per component, as a node's pod CIDR would look."""
    subnet = sorted([*HTTP_PORTS, "ingestion-worker", "redis"]).index(component) + 1
    return f"10.244.{subnet}.{index + 10}"


def pod_name(component: str, index: int, statefulset: bool = False) -> str:
    return f"ragfleet-{component}-{index}" if statefulset else f"ragfleet-{component}-7d9f8c6b5-p{index:03d}"


def pod(
    component: str,
    index: int = 0,
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: tuple[str, str] | None = None,
    last_exit: tuple[str, int] | None = None,
    unschedulable: str | None = None,
    evicted: bool = False,
    disruption: str | None = None,
    statefulset: bool = False,
    terminating: bool = False,
) -> Obj:
    name = pod_name(component, index, statefulset)
    phase = "Failed" if evicted else ("Pending" if unschedulable else "Running")
    container: Obj = {
        "name": component,
        "image": f"ragfleet-{component}:0.1.0",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": ready,
        "state": {"running": {"startedAt": NOW}},
    }
    if waiting:
        container["state"] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    if last_exit:
        container["lastState"] = {
            "terminated": {
                "reason": last_exit[0],
                "exitCode": last_exit[1],
                "startedAt": NOW,
                "finishedAt": NOW,
            }
        }
    conditions = [
        {"type": "PodScheduled", "status": "True"},
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    if unschedulable:
        conditions = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        ]
    if disruption:
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": disruption})
    status: Obj = {"phase": phase, "conditions": conditions}
    if not unschedulable:
        status["containerStatuses"] = [container]
        status["podIP"] = pod_ip(component, index)
    if evicted:
        status.update(reason="Evicted", message="The node was low on resource: memory.", containerStatuses=[])
    metadata = _meta(name, component)
    metadata["labels"] = {**selector_labels(component), "app.kubernetes.io/part-of": "ragfleet"}
    if terminating:
        metadata["deletionTimestamp"] = NOW
    spec_container: Obj = {"name": component}
    if component in HTTP_PORTS:
        spec_container["ports"] = [
            {"name": "http", "containerPort": HTTP_PORTS[component], "protocol": "TCP"}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": None if unschedulable else "kind-worker", "containers": [spec_container]},
        "status": status,
    }


def event(
    kind: str, name: str, reason: str, message: str, *, type: str = "Warning", count: int = 1, at: str = NOW
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{name}.{reason.lower()}.{count}",
            "namespace": NAMESPACE,
            "uid": f"ev-{name}-{reason}-{at}",
        },
        "involvedObject": {"kind": kind, "name": name, "namespace": NAMESPACE},
        "reason": reason,
        "message": message,
        "type": type,
        "count": count,
        "firstTimestamp": at,
        "lastTimestamp": at,
    }


def hpa(
    component: str,
    *,
    current: int = 2,
    desired: int | None = None,
    cpu: int | None = 35,
    minimum: int = 2,
    maximum: int = 6,
    metrics_ok: bool = True,
) -> Obj:
    status: Obj = {"currentReplicas": current, "desiredReplicas": current if desired is None else desired}
    if cpu is not None:
        status["currentMetrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": cpu, "averageValue": "120m"}},
            }
        ]
    status["conditions"] = [
        {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
        {
            "type": "ScalingActive",
            "status": "True" if metrics_ok else "False",
            "reason": "ValidMetricFound" if metrics_ok else "FailedGetResourceMetric",
            "message": ""
            if metrics_ok
            else "the HPA was unable to compute the replica count: no metrics returned from resource metrics API",
        },
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(f"ragfleet-{component}", component),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": f"ragfleet-{component}",
            },
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
        "status": status,
    }


def pdb(
    component: str,
    *,
    healthy: int = 2,
    expected: int = 2,
    min_available: int = 1,
    disrupted: Sequence[str] = (),
) -> Obj:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(f"ragfleet-{component}", component),
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector_labels(component)}},
        "status": {
            "currentHealthy": healthy,
            "desiredHealthy": min_available,
            "expectedPods": expected,
            "disruptionsAllowed": max(healthy - min_available, 0),
            "disruptedPods": dict.fromkeys(disrupted, NOW),
            "observedGeneration": 1,
        },
    }


def vpa(component: str, *, cpu: str = "250m", memory: str = "300Mi") -> Obj:
    return {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": _meta(f"ragfleet-{component}", component),
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"ragfleet-{component}"},
            "updatePolicy": {"updateMode": "Off"},
        },
        "status": {
            "recommendation": {
                "containerRecommendations": [
                    {
                        "containerName": component,
                        "target": {"cpu": cpu, "memory": memory},
                        "lowerBound": {"cpu": "100m", "memory": "200Mi"},
                        "upperBound": {"cpu": "1", "memory": "1Gi"},
                    }
                ]
            }
        },
    }


# The ragfleet release: component -> replicas.
RELEASE_COMPONENTS = {"gateway": 2, "retrieval": 2, "llm-proxy": 1, "ingestion": 1, "ingestion-worker": 1}


def healthy_frame(gateway_replicas: int = 2, gateway_cpu: int = 35) -> dict[str, list[Obj]]:
    components = {**RELEASE_COMPONENTS, "gateway": gateway_replicas}
    return {
        "deployments": [deployment(c, n) for c, n in components.items()],
        "statefulsets": [statefulset("redis")],
        "pods": [pod(c, i) for c, n in components.items() for i in range(n)]
        + [pod("redis", 0, statefulset=True)],
        "events": [
            event(
                "Deployment",
                "ragfleet-gateway",
                "ScalingReplicaSet",
                "Scaled up replica set ragfleet-gateway-7d9f8c6b5 to 2",
                type="Normal",
            )
        ],
        "horizontalpodautoscalers": [
            hpa("gateway", current=gateway_replicas, cpu=gateway_cpu, minimum=2),
            hpa("retrieval", current=2, cpu=20),
        ],
        "poddisruptionbudgets": [
            pdb("gateway", healthy=gateway_replicas, expected=gateway_replicas),
            pdb("retrieval"),
        ],
        "verticalpodautoscalers": [vpa("gateway"), vpa("retrieval", cpu="400m", memory="600Mi")],
    }


def healthy(*, vpa_crd_installed: bool = True) -> Scenario:
    return Scenario([healthy_frame()], vpa_crd_installed=vpa_crd_installed)


def progressing(polls_until_ready: int = 3) -> Scenario:
    """A rollout of gateway and retrieval that completes after `polls_until_ready` polls."""
    rolling = healthy_frame()
    rolling["deployments"] = [
        deployment("gateway", 2, ready=1, updated=1, total=3),
        deployment("retrieval", 2, ready=1, updated=2, available=1),
        *[
            d
            for d in rolling["deployments"]
            if d["metadata"]["name"] not in ("ragfleet-gateway", "ragfleet-retrieval")
        ],
    ]
    rolling["pods"] = [p for p in rolling["pods"] if p["metadata"]["name"] != pod_name("retrieval", 1)]
    rolling["pods"].append(pod("retrieval", 1, ready=False))
    return Scenario([rolling, healthy_frame()], polls_per_frame=polls_until_ready)


CRASH_MESSAGE = "back-off 5m0s restarting failed container=retrieval pod=ragfleet-retrieval-7d9f8c6b5-p001"
PULL_MESSAGE = 'Back-off pulling image "ragfleet-llm-proxy:0.2.0"'
UNSCHEDULABLE = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found."


def failing() -> Scenario:
    """retrieval crash-loops (readiness probe failing before), llm-proxy cannot pull its image,
    ingestion-worker cannot be scheduled; gateway and ingestion are fine."""
    frame = healthy_frame()
    frame["deployments"] = [
        deployment("gateway", 2),
        deployment("retrieval", 2, ready=1, available=1),
        deployment("llm-proxy", 1, ready=0, available=0),
        deployment("ingestion", 1),
        deployment("ingestion-worker", 1, ready=0, available=0),
    ]
    frame["pods"] = [
        pod("gateway", 0),
        pod("gateway", 1),
        pod("retrieval", 0),
        pod(
            "retrieval",
            1,
            ready=False,
            restarts=7,
            waiting=("CrashLoopBackOff", CRASH_MESSAGE),
            last_exit=("Error", 1),
        ),
        pod("llm-proxy", 0, ready=False, waiting=("ImagePullBackOff", PULL_MESSAGE)),
        pod("ingestion", 0),
        pod("ingestion-worker", 0, ready=False, unschedulable=UNSCHEDULABLE),
        pod("redis", 0, statefulset=True),
    ]
    frame["events"] = [
        event(
            "Pod",
            pod_name("retrieval", 1),
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            count=21,
            at="2026-11-20T09:58:00Z",
        ),
        event(
            "Pod",
            pod_name("retrieval", 1),
            "BackOff",
            "Back-off restarting failed container retrieval in pod ragfleet-retrieval-7d9f8c6b5-p001",
            count=30,
            at="2026-11-20T09:59:30Z",
        ),
        event(
            "Pod",
            pod_name("llm-proxy", 0),
            "Failed",
            'Failed to pull image "ragfleet-llm-proxy:0.2.0": not found',
            count=4,
            at="2026-11-20T09:59:00Z",
        ),
        event(
            "Pod",
            pod_name("ingestion-worker", 0),
            "FailedScheduling",
            UNSCHEDULABLE,
            count=3,
            at="2026-11-20T09:59:10Z",
        ),
        event(
            "Pod",
            pod_name("gateway", 0),
            "Pulled",
            "Container image already present on machine",
            type="Normal",
        ),
    ]
    frame["horizontalpodautoscalers"] = [hpa("gateway"), hpa("retrieval", cpu=None, metrics_ok=False)]
    frame["poddisruptionbudgets"] = [pdb("gateway"), pdb("retrieval", healthy=1)]
    return Scenario([frame])


def load_test() -> Scenario:
    """What a load test with a node drain looks like, one frame per sample: the HPA scales the
    gateway 2 -> 4, a retrieval pod restarts (OOMKilled), then a drain evicts a gateway pod while
    its PDB holds (disruptions allowed drops to 0), and the gateway is back to 4."""
    base = healthy_frame()
    busy = healthy_frame(gateway_cpu=140)
    busy["horizontalpodautoscalers"][0]["status"]["desiredReplicas"] = 4
    busy["events"].append(
        event(
            "HorizontalPodAutoscaler",
            "ragfleet-gateway",
            "SuccessfulRescale",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target",
            type="Normal",
            at="2026-11-20T10:00:10Z",
        )
    )
    scaled = healthy_frame(gateway_replicas=4, gateway_cpu=80)
    scaled["events"] = busy["events"]
    restarted = healthy_frame(gateway_replicas=4, gateway_cpu=75)
    restarted["events"] = busy["events"]
    restarted["pods"] = [p for p in restarted["pods"] if p["metadata"]["name"] != pod_name("retrieval", 0)]
    restarted["pods"].append(pod("retrieval", 0, restarts=1, last_exit=("OOMKilled", 137)))
    draining = healthy_frame(gateway_replicas=4, gateway_cpu=70)
    draining["events"] = busy["events"]
    draining["pods"] = restarted["pods"]
    draining["deployments"][0] = deployment("gateway", 4, ready=3, available=3)
    draining["pods"] = [p for p in draining["pods"] if p["metadata"]["name"] != pod_name("gateway", 3)]
    draining["pods"].append(pod("gateway", 3, ready=False, disruption="EvictionByEvictionAPI"))
    draining["poddisruptionbudgets"][0] = pdb(
        "gateway", healthy=3, expected=4, min_available=3, disrupted=[pod_name("gateway", 3)]
    )
    recovered = healthy_frame(gateway_replicas=4, gateway_cpu=60)
    recovered["events"] = busy["events"]
    recovered["pods"] = [p for p in restarted["pods"] if p["metadata"]["name"] != pod_name("gateway", 3)]
    recovered["pods"].append(pod("gateway", 4))
    recovered["poddisruptionbudgets"][0] = pdb("gateway", healthy=4, expected=4, min_available=3)
    frames: list[Frame] = [base, busy, scaled, restarted, draining, recovered]
    return Scenario(frames)
