"""Golden renders: what each optional API adds to a release, committed and diffed.

kubernetes/base/ragfleet.yaml is the golden render of the defaults on a core-only cluster (the
drift check). Each rendering here is the chart on a cluster that serves one optional API (or with
a variant's values), reduced to the objects that API is about: a change to any of them shows up
as a diff in review, and a render that no longer matches fails ``make k8s-check``.
Regenerate with ``make render-manifests`` (``python -m ragfleet.k8scheck render``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragfleet.k8scheck import render
from ragfleet.k8scheck.toolchain import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tools" / "k8scheck" / "golden"
# Route fields of the Gateway API experimental channel: a standard-channel API server drops them
# without a word, so a rendering for that channel must not carry them. From the Gateway API docs
# (GEP-1619 session persistence, GEP-1731 retries: experimental up to v1.6); the CRD schema the
# validator has is the experimental one, which accepts them.
EXPERIMENTAL_ROUTE_RULE_FIELDS = frozenset({"sessionPersistence", "retry"})


@dataclass(frozen=True)
class Golden:
    name: str
    # The objects kept: (kind, ...) of the API the rendering is about.
    kinds: tuple[str, ...]
    api_versions: tuple[str, ...]
    values: Path | None = None
    sets: tuple[str, ...] = ()
    # A rendering for a standard-channel Gateway API: no experimental route fields allowed.
    standard_channel: bool = False

    @property
    def path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.yaml"

    def render(self, helm: Path) -> list[dict[str, Any]]:
        extra: tuple[str, ...] = render.FIXED_CREDENTIALS
        for assignment in self.sets:
            extra += ("--set", assignment)
        text = render.helm_template(helm, self.values, api_versions=self.api_versions, extra_args=extra)
        return render.parse_objects(text)

    def text(self, objects: list[dict[str, Any]]) -> str:
        kept = sorted(
            (o for o in objects if o["kind"] in self.kinds),
            key=lambda o: (o["kind"], o["metadata"]["name"]),
        )
        header = (
            f"# Golden render `{self.name}`: the {', '.join(self.kinds)} objects of charts/ragfleet\n"
            f"# with --api-versions {' '.join(self.api_versions) or '(none)'}"
            f"{' and ' + self.values.name if self.values else ''}"
            f"{' --set ' + ' --set '.join(self.sets) if self.sets else ''}.\n"
            "# Generated: do not edit. Regenerate with: make render-manifests\n"
        )
        return header + yaml.safe_dump_all(kept, sort_keys=True, width=120)


GATEWAY_API_VALUES = render.CHART_DIR / "ci" / "gateway-api-values.yaml"
GOLDENS = (
    Golden("vpa", ("VerticalPodAutoscaler",), render.OPTIONAL_APIS["vpa"]),
    Golden(
        "prometheus-operator",
        ("ServiceMonitor", "PrometheusRule"),
        render.OPTIONAL_APIS["prometheus-operator"],
    ),
    # KEDA on `auto` for the two components with a metric of their own; the rest keep CPU HPAs.
    Golden(
        "keda",
        ("ScaledObject", "TriggerAuthentication", "HorizontalPodAutoscaler"),
        render.OPTIONAL_APIS["keda"],
        sets=(
            "components.gateway.autoscaling.keda.enabled=auto",
            "components.ingestion-worker.autoscaling.keda.enabled=auto",
        ),
    ),
    Golden(
        "gateway-api-standard",
        ("HTTPRoute",),
        render.OPTIONAL_APIS["gateway-api"],
        values=GATEWAY_API_VALUES,
        standard_channel=True,
    ),
    Golden(
        "gateway-api-experimental",
        ("HTTPRoute",),
        render.OPTIONAL_APIS["gateway-api"] + render.OPTIONAL_APIS["gateway-api-experimental"],
        values=GATEWAY_API_VALUES,
    ),
)


def write_all(helm: Path) -> list[Path]:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for golden in GOLDENS:
        golden.path.write_text(golden.text(golden.render(helm)))
    return [golden.path for golden in GOLDENS]


def diff(golden: Golden, objects: list[dict[str, Any]]) -> list[str]:
    """Problems: the committed file differs from this rendering (the first lines of the diff)."""
    fresh = golden.text(objects)
    committed = golden.path.read_text() if golden.path.is_file() else ""
    if fresh == committed:
        return []
    lines = list(
        difflib.unified_diff(
            committed.splitlines(), fresh.splitlines(), "committed", "rendered", lineterm="", n=1
        )
    )
    return [
        f"{golden.path.relative_to(REPO_ROOT)} differs from a fresh render "
        "(run `make render-manifests` and review the diff):",
        *lines[:40],
    ]


def channel_problems(golden: Golden, objects: list[dict[str, Any]]) -> list[str]:
    if not golden.standard_channel:
        return []
    return [
        f"HTTPRoute/{o['metadata']['name']} rule {i}: {field} is experimental-channel only "
        "(a standard-channel API server drops it)"
        for o in objects
        if o["kind"] == "HTTPRoute"
        for i, rule in enumerate(o["spec"].get("rules", []))
        for field in sorted(EXPERIMENTAL_ROUTE_RULE_FIELDS & rule.keys())
    ]
