"""Schema validation of rendered objects: core kinds with kubernetes-validate's strict schemas,
custom resources with the CRD validators of the kubernetes-models npm packages."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from typing import Any

import jsonschema
import referencing
from kubernetes_validate import utils as kv

from ragfleet.k8scheck.toolchain import Toolchain

CRD_GROUPS = ("autoscaling.k8s.io/", "monitoring.coreos.com/", "gateway.networking.k8s.io/", "keda.sh/")


def describe(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


@functools.cache
def _schema_dir(kube_version: str) -> str:
    """kubernetes-validate's strict schema folder for the newest version not newer than asked."""
    wanted = tuple(int(p) for p in kv.major_minor(kube_version).split("."))
    known = [v for v in kv.all_versions() if tuple(int(p) for p in kv.major_minor(v).split(".")) <= wanted]
    if not known:
        raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {kube_version}")
    return f"kubernetes-json-schema/v{known[-1]}-local-strict"


@functools.cache
def _validator(kube_version: str, api_version: str, kind: str) -> jsonschema.protocols.Validator:
    # The same file layout kubernetes_validate.validate() reads, with the parsed schemas cached:
    # its own validate() re-reads the 1.5 MB definitions file for every object.
    folder = _schema_dir(kube_version)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", kube_version)
    definitions = kv.schema_contents(f"{folder}/_definitions.json", kube_version)
    # Both files carry an $id (https://kubernetes.io/api/...), which is how their $refs resolve.
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (resource.id() or "", resource)
        for resource in (
            referencing.Resource.from_contents(schema),
            referencing.Resource.from_contents(definitions),
        )
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_core(objects: list[dict[str, Any]], kube_version: str) -> list[str]:
    """Problems of the built-in kinds, against the strict schemas (unknown fields are errors)."""
    problems = []
    for obj in objects:
        if obj.get("apiVersion", "").startswith(CRD_GROUPS):
            continue
        try:
            validator = _validator(kube_version, obj["apiVersion"], obj["kind"])
        except (FileNotFoundError, kv.SchemaNotFoundError, KeyError):
            problems.append(
                f"{describe(obj)}: no Kubernetes {kube_version} schema for {obj.get('apiVersion')}"
            )
            continue
        for error in validator.iter_errors(obj):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{describe(obj)} (k8s {kube_version}) at /{path}: {error.message[:300]}")
    return problems


def validate_custom(objects: list[dict[str, Any]], tools: Toolchain) -> list[str]:
    """Problems of the custom resources, against their CRD schemas (unknown fields are errors)."""
    custom = [obj for obj in objects if obj.get("apiVersion", "").startswith(CRD_GROUPS)]
    if not custom:
        return []
    result = subprocess.run(
        [str(tools.node), str(tools.crd_validator_script), str(tools.crd_node_modules)],
        input=json.dumps(custom),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return [f"the CRD validator failed: {result.stderr[-2000:]}"]
    return [
        f"{describe(custom[p['index']])} at {p['path'] or '/'}: {p['message']}"
        for p in json.loads(result.stdout)
    ]
