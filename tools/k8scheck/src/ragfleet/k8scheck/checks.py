"""All static checks of the Kubernetes artefacts and images, as one run with one report."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ragfleet.k8scheck import checkov, golden, render
from ragfleet.k8scheck.policy import check_policy
from ragfleet.k8scheck.toolchain import REPO_ROOT, Toolchain, ToolchainError
from ragfleet.k8scheck.validate import CRD_GROUPS, validate_core, validate_custom

# One Dockerfile builds every image (ARG SERVICE).
DOCKERFILES = [REPO_ROOT / "Dockerfile"]
HADOLINT_CONFIG = REPO_ROOT / ".hadolint.yaml"


@dataclass
class Report:
    """Each check's name, in the order run, with its problems (none = passed)."""

    results: dict[str, list[str]] = field(default_factory=dict)

    def run(self, name: str, check: Callable[[], list[str]]) -> None:
        try:
            self.results[name] = check()
        except (render.RenderError, ValueError) as error:
            self.results[name] = [str(error)]

    @property
    def ok(self) -> bool:
        return not any(self.results.values())

    def text(self) -> str:
        lines = []
        for name, problems in self.results.items():
            lines.append(f"{'FAIL' if problems else 'ok  '} {name}")
            lines += [f"       {p}" for p in problems]
        failed = sum(1 for p in self.results.values() if p)
        lines.append(f"{len(self.results) - failed} passed, {failed} failed")
        return "\n".join(lines)


def _variants() -> list[Path | None]:
    return [None, *render.ci_values_files()]


def _validate(tools: Toolchain, objects: list[dict]) -> list[str]:
    problems = []
    for version in render.KUBE_VERSIONS:
        problems += validate_core(objects, version)
    return problems + validate_custom(objects, tools) + check_policy(objects)


def _crd_kinds(objects: list[dict]) -> list[str]:
    return sorted(
        {f"{o['apiVersion']}/{o['kind']}" for o in objects if o.get("apiVersion", "").startswith(CRD_GROUPS)}
    )


def _check_rendering(tools: Toolchain, values: Path | None) -> list[str]:
    objects = render.parse_objects(render.helm_template(tools.helm, values))
    problems = _validate(tools, objects)
    # What `helm install` meets on a cluster with only the core APIs: no kind it does not know,
    # unless the values force one on (`true`).
    if not _forces_an_optional_api(values) and (kinds := _crd_kinds(objects)):
        problems.append(f"renders objects of optional APIs on a core-only cluster: {', '.join(kinds)}")
    return problems


def _forces_an_optional_api(values: Path | None) -> bool:
    """Whether a values file switches an optional API to `true` (render it whatever the cluster has)."""
    if values is None:
        return False
    tree = yaml.safe_load(values.read_text()) or {}

    def at(*path: str) -> Any:
        node: Any = tree
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    switches = [
        at("vpa", "enabled"),
        at("metrics", "serviceMonitor", "enabled"),
        at("metrics", "prometheusRule", "enabled"),
        at("httpRoute", "enabled"),
        *(at("components", name, "autoscaling", "keda", "enabled") for name in (at("components") or {})),
    ]
    return any(switch is True for switch in switches)


def _check_every_api(tools: Toolchain, values: Path | None, *, expect_crds: bool) -> list[str]:
    """The same values on a cluster that serves every optional API."""
    text = render.helm_template(tools.helm, values, api_versions=render.ALL_OPTIONAL_APIS)
    objects = render.parse_objects(text)
    problems = _validate(tools, objects)
    kinds = _crd_kinds(objects)
    if expect_crds and not kinds:
        problems.append("no object of an optional API rendered although the cluster serves them all")
    if not expect_crds and kinds:
        problems.append(f"optional APIs switched off, yet rendered: {', '.join(kinds)}")
    return problems


def _check_golden(tools: Toolchain, entry: golden.Golden) -> list[str]:
    objects = entry.render(tools.helm)
    return _validate(tools, objects) + golden.channel_problems(entry, objects) + golden.diff(entry, objects)


def _check_overlay(tools: Toolchain, overlay: Path) -> list[str]:
    objects = render.parse_objects(render.kustomize(tools.kubectl, overlay))
    problems = []
    for version in render.KUBE_VERSIONS:
        problems += validate_core(objects, version)
    return problems + validate_custom(objects, tools) + check_policy(objects)


def check_drift(tools: Toolchain, manifest: Path = render.RENDERED_MANIFEST) -> list[str]:
    fresh = render.render_default_manifest(tools.helm)
    committed = manifest.read_text() if manifest.is_file() else ""
    if fresh == committed:
        return []
    return [
        f"{manifest} differs from a fresh render of the chart: "
        "run `uv run python -m ragfleet.k8scheck render` and commit the result"
    ]


def checkov_check(tools: Toolchain) -> list[str]:
    renderings = {"defaults": render.helm_template(tools.helm)}
    renderings["defaults-every-api"] = render.helm_template(tools.helm, api_versions=render.ALL_OPTIONAL_APIS)
    for values in render.ci_values_files():
        renderings[values.stem] = render.helm_template(
            tools.helm, values, api_versions=render.ALL_OPTIONAL_APIS
        )
    try:
        findings = checkov.run_checkov(renderings)
    except ToolchainError as error:
        return [str(error)]
    return checkov.problems(findings, checkov.load_exceptions())


def _check_dockerfile(tools: Toolchain, dockerfile: Path) -> list[str]:
    command = [str(tools.hadolint), "--no-color"]
    if HADOLINT_CONFIG.is_file():
        command += ["--config", str(HADOLINT_CONFIG)]
    result = subprocess.run([*command, str(dockerfile)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def run_all(tools: Toolchain, *, with_checkov: bool = True) -> Report:
    report = Report()
    for values in _variants():
        label = values.name if values else "defaults"
        report.run(f"helm lint --strict ({label})", functools.partial(_lint, tools, values))
        report.run(
            f"render + validate + policy ({label})", functools.partial(_check_rendering, tools, values)
        )
    report.run(
        "render + validate + policy (defaults, every optional API served)",
        functools.partial(_check_every_api, tools, None, expect_crds=True),
    )
    off = render.CHART_DIR / "ci" / "optional-apis-off-values.yaml"
    report.run(
        f"render + validate + policy ({off.name}, every optional API served)",
        functools.partial(_check_every_api, tools, off, expect_crds=False),
    )
    for entry in golden.GOLDENS:
        report.run(f"golden render {entry.name}", functools.partial(_check_golden, tools, entry))
    if with_checkov:
        name = "checkov (every rendering, waivers in checkov-exceptions.yaml)"
        report.run(name, functools.partial(checkov_check, tools))
    for overlay in render.OVERLAYS:
        name = f"kustomize + validate + policy (kubernetes/overlays/{overlay.name})"
        report.run(name, functools.partial(_check_overlay, tools, overlay))
    report.run("drift: kubernetes/ equals a fresh render", functools.partial(check_drift, tools))
    for dockerfile in DOCKERFILES:
        name = f"hadolint {dockerfile.relative_to(REPO_ROOT)}"
        report.run(name, functools.partial(_check_dockerfile, tools, dockerfile))
    return report


def _lint(tools: Toolchain, values: Path | None) -> list[str]:
    render.helm_lint(tools.helm, values)
    return []
