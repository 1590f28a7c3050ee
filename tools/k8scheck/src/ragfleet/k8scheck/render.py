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
    helm: Path, values: Path | None = None, *, kube_version: str = KUBE_VERSIONS[0], skip_tests: bool = False
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
    return _run(command, f"helm template {values.name if values else '(defaults)'}")


def render_default_manifest(helm: Path) -> str:
    """The text of kubernetes/base/ragfleet.yaml: a default install, without the helm test pod."""
    header = (
        "# Generated from charts/ragfleet with default values: do not edit by hand.\n"
        "# Regenerate with: uv run python -m ragfleet.k8scheck render\n"
    )
    return header + helm_template(helm, skip_tests=True)


def kustomize(kubectl: Path, overlay: Path) -> str:
    return _run([str(kubectl), "kustomize", str(overlay)], f"kubectl kustomize {overlay.name}")
