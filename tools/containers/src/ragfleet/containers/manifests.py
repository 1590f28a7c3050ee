"""The rendered chart, translated into podman containers: the manifests are the only source of truth.

Why a translator and not ``podman kube play``: kube play starts every pod at once and wires
Services as nothing more than pod names, so readiness cannot gate traffic, a Service name cannot
point at two replicas and drop an unready one, and there is no hook to kill one replica's
container and watch the other take over. Reading the objects ourselves keeps each rule visible:
what is taken from the manifest (image, command, args, env with ConfigMaps/Secrets resolved,
securityContext, volumes, probes, resources) and what is refused loudly rather than dropped
(a field this harness cannot honour raises ``Unsupported``, so a chart change never passes by
being ignored).

Generic over Deployments, StatefulSets and Jobs, ConfigMaps, Secrets, Services and PVCs, so the
chart can change underneath without this file changing.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ragfleet.containers.engine import REPO_ROOT

CHART = REPO_ROOT / "charts" / "ragfleet"
VALUES = CHART / "ci" / "containers-values.yaml"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
# What a cluster does with these and a set of containers cannot: said in docs/deploy.md.
NOT_RUN_KINDS = frozenset(
    {
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "VerticalPodAutoscaler",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "Ingress",  # the harness's NGINX container plays the ingress controller
        "HTTPRoute",
        "CronJob",
        "Role",
        "RoleBinding",
    }
)


class Unsupported(ValueError):
    """A manifest asks for something the harness cannot do faithfully."""


def render(
    helm: Path, *, release: str, namespace: str, values: Iterable[Path], sets: dict[str, str]
) -> list[dict[str, Any]]:
    command = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for path in values:
        command += ["--values", str(path)]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Unsupported(f"helm template failed:\n{result.stderr[-3000:]}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _is_hook(obj: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (obj.get("metadata", {}).get("annotations") or {})


@dataclass
class Probe:
    kind: str  # startup, readiness, liveness
    http_path: str | None = None
    port: int | None = None
    exec_command: list[str] | None = None
    tcp: bool = False
    period_s: float = 10
    timeout_s: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_s: float = 0


@dataclass
class Mount:
    path: str
    volume: str
    read_only: bool = False
    sub_path: str | None = None


@dataclass
class Volume:
    name: str
    kind: str  # tmpfs, named, files
    size: str | None = None
    claim: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # ConfigMap/Secret volumes
    mode: int = 0o444


@dataclass
class ContainerSpec:
    name: str
    image: str
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    ports: dict[str, int]  # name (or str(number)) -> containerPort
    probes: dict[str, Probe]
    user: int | None
    group: int | None
    run_as_non_root: bool
    read_only_root: bool
    no_new_privileges: bool
    cap_drop: list[str]
    cap_add: list[str]
    mounts: list[Mount]
    memory_limit: str | None
    cpu_limit: str | None
    seccomp: str | None


@dataclass
class PodSpec:
    name: str  # pod name (hostname, metadata.name)
    workload: str  # Deployment/StatefulSet/Job name
    kind: str
    labels: dict[str, str]
    containers: list[ContainerSpec]
    init_containers: list[ContainerSpec]
    volumes: dict[str, Volume]
    grace_s: int
    restart_policy: str
    subdomain: str | None = None  # StatefulSet: its headless Service


@dataclass
class ServiceSpec:
    name: str
    selector: dict[str, str]
    ports: list[tuple[int, str | int]]  # (port, targetPort)
    headless: bool

    def selects(self, pod: PodSpec) -> bool:
        return bool(self.selector) and all(pod.labels.get(k) == v for k, v in self.selector.items())


@dataclass
class IngressSpec:
    name: str
    service: str
    port: str | int
    path: str
    annotations: dict[str, str]


@dataclass
class Plan:
    """Everything the harness runs, in start order (Deployments/StatefulSets, then Jobs)."""

    namespace: str
    pods: list[PodSpec]
    jobs: list[PodSpec]
    services: list[ServiceSpec]
    ingresses: list[IngressSpec]
    skipped: list[str]  # "Kind/name: why", for the log


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def podman_size(quantity: str) -> str:
    """A Kubernetes quantity (512Mi) as podman reads sizes (536870912b is unambiguous)."""
    match = _QUANTITY.match(str(quantity))
    if match is None:
        raise Unsupported(f"size {quantity!r} is not a quantity this harness reads")
    number, unit = float(match.group(1)), match.group(2) or ""
    factor = {
        "": 1,
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "Ti": 1024**4,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
    }
    return f"{int(number * factor[unit])}b"


def podman_cpus(quantity: str) -> str:
    text = str(quantity)
    return str(int(text[:-1]) / 1000) if text.endswith("m") else text


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command, args and env values ($$ escapes)."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text.replace("$$", "\0")).replace(
        "\0", "$"
    )


class Translator:
    def __init__(self, objects: list[dict[str, Any]], namespace: str) -> None:
        self.namespace = namespace
        self.objects = objects
        self.config_maps: dict[str, dict[str, bytes]] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.claims: set[str] = set()
        self.hpa_min: dict[str, int] = {}
        for obj in objects:
            kind, name = obj.get("kind"), obj["metadata"]["name"]
            if kind == "ConfigMap":
                data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
                data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
                self.config_maps[name] = data
            elif kind == "Secret":
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                data |= {k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()}
                self.secrets[name] = data
            elif kind == "PersistentVolumeClaim":
                self.claims.add(name)
            elif kind == "HorizontalPodAutoscaler":
                target = obj["spec"]["scaleTargetRef"]
                self.hpa_min[f"{target['kind']}/{target['name']}"] = int(obj["spec"].get("minReplicas", 1))

    # ---- env ----
    def _key(self, source: dict[str, dict[str, bytes]], what: str, ref: dict[str, Any]) -> str | None:
        values = source.get(ref["name"])
        if values is None or ref["key"] not in values:
            if ref.get("optional"):
                return None
            raise Unsupported(
                f"{what} {ref['name']}/{ref['key']} is not rendered by the chart (an existing one?)"
            )
        return values[ref["key"]].decode()

    def _env(self, container: dict[str, Any], pod_name: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref, pool, what = source["configMapRef"], self.config_maps, "ConfigMap"
            else:
                ref, pool, what = source["secretRef"], self.secrets, "Secret"
            if ref["name"] not in pool:
                if ref.get("optional"):
                    continue
                raise Unsupported(f"envFrom {what} {ref['name']} is not rendered by the chart")
            env |= {prefix + k: v.decode() for k, v in pool[ref["name"]].items()}
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = expand(str(item["value"]), env)
                continue
            value_from = item.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                value = self._key(self.secrets, "Secret", value_from["secretKeyRef"])
            elif "configMapKeyRef" in value_from:
                value = self._key(self.config_maps, "ConfigMap", value_from["configMapKeyRef"])
            elif "fieldRef" in value_from:
                path = value_from["fieldRef"]["fieldPath"]
                fields = {
                    "metadata.name": pod_name,
                    "metadata.namespace": self.namespace,
                    "spec.nodeName": "podman",
                }
                if path not in fields:
                    raise Unsupported(f"env {name}: fieldRef {path} is not supported")
                value = fields[path]
            else:
                raise Unsupported(f"env {name}: valueFrom {sorted(value_from)} is not supported")
            if value is not None:
                env[name] = value
        return env

    # ---- containers ----
    def _probe(self, kind: str, spec: dict[str, Any], ports: dict[str, int]) -> Probe:
        probe = Probe(
            kind,
            period_s=spec.get("periodSeconds", 10),
            timeout_s=spec.get("timeoutSeconds", 1),
            failure_threshold=spec.get("failureThreshold", 3),
            success_threshold=spec.get("successThreshold", 1),
            initial_delay_s=spec.get("initialDelaySeconds", 0),
        )
        if "httpGet" in spec:
            probe.http_path = spec["httpGet"].get("path", "/")
            probe.port = self._port(spec["httpGet"]["port"], ports)
            if spec["httpGet"].get("scheme", "HTTP") != "HTTP":
                raise Unsupported("httpGet probes over HTTPS are not supported")
        elif "exec" in spec:
            probe.exec_command = list(spec["exec"]["command"])
        elif "tcpSocket" in spec:
            probe.tcp, probe.port = True, self._port(spec["tcpSocket"]["port"], ports)
        else:
            raise Unsupported(f"{kind} probe {sorted(spec)} is not supported")
        return probe

    @staticmethod
    def _port(port: str | int, ports: dict[str, int]) -> int:
        if isinstance(port, int):
            return port
        if port not in ports:
            raise Unsupported(f"port {port!r} is not a named port of the container")
        return ports[port]

    def _container(self, c: dict[str, Any], pod: dict[str, Any], pod_name: str) -> ContainerSpec:
        pod_sc = pod.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        env = self._env(c, pod_name)
        ports = {
            p.get("name", str(p["containerPort"])): int(p["containerPort"]) for p in c.get("ports") or []
        }
        probes = {
            kind: self._probe(kind, c[f"{kind}Probe"], ports)
            for kind in ("startup", "readiness", "liveness")
            if c.get(f"{kind}Probe")
        }
        caps = sc.get("capabilities") or {}
        limits = (c.get("resources") or {}).get("limits") or {}
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in (None, "RuntimeDefault"):
            raise Unsupported(f"container {c['name']}: seccompProfile {seccomp} is not supported")
        if sc.get("privileged"):
            raise Unsupported(f"container {c['name']}: privileged containers are not run")
        mounts = [
            Mount(m["mountPath"], m["name"], bool(m.get("readOnly")), m.get("subPath"))
            for m in c.get("volumeMounts") or []
        ]
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        return ContainerSpec(
            name=c["name"],
            image=c["image"],
            command=[expand(a, env) for a in c["command"]] if c.get("command") else None,
            args=[expand(str(a), env) for a in c["args"]] if c.get("args") else None,
            env=env,
            ports=ports,
            probes=probes,
            user=user,
            group=sc.get("runAsGroup", pod_sc.get("runAsGroup")),
            run_as_non_root=bool(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))),
            read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
            no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
            cap_drop=list(caps.get("drop") or []),
            cap_add=list(caps.get("add") or []),
            mounts=mounts,
            memory_limit=podman_size(limits["memory"]) if "memory" in limits else None,
            cpu_limit=podman_cpus(limits["cpu"]) if "cpu" in limits else None,
            seccomp=seccomp,
        )

    def _volumes(self, pod: dict[str, Any], pod_name: str, workload: dict[str, Any]) -> dict[str, Volume]:
        volumes: dict[str, Volume] = {}
        for v in pod.get("volumes") or []:
            name = v["name"]
            if "emptyDir" in v:
                volumes[name] = Volume(name, "tmpfs", size=(v["emptyDir"] or {}).get("sizeLimit"))
            elif "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise Unsupported(f"volume {name}: claim {claim} is not rendered by the chart")
                volumes[name] = Volume(name, "named", claim=claim)
            elif "configMap" in v or "secret" in v:
                is_cm = "configMap" in v
                src = v["configMap"] if is_cm else v["secret"]
                src_name = src["name"] if is_cm else src["secretName"]
                pool = self.config_maps if is_cm else self.secrets
                if src_name not in pool:
                    if src.get("optional"):
                        continue
                    raise Unsupported(f"volume {name}: {src_name} is not rendered by the chart")
                data = pool[src_name]
                if src.get("items"):
                    data = {item["path"]: data[item["key"]] for item in src["items"]}
                volumes[name] = Volume(name, "files", files=data, mode=src.get("defaultMode", 0o644))
            else:
                raise Unsupported(f"volume {name}: {sorted(set(v) - {'name'})} is not supported")
        # StatefulSet claims: one named volume per pod, as the controller would make them.
        for template in workload.get("spec", {}).get("volumeClaimTemplates") or []:
            claim = f"{template['metadata']['name']}-{pod_name}"
            volumes[template["metadata"]["name"]] = Volume(template["metadata"]["name"], "named", claim=claim)
        return volumes

    def _pods(self, obj: dict[str, Any]) -> list[PodSpec]:
        kind, name = obj["kind"], obj["metadata"]["name"]
        spec = obj["spec"]
        template = spec["template"]
        pod = template["spec"]
        if kind == "Job":
            replicas = int(spec.get("parallelism", 1))
        elif "replicas" in spec:
            replicas = int(spec["replicas"])
        else:  # the HPA owns the count: it starts at its minimum
            replicas = self.hpa_min.get(f"{kind}/{name}", 1)
        pods = []
        for index in range(replicas):
            pod_name = f"{name}-{index}" if kind == "StatefulSet" else f"{name}-{index + 1}"
            pods.append(
                PodSpec(
                    name=pod_name,
                    workload=name,
                    kind=kind,
                    labels=dict(template.get("metadata", {}).get("labels") or {}),
                    containers=[self._container(c, pod, pod_name) for c in pod["containers"]],
                    init_containers=[
                        self._container(c, pod, pod_name) for c in pod.get("initContainers") or []
                    ],
                    volumes=self._volumes(pod, pod_name, obj),
                    grace_s=int(pod.get("terminationGracePeriodSeconds", 30)),
                    restart_policy=pod.get("restartPolicy", "Never" if kind == "Job" else "Always"),
                    subdomain=spec.get("serviceName") if kind == "StatefulSet" else None,
                )
            )
        for p in pods:
            if len(p.containers) != 1:
                raise Unsupported(f"{kind}/{name}: {len(p.containers)} containers per pod (one is supported)")
        return pods

    def plan(self) -> Plan:
        pods: list[PodSpec] = []
        jobs: list[PodSpec] = []
        services: list[ServiceSpec] = []
        ingresses: list[IngressSpec] = []
        skipped: list[str] = []
        for obj in self.objects:
            kind, name = obj.get("kind", ""), obj["metadata"]["name"]
            if _is_hook(obj):
                skipped.append(f"{kind}/{name}: a helm hook (helm test), not part of the release's workloads")
                continue
            if kind in WORKLOAD_KINDS:
                (jobs if kind == "Job" else pods).extend(self._pods(obj))
            elif kind == "Service":
                spec = obj["spec"]
                if spec.get("type", "ClusterIP") not in ("ClusterIP",):
                    skipped.append(f"Service/{name}: type {spec['type']} is served as ClusterIP")
                services.append(
                    ServiceSpec(
                        name,
                        dict(spec.get("selector") or {}),
                        [(int(p["port"]), p.get("targetPort", p["port"])) for p in spec.get("ports") or []],
                        spec.get("clusterIP") == "None",
                    )
                )
            elif kind == "Ingress":
                for rule in obj["spec"].get("rules") or []:
                    for path in (rule.get("http") or {}).get("paths") or []:
                        backend = path["backend"]["service"]
                        ingresses.append(
                            IngressSpec(
                                name,
                                backend["name"],
                                backend["port"].get("name") or backend["port"].get("number"),
                                path.get("path", "/"),
                                dict(obj["metadata"].get("annotations") or {}),
                            )
                        )
            elif kind in ("ConfigMap", "Secret", "PersistentVolumeClaim"):
                continue  # resolved into the containers above
            elif kind in NOT_RUN_KINDS:
                skipped.append(f"{kind}/{name}: enforced by a cluster, not by containers")
            else:
                raise Unsupported(f"{kind}/{name}: this kind is not translated (add it to manifests.py)")
        for service in services:
            targets = [p for p in pods if service.selects(p)]
            for port, target in service.ports:
                for p in targets:
                    number = target if isinstance(target, int) else p.containers[0].ports.get(str(target))
                    if number != port:
                        # A network alias cannot remap ports the way kube-proxy does.
                        raise Unsupported(
                            f"Service/{service.name}: port {port} -> {target} ({number}) differs"
                        )
        return Plan(self.namespace, pods, jobs, services, ingresses, skipped)
