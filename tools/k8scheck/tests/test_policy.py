from __future__ import annotations

import copy
from typing import Any

import pytest

from ragfleet.k8scheck.policy import check_policy

LABELS = {"app.kubernetes.io/name": "ragfleet", "app.kubernetes.io/component": "gateway"}
PROBE = {"httpGet": {"path": "/healthz", "port": "http"}}


def good_objects() -> list[dict[str, Any]]:
    container = {
        "name": "gateway",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "startupProbe": PROBE,
        "livenessProbe": PROBE,
        "readinessProbe": PROBE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "gateway"},
        "spec": {
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            }
        },
    }
    pdb = {
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "gateway"},
        "spec": {"selector": {"matchLabels": LABELS}},
    }
    netpol = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "gateway"},
        "spec": {"podSelector": {"matchLabels": LABELS}},
    }
    return [deployment, pdb, netpol]


def test_a_compliant_workload_passes() -> None:
    assert check_policy(good_objects()) == []


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = objects[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def _pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects[0]["spec"]["template"]["spec"]
    return spec


def _privileged_debug_container(objects: list[dict[str, Any]]) -> None:
    """An ephemeral container (kubectl debug) is held to the same rules as the others."""
    debug = copy.deepcopy(_container(objects))
    debug.update(name="debug", securityContext={**debug["securityContext"], "privileged": True})
    _pod_spec(objects)["ephemeralContainers"] = [debug]


def _pod_seccomp_unconfined(objects: list[dict[str, Any]]) -> None:
    """Unconfined at the pod level is refused even when every container overrides it."""
    _container(objects)["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    _pod_spec(objects)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda o: _container(o).pop("readinessProbe"), "needs a readinessProbe"),
        (lambda o: _container(o)["resources"].pop("limits"), "needs a memory limit"),
        (lambda o: _container(o)["securityContext"].pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
        (
            lambda o: _container(o)["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            lambda o: _container(o)["securityContext"].update(capabilities={"drop": ["NET_RAW"]}),
            "drop: [ALL]",
        ),
        (
            lambda o: o[0]["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
            "RuntimeDefault",
        ),
        (lambda o: o[0]["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda o: o[0]["spec"]["template"]["spec"].pop("automountServiceAccountToken"), "token"),
        (lambda o: o.pop(1), "no PodDisruptionBudget"),
        (lambda o: o.pop(2), "no NetworkPolicy"),
        (lambda o: _container(o).pop("startupProbe"), "needs a startupProbe"),
        (lambda o: _container(o).pop("livenessProbe"), "needs a livenessProbe"),
        (lambda o: _container(o)["resources"]["requests"].pop("cpu"), "needs cpu and memory requests"),
        (lambda o: _container(o)["securityContext"].update(privileged=True), "must not be privileged"),
        (lambda o: _container(o)["securityContext"].update(runAsUser=0), "uid 0"),
        (lambda o: _container(o)["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (
            lambda o: _container(o)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "RuntimeDefault",
        ),
        (_pod_seccomp_unconfined, "pod's seccompProfile must not be Unconfined"),
        (
            lambda o: _container(o)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
            "must not add capabilities ['SYS_ADMIN']",
        ),
        (lambda o: _container(o)["securityContext"].update(procMount="Unmasked"), "procMount"),
        (
            lambda o: _container(o)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
            "AppArmor",
        ),
        (
            lambda o: _container(o)["securityContext"].update(windowsOptions={"hostProcess": True}),
            "Windows host process",
        ),
        (lambda o: _container(o).update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort"),
        (lambda o: _pod_spec(o).update(hostNetwork=True), "must not use hostNetwork"),
        (lambda o: _pod_spec(o).update(hostPID=True), "must not use hostPID"),
        (lambda o: _pod_spec(o).update(hostIPC=True), "must not use hostIPC"),
        (
            lambda o: _pod_spec(o).update(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
            "volume root uses a forbidden type ['hostPath']",
        ),
        (
            lambda o: _pod_spec(o)["securityContext"].update(
                sysctls=[{"name": "kernel.msgmax", "value": "1"}]
            ),
            "unsafe sysctls ['kernel.msgmax']",
        ),
        (_privileged_debug_container, "container debug: must not be privileged"),
    ],
)
def test_each_missing_safeguard_is_named(breakage: Any, expected: str) -> None:
    objects = copy.deepcopy(good_objects())
    breakage(objects)
    problems = check_policy(objects)
    assert len(problems) == 1
    assert expected in problems[0]


def test_a_pdb_for_other_pods_does_not_count() -> None:
    objects = good_objects()
    objects[1]["spec"]["selector"]["matchLabels"] = {**LABELS, "app.kubernetes.io/component": "retrieval"}
    assert check_policy(objects) == ["Deployment/gateway: no PodDisruptionBudget selects its pods"]


def benchmark_job(*, bound: bool = True) -> list[dict[str, Any]]:
    """A run-to-completion pod that uses the API: no probes, no PDB, its token mounted."""
    objects = good_objects()
    container = _container(objects)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        container.pop(probe)
    pod = objects[0]["spec"]["template"]
    pod["spec"].update(automountServiceAccountToken=True, serviceAccountName="benchmark")
    job = {
        "kind": "CronJob",
        "metadata": {"name": "benchmark"},
        "spec": {"jobTemplate": {"spec": {"template": pod}}},
    }
    binding = {
        "kind": "RoleBinding",
        "metadata": {"name": "benchmark"},
        "subjects": [{"kind": "ServiceAccount", "name": "benchmark" if bound else "other"}],
    }
    # The Deployment stays (a rendering without any long-running workload is refused).
    return [*good_objects(), job, binding, objects[2]]


def test_a_batch_pod_needs_no_probes_nor_pdb_and_may_use_the_api_it_is_granted() -> None:
    assert check_policy(benchmark_job()) == []


def test_a_batch_pod_mounting_a_token_nothing_grants_is_refused() -> None:
    assert check_policy(benchmark_job(bound=False)) == [
        "CronJob/benchmark: its ServiceAccount token must not be mounted"
    ]


def test_a_batch_pod_still_needs_resources_and_the_restricted_context() -> None:
    objects = benchmark_job()
    container = objects[3]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {}
    container["securityContext"]["allowPrivilegeEscalation"] = True
    problems = check_policy(objects)
    assert len(problems) == 3
    assert all(p.startswith("CronJob/benchmark") for p in problems)


def helm_test_pod(*, hook: bool = True) -> dict[str, Any]:
    """A bare Pod like the chart's ``helm test`` hook: locked down, no probes."""
    template = copy.deepcopy(good_objects()[0]["spec"]["template"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        template["spec"]["containers"][0].pop(probe)
    metadata = {
        "name": "test",
        "labels": {**LABELS, "app.kubernetes.io/component": "test"},
        "annotations": {"helm.sh/hook": "test"} if hook else {},
    }
    return {"kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def test_a_helm_test_pod_is_held_to_the_restricted_standard_but_needs_no_network_policy() -> None:
    pod = helm_test_pod()
    assert check_policy([*good_objects(), pod]) == []
    pod["spec"]["hostNetwork"] = True
    assert check_policy([*good_objects(), pod]) == ["Pod/test: must not use hostNetwork"]


def test_a_bare_pod_that_is_not_a_hook_needs_a_network_policy() -> None:
    assert check_policy([*good_objects(), helm_test_pod(hook=False)]) == [
        "Pod/test: no NetworkPolicy selects its pods"
    ]
