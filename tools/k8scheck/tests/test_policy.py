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
