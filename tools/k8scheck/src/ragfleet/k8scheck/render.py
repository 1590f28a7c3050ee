"""Rendering the chart (and the kustomize overlays) the way CI and ``kubernetes/`` see them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from ragfleet.k8scheck.toolchain import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "ragfleet"
MANIFESTS_DIR = REPO_ROOT / "kubernetes"
RENDERED_MANIFEST = MANIFESTS_DIR / "base" / "ragfleet.yaml"
OVERLAYS = sorted(p for p in (MANIFESTS_DIR / "overlays").glob("*") if p.is_dir())

RELEASE = "ragfleet"
NAMESPACE = "ragfleet"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.30.0", "1.34.0")

# The optional APIs the chart's `auto` switches look for (.Capabilities.APIVersions.Has), as
# `helm template --api-versions` takes them. `helm template` alone serves none of them: that is a
# cluster with only the core APIs.
OPTIONAL_APIS = {
    "vpa": ("autoscaling.k8s.io/v1/VerticalPodAutoscaler",),
    "prometheus-operator": (
        "monitoring.coreos.com/v1/ServiceMonitor",
        "monitoring.coreos.com/v1/PrometheusRule",
    ),
    "keda": ("keda.sh/v1alpha1/ScaledObject", "keda.sh/v1alpha1/TriggerAuthentication"),
    # The Gateway API standard channel; the experimental one adds the x-k8s.io group.
    "gateway-api": ("gateway.networking.k8s.io/v1/HTTPRoute", "gateway.networking.k8s.io/v1/Gateway"),
    "gateway-api-experimental": ("gateway.networking.x-k8s.io/v1alpha1",),
}
ALL_OPTIONAL_APIS = tuple(api for apis in OPTIONAL_APIS.values() for api in apis)
STANDARD_CHANNEL_APIS = tuple(
    api for name, apis in OPTIONAL_APIS.items() if name != "gateway-api-experimental" for api in apis
)
# `helm template` cannot read the generated credentials back from a cluster, so it would draw new
# random ones on every render: the committed manifests and the golden renders name a Secret the
# user creates instead (kubernetes/README.md).
FIXED_CREDENTIALS = ("--set", "credentials.existingSecret=ragfleet-credentials")


class RenderError(RuntimeError):
    """helm or kubectl refused the chart; the message carries their output."""


def ci_values_files() -> list[Path]:
    """Every CI variant, plus the values `make deploy` and skaffold use on kind."""
    return [*sorted((CHART_DIR / "ci").glob("*-values.yaml")), REPO_ROOT / "kind" / "values-kind.yaml"]


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise RenderError(f"{what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def parse_objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm_lint(helm: Path, values: Path | None = None) -> None:
    command = [str(helm), "lint", "--strict", str(CHART_DIR)]
    if values:
        command += ["--values", str(values)]
    _run(command, f"helm lint --strict {values.name if values else '(defaults)'}")


def helm_template(
    helm: Path,
    values: Path | None = None,
    *,
    kube_version: str = KUBE_VERSIONS[0],
    skip_tests: bool = False,
    api_versions: tuple[str, ...] = (),
    extra_args: tuple[str, ...] = (),
) -> str:
    command = [
        str(helm),
        "template",
        RELEASE,
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        kube_version,
    ]
    if values:
        command += ["--values", str(values)]
    if skip_tests:
        command.append("--skip-tests")
    for api in api_versions:
        command += ["--api-versions", api]
    command += extra_args
    return _run(command, f"helm template {values.name if values else '(defaults)'}")


def render_default_manifest(helm: Path) -> str:
    """The text of kubernetes/base/ragfleet.yaml: a default install on a core-only cluster, without
    the helm test pod, its credentials in a Secret named ragfleet-credentials."""
    header = (
        "# Generated from charts/ragfleet with default values (and credentials.existingSecret=\n"
        "# ragfleet-credentials): do not edit by hand. Regenerate with: make render-manifests\n"
    )
    return header + helm_template(helm, skip_tests=True, extra_args=FIXED_CREDENTIALS)


def kustomize(kubectl: Path, overlay: Path) -> str:
    return _run([str(kubectl), "kustomize", str(overlay)], f"kubectl kustomize {overlay.name}")
