"""The whole static check against the real chart, plus proofs that each check can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragfleet.k8scheck import render
from ragfleet.k8scheck.checks import check_drift, run_all
from ragfleet.k8scheck.toolchain import Toolchain
from ragfleet.k8scheck.validate import validate_core, validate_custom


def test_every_static_check_passes(tools: Toolchain) -> None:
    report = run_all(tools)
    assert report.ok, report.text()
    # Lint and render for the defaults and every variant, the overlay, the drift check, hadolint.
    assert len(report.results) >= 2 * (1 + len(render.ci_values_files())) + 1 + 1 + 1
    assert "hadolint Dockerfile" in report.results


def test_the_schema_refuses_unknown_values(tools: Toolchain, tmp_path: Path) -> None:
    values = tmp_path / "typo-values.yaml"
    values.write_text("components:\n  gateway:\n    replica: 3\n")
    with pytest.raises(render.RenderError, match="replica"):
        render.helm_template(tools.helm, values)


def test_a_component_can_be_turned_off_even_though_default_enables_it(
    tools: Toolchain, tmp_path: Path
) -> None:
    values = tmp_path / "off-values.yaml"
    values.write_text("components:\n  llm-proxy:\n    enabled: false\n")
    objects = render.parse_objects(render.helm_template(tools.helm, values))
    components = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in objects}
    assert "llm-proxy" not in components
    assert {"gateway", "retrieval", "ingestion-api", "ingestion-worker"} <= components


def test_the_embedded_index_on_a_single_writer_volume_runs_one_pod(tools: Toolchain) -> None:
    objects = render.parse_objects(render.helm_template(tools.helm))
    retrieval = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "ragfleet-retrieval"
    )
    assert retrieval["spec"]["replicas"] == 1
    assert retrieval["spec"]["strategy"] == {"type": "Recreate"}
    hpas = {o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert "ragfleet-retrieval" not in hpas
    assert "ragfleet-gateway" in hpas


def test_the_ingress_keeps_clients_on_one_gateway_and_lets_streams_flow(tools: Toolchain) -> None:
    objects = render.parse_objects(render.helm_template(tools.helm))
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "affinity-mode"] == "persistent"
    assert annotations[prefix + "session-cookie-name"] == "ragfleet_affinity"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    assert annotations[prefix + "proxy-buffering"] == "off"


def test_core_validation_is_strict(tools: Toolchain) -> None:
    objects = render.parse_objects(render.helm_template(tools.helm))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    problems = validate_core(objects, render.KUBE_VERSIONS[0])
    assert len(problems) == 1
    assert "livenessProbes" in problems[0]


def test_custom_resource_validation_is_strict(tools: Toolchain) -> None:
    values = render.CHART_DIR / "ci" / "gateway-api-values.yaml"
    objects = render.parse_objects(render.helm_template(tools.helm, values))
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    route["spec"]["rules"][0]["sessionPersistence"]["cookieName"] = "x"
    vpa = next(o for o in objects if o["kind"] == "VerticalPodAutoscaler")
    vpa["spec"]["updatePolicy"]["updateMode"] = "Sometimes"
    problems = validate_custom(objects, tools)
    assert any("HTTPRoute" in p and "cookieName" in p and "unknown field" in p for p in problems)
    assert any("VerticalPodAutoscaler" in p and "updateMode" in p for p in problems)
    assert len(problems) == 2


def test_drift_is_caught(tools: Toolchain, tmp_path: Path) -> None:
    stale = tmp_path / "ragfleet.yaml"
    stale.write_text(render.render_default_manifest(tools.helm).replace("replicas: 1", "replicas: 2"))
    problems = check_drift(tools, stale)
    assert len(problems) == 1
    assert "k8scheck render" in problems[0]
