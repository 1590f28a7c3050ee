"""The whole static check against the real chart, plus proofs that each check can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragfleet.k8scheck import render
from ragfleet.k8scheck.checks import check_drift, checkov_check, run_all
from ragfleet.k8scheck.toolchain import Toolchain
from ragfleet.k8scheck.validate import validate_core, validate_custom

# helm, node and hadolint run as processes.
pytestmark = pytest.mark.integration


def test_every_static_check_passes(tools: Toolchain) -> None:
    # Checkov has a test of its own below: together they outlast one test's timeout on a busy machine.
    report = run_all(tools, with_checkov=False)
    assert report.ok, report.text()
    # Lint and render for the defaults and every variant, the overlay, the drift check, hadolint.
    assert len(report.results) >= 2 * (1 + len(render.ci_values_files())) + 1 + 1 + 1
    assert "hadolint Dockerfile" in report.results


@pytest.mark.timeout(900)
def test_checkov_finds_nothing_that_is_not_waived(tools: Toolchain) -> None:
    # Checkov's first run installs it (uvx, ~100 packages); later runs take ~30 s of CPU.
    assert checkov_check(tools) == []


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
    # balanced: replicas the HPA adds take a share of existing clients (persistent never would).
    assert annotations[prefix + "affinity-mode"] == "balanced"
    assert prefix + "session-cookie-secure" not in annotations  # no TLS in the defaults
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
    text = render.helm_template(tools.helm, values, api_versions=render.ALL_OPTIONAL_APIS)
    objects = render.parse_objects(text)
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


def test_benchmark_and_guard_rails_render_what_they_promise(tools: Toolchain) -> None:
    values = render.CHART_DIR / "ci" / "benchmark-guardrails-values.yaml"
    text = render.helm_template(tools.helm, values, api_versions=render.ALL_OPTIONAL_APIS)
    objects = render.parse_objects(text)
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    job = by_kind[("Job", "ragfleet-benchmark-r1")]
    assert job["spec"]["backoffLimit"] == 0
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "ragfleet-ops wait" in script and "ragfleet-ops bench-record" in script
    assert '--configmap "ragfleet-benchmark-history"' in script
    # Every retrieval and gateway pod is scraped, not one random replica behind a Service; the
    # API key comes from the Secret through the environment, never on a command line.
    assert (
        'ragfleet-ops metrics-urls --release "$RELEASE" --port-name metrics --component retrieval --component gateway'
        in script
    )
    assert "$metrics_args" in script and "METRICS_URL" not in script and "--api-key" not in script
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["RAGFLEET_LOADTEST_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "ragfleet-benchmark-api-key"
    )
    cron = by_kind[("CronJob", "ragfleet-benchmark")]
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    role = by_kind[("Role", "ragfleet-benchmark")]
    assert any("pods" in r["resources"] and r["verbs"] == ["list"] for r in role["rules"])
    writes = [r for r in role["rules"] if set(r["verbs"]) & {"update", "create", "patch", "delete"}]
    assert {tuple(r["resources"]) for r in writes} == {("configmaps",)}

    # Both ways for each pod scraped: its policy lets the benchmark in on the metrics port (and
    # on the gateway's http port, the load), the benchmark's lets it out to those container ports.
    benchmark = {"app.kubernetes.io/component": "benchmark"}
    egress = by_kind[("NetworkPolicy", "ragfleet-benchmark")]["spec"]["egress"]
    for component, port_names, ports in (
        ("gateway", ["http", "metrics"], [8000, 9090]),
        ("retrieval", ["metrics"], [9090]),
    ):
        ingress = by_kind[("NetworkPolicy", f"ragfleet-{component}")]["spec"]["ingress"]
        let_in = sorted(
            port["port"]
            for rule in ingress
            for p in rule.get("from", [])
            if benchmark.items() <= p.get("podSelector", {}).get("matchLabels", {}).items()
            for port in rule["ports"]
        )
        assert let_in == port_names
        assert any(
            p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
            and rule["ports"] == [{"port": port, "protocol": "TCP"} for port in ports]
            for rule in egress
            for p in rule.get("to", [])
            if "podSelector" in p and "namespaceSelector" not in p
        )

    rules = by_kind[("PrometheusRule", "ragfleet-alerts")]["spec"]["groups"][0]["rules"]
    alert = next(r for r in rules if r["alert"] == "RagfleetBenchmarkFailed")
    assert 'kube_job_status_failed{namespace="ragfleet", job_name=~"ragfleet-benchmark.*"}' in alert["expr"]

    # Sized from the components at their most replicas (+25 %): e.g. 9460m of requests -> 11825m;
    # two claims: the index and the state Redis (5 Gi + 2 Gi, no headroom on storage).
    quota = by_kind[("ResourceQuota", "ragfleet-guardrails")]["spec"]["hard"]
    assert quota["requests.cpu"] == "11825m" and quota["pods"] == "37"
    assert quota["persistentvolumeclaims"] == "2" and quota["requests.storage"] == "7168Mi"
    limits = by_kind[("LimitRange", "ragfleet-guardrails")]["spec"]["limits"][0]
    assert limits["max"]["memory"] == "2048Mi"  # the worker's limit, the largest


def test_benchmark_without_an_api_key_secret_is_refused(tools: Toolchain, tmp_path: Path) -> None:
    values = tmp_path / "bench-values.yaml"
    values.write_text("benchmark:\n  enabled: true\n")
    with pytest.raises(render.RenderError, match="apiKeySecret"):
        render.helm_template(tools.helm, values)
