"""The project's policy for every workload the chart renders.

Each long-running workload (Deployment, StatefulSet, DaemonSet) must have, for every container:
requests and a memory limit, startup/liveness/readiness probes, and the restricted security
context (non-root, read-only root filesystem, no privilege escalation, all capabilities dropped,
seccomp RuntimeDefault); its ServiceAccount token must not be mounted; a PodDisruptionBudget and
a NetworkPolicy must select its pods.

Run-to-completion pods (Job, CronJob: the benchmark; bare Pods: the ``helm test`` hook) get the
same container rules except the probes, need no PodDisruptionBudget, and may mount their token
only when a RoleBinding in the rendering grants their ServiceAccount something (they use the API
by design). Helm hooks need no NetworkPolicy of their own.

Every pod, of any kind, must also meet the rest of the restricted Pod Security Standard: no host
namespaces (network, PID, IPC), no hostPath or other node-bound volume types, no host ports, no
added capability but NET_BIND_SERVICE, no Unconfined seccomp or AppArmor profile at any level,
the default /proc mount, no Windows host process, only the namespaced "safe" sysctls.

CPU limits are deliberately not required: requests decide scheduling and fair sharing, while a
CPU limit only adds CFS throttling to latency-bound services; memory limits are required.
"""

from __future__ import annotations

from typing import Any

from ragfleet.k8scheck.validate import describe

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
BATCH_KINDS = ("Job", "CronJob", "Pod")
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# The volume types the restricted standard allows; anything else (hostPath first) binds the pod to
# the node's filesystem or to storage set up outside the cluster's control.
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Namespaced sysctls the baseline standard allows (Kubernetes' "safe" set).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
    }
)


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """matchLabels semantics (the chart uses no matchExpressions); an empty selector selects all."""
    if selector is None:
        return False
    if selector.get("matchExpressions"):
        raise ValueError("the policy check understands matchLabels only")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _container_problems(
    name: str, container: dict[str, Any], pod_security: dict[str, Any], *, probes: bool = True
) -> list[str]:
    problems = []
    where = f"{name} container {container.get('name')}"
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not {"cpu", "memory"} <= requests.keys():
        problems.append(f"{where}: needs cpu and memory requests")
    if "memory" not in limits:
        problems.append(f"{where}: needs a memory limit")
    for probe in PROBES if probes else ():
        if probe not in container:
            problems.append(f"{where}: needs a {probe}")
    security = container.get("securityContext") or {}

    def setting(key: str) -> Any:
        return security.get(key, pod_security.get(key))

    if setting("runAsNonRoot") is not True:
        problems.append(f"{where}: needs runAsNonRoot: true")
    if setting("runAsUser") == 0:
        problems.append(f"{where}: must not run as uid 0")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: needs readOnlyRootFilesystem: true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: needs allowPrivilegeEscalation: false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: needs capabilities.drop: [ALL]")
    if security.get("privileged"):
        problems.append(f"{where}: must not be privileged")
    if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: needs seccompProfile RuntimeDefault")
    added = set((security.get("capabilities") or {}).get("add") or []) - ALLOWED_ADDED_CAPABILITIES
    if added:
        problems.append(f"{where}: must not add capabilities {sorted(added)}")
    if security.get("procMount", "Default") != "Default":
        problems.append(f"{where}: must use the Default procMount")
    if (setting("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where}: must not run with an Unconfined AppArmor profile")
    if (setting("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: must not be a Windows host process")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        problems.append(f"{where}: must not use a hostPort")
    return problems


def _pod_problems(name: str, spec: dict[str, Any]) -> list[str]:
    """The restricted standard's pod-level rules (the container-level ones are above)."""
    problems = []
    for namespace in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(namespace):
            problems.append(f"{name}: must not use {namespace}")
    for volume in spec.get("volumes") or []:
        types = set(volume) - {"name"} - ALLOWED_VOLUME_TYPES
        if types:
            problems.append(f"{name}: volume {volume.get('name')} uses a forbidden type {sorted(types)}")
    security = spec.get("securityContext") or {}
    if (security.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{name}: the pod's seccompProfile must not be Unconfined")
    unsafe = sorted({s.get("name") for s in security.get("sysctls") or []} - SAFE_SYSCTLS)
    if unsafe:
        problems.append(f"{name}: must not set unsafe sysctls {unsafe}")
    return problems


def check_policy(objects: list[dict[str, Any]], *, require_network_policy: bool = True) -> list[str]:
    """Every policy violation in one rendering, as readable lines (empty when all is well)."""
    problems: list[str] = []
    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    netpols = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    accounts = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ServiceAccount"}
    bound_accounts = {
        subject.get("name")
        for binding in objects
        if binding.get("kind") in ("RoleBinding", "ClusterRoleBinding")
        for subject in binding.get("subjects") or []
        if subject.get("kind") == "ServiceAccount"
    }
    workloads = [o for o in objects if o.get("kind") in (*WORKLOAD_KINDS, *BATCH_KINDS)]
    if not any(o.get("kind") in WORKLOAD_KINDS for o in workloads):
        problems.append("no workload rendered at all")
    for workload in workloads:
        name = describe(workload)
        batch = workload["kind"] in BATCH_KINDS
        pod = _pod_template(workload)
        labels = pod["metadata"].get("labels") or {}
        spec = pod["spec"]
        pod_security = spec.get("securityContext") or {}
        problems += _pod_problems(name, spec)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            problems += _container_problems(name, container, pod_security, probes=not batch)
        for container in spec.get("ephemeralContainers", []):
            problems += _container_problems(name, container, pod_security, probes=False)
        account_name = spec.get("serviceAccountName", "default")
        if spec.get("automountServiceAccountToken") is not False:
            account = accounts.get(account_name)
            token_off = account is not None and account.get("automountServiceAccountToken") is False
            uses_the_api = batch and account_name in bound_accounts
            if not token_off and not (uses_the_api and spec.get("automountServiceAccountToken") is True):
                problems.append(f"{name}: its ServiceAccount token must not be mounted")
        if not batch and not any(_selects(p["spec"].get("selector"), labels) for p in pdbs):
            problems.append(f"{name}: no PodDisruptionBudget selects its pods")
        # A Helm hook (the ``helm test`` pod) lives for one command: it must be as locked down
        # as any pod, but it is not a workload to isolate.
        hook = "helm.sh/hook" in (workload["metadata"].get("annotations") or {})
        if (
            require_network_policy
            and not hook
            and not any(_selects(n["spec"].get("podSelector"), labels) for n in netpols)
        ):
            problems.append(f"{name}: no NetworkPolicy selects its pods")
    return problems


def _pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "Pod":
        return workload
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template
