"""The /metrics URL of every Ready pod of a release's components, for scrapers that must sum replicas.

A Service sends each request to one pod, so a counter read through it is one random replica's.
The load test's cache hit rate sums the counters of retrieval and of every gateway (each keeps
its own edge tier), so the in-cluster benchmark scrapes the pods themselves: found by the chart's
selector labels, addressed by pod IP and the container's named port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ragfleet.ops.cluster import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    REQUEST_TIMEOUT,
    Connection,
    OpsError,
    api_message,
)


@dataclass
class ComponentTargets:
    component: str
    urls: list[str] = field(default_factory=list)
    # One line per pod left out, saying why (not Ready, terminating, no port of that name...).
    skipped: list[str] = field(default_factory=list)


def metrics_targets(
    connection: Connection,
    namespace: str,
    release: str,
    components: Sequence[str],
    port_name: str = "http",
    path: str = "/metrics",
) -> list[ComponentTargets]:
    """One entry per component, in the order given; raises OpsError when the API cannot be read."""
    core = client.CoreV1Api(connection.api_client)
    targets = []
    for component in components:
        selector = f"{INSTANCE_LABEL}={release},{COMPONENT_LABEL}={component}"
        try:
            pods = core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
            ).items
        except ApiException as error:
            raise OpsError(
                f"cannot list the pods of {component} ({selector}) in namespace {namespace}: "
                f"{error.status} {api_message(error)}"
            ) from None
        except urllib3.exceptions.HTTPError as error:
            raise OpsError(f"cannot reach the API server: {error}") from None
        targets.append(_component_targets(component, pods, port_name, path))
    return targets


def _component_targets(
    component: str, pods: list[client.V1Pod], port_name: str, path: str
) -> ComponentTargets:
    targets = ComponentTargets(component)
    for pod in sorted(pods, key=lambda p: _metadata(p).name or ""):
        base_url, why_not = _base_url(pod, port_name)
        if base_url:
            targets.urls.append(f"{base_url}{path}")
        else:
            targets.skipped.append(f"{_metadata(pod).name}: {why_not}")
    return targets


def _base_url(pod: client.V1Pod, port_name: str) -> tuple[str, str]:
    """(``http://ip:port``, "") when the pod is one its Service would send traffic to (Ready, not
    going away, addressed, serving that port); else ("", why not)."""
    if _metadata(pod).deletion_timestamp is not None:
        return "", "terminating"
    status = pod.status or client.V1PodStatus()
    ready = next((c for c in status.conditions or [] if c.type == "Ready"), None)
    if ready is None or ready.status != "True":
        return "", f"not Ready (phase {status.phase or 'Unknown'})"
    ip: str | None = status.pod_ip
    if not ip:
        return "", "no pod IP yet"
    port = _named_port(pod, port_name)
    if port is None:
        return "", f"no container port named {port_name!r}"
    host = f"[{ip}]" if ":" in ip else ip  # IPv6 clusters
    return f"http://{host}:{port}", ""


def _metadata(pod: client.V1Pod) -> client.V1ObjectMeta:
    return pod.metadata or client.V1ObjectMeta()


def _named_port(pod: client.V1Pod, port_name: str) -> int | None:
    containers = pod.spec.containers if pod.spec else []
    return next(
        (p.container_port for c in containers for p in c.ports or [] if p.name == port_name),
        None,
    )
