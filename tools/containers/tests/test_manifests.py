"""The translator reads what it is given and refuses what it cannot honour."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ragfleet.containers.manifests import Translator, Unsupported, expand, podman_size


def objects(target_port: Any = "http", extra_env: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    labels = {"app": "api"}
    return [
        {
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
        {"kind": "ConfigMap", "metadata": {"name": "conf"}, "data": {"LEVEL": "INFO"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsUser": 10001, "runAsNonRoot": True},
                        "containers": [
                            {
                                "name": "api",
                                "image": "ragfleet/api:dev",
                                "command": ["python", "-m", "api", "--name=$(POD)"],
                                "ports": [{"name": "http", "containerPort": 8000}],
                                "envFrom": [{"configMapRef": {"name": "conf"}}],
                                "env": [
                                    {
                                        "name": "POD",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    },
                                    {
                                        "name": "TOKEN",
                                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
                                    },
                                    *(extra_env or []),
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/readyz", "port": "http"},
                                    "periodSeconds": 5,
                                },
                                "securityContext": {
                                    "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "resources": {"limits": {"memory": "512Mi"}},
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    },
                }
            },
        },
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2},
        },
        {
            "kind": "Service",
            "metadata": {"name": "api"},
            "spec": {"selector": labels, "ports": [{"port": 8000, "targetPort": target_port}]},
        },
    ]


def test_a_deployment_becomes_its_pods_with_everything_resolved() -> None:
    plan = Translator(objects(), "ns").plan()
    assert [p.name for p in plan.pods] == ["api-1", "api-2"]  # the HPA's minimum
    c = plan.pods[0].containers[0]
    assert c.env == {"LEVEL": "INFO", "POD": "api-1", "TOKEN": "s3cret"}
    assert c.command == ["python", "-m", "api", "--name=api-1"]
    assert (c.user, c.run_as_non_root, c.read_only_root, c.no_new_privileges, c.cap_drop) == (
        10001,
        True,
        True,
        True,
        ["ALL"],
    )
    assert c.probes["readiness"].port == 8000 and c.probes["readiness"].period_s == 5
    assert plan.pods[0].volumes["tmp"].kind == "tmpfs" and c.memory_limit == "536870912b"
    assert plan.services[0].selects(plan.pods[1])
    assert any(line.startswith("HorizontalPodAutoscaler/api") for line in plan.skipped)


def test_a_port_a_network_alias_cannot_remap_is_refused() -> None:
    with pytest.raises(Unsupported, match="differs"):
        Translator(objects(target_port=9000), "ns").plan()


def test_a_secret_the_chart_does_not_render_is_refused_unless_optional() -> None:
    missing = {"name": "X", "valueFrom": {"secretKeyRef": {"name": "elsewhere", "key": "k"}}}
    with pytest.raises(Unsupported, match="elsewhere"):
        Translator(objects(extra_env=[missing]), "ns").plan()
    optional = {
        "name": "X",
        "valueFrom": {"secretKeyRef": {"name": "elsewhere", "key": "k", "optional": True}},
    }
    assert "X" not in Translator(objects(extra_env=[optional]), "ns").plan().pods[0].containers[0].env


def test_kubernetes_expansion_and_sizes() -> None:
    assert expand("$(A)-$$(A)-$(B)", {"A": "1"}) == "1-$(A)-$(B)"
    assert podman_size("1Gi") == "1073741824b" and podman_size("500M") == "500000000b"
