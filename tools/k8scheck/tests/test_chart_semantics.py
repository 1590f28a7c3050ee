"""What the chart promises a platform team (#16, #17): optional APIs gated, autoscalers that work with
what a cluster has, readiness that does not cascade, metrics on their own port, two Redis roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragfleet.k8scheck import golden, render
from ragfleet.k8scheck.checks import _crd_kinds
from ragfleet.k8scheck.toolchain import Toolchain

CI = render.CHART_DIR / "ci"
# helm runs as a process.
pytestmark = pytest.mark.integration


def _objects(tools: Toolchain, values: Path | None = None, **kwargs: Any) -> dict[tuple[str, str], Any]:
    objects = render.parse_objects(render.helm_template(tools.helm, values, **kwargs))
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def _container(objects: dict[tuple[str, str], Any], name: str, kind: str = "Deployment") -> Any:
    return objects[(kind, name)]["spec"]["template"]["spec"]["containers"][0]


def _env(container: Any) -> dict[str, Any]:
    return {e["name"]: e for e in container["env"]}


def test_defaults_render_no_crd_kind_until_the_cluster_serves_the_api(tools: Toolchain) -> None:
    bare = _objects(tools)
    assert _crd_kinds(list(bare.values())) == []
    served = _objects(tools, api_versions=render.ALL_OPTIONAL_APIS)
    kinds = {kind for kind, _ in served}
    assert {"VerticalPodAutoscaler", "ServiceMonitor", "PrometheusRule"} <= kinds
    # HTTPRoute and KEDA stay opt-in (their switches default to false): a Gateway or a metrics
    # source is the platform's decision.
    assert not {"HTTPRoute", "ScaledObject"} & kinds
    off = _objects(tools, CI / "optional-apis-off-values.yaml", api_versions=render.ALL_OPTIONAL_APIS)
    assert _crd_kinds(list(off.values())) == []


def test_hpas_scale_on_cpu_alone_and_keda_replaces_them(tools: Toolchain) -> None:
    objects = _objects(tools)
    hpas = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    assert len(hpas) == 4
    for hpa in hpas:
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]

    keda = _objects(tools, CI / "optional-apis-on-values.yaml")
    for name in ("ragfleet-gateway", "ragfleet-ingestion-worker"):
        assert ("ScaledObject", name) in keda and ("HorizontalPodAutoscaler", name) not in keda
        assert "replicas" not in keda[("Deployment", name)]["spec"]
    worker = keda[("ScaledObject", "ragfleet-ingestion-worker")]["spec"]["triggers"]
    assert [t["type"] for t in worker] == ["cpu", "redis", "redis"]
    assert worker[1]["metadata"]["address"] == "ragfleet-redis-state.ragfleet.svc:6379"
    # Both lanes' queues: the bulk one and the small-document lane's.
    assert [t["metadata"]["listName"] for t in worker[1:]] == ["ingestion", "ingestion.small"]
    auth = keda[("TriggerAuthentication", "ragfleet-ingestion-worker")]["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": "ragfleet-credentials", "key": "state-redis-password"}]
    gateway = keda[("ScaledObject", "ragfleet-gateway")]["spec"]["triggers"]
    assert gateway[1]["type"] == "prometheus"
    assert (
        'ragfleet_http_requests_in_flight{namespace="ragfleet", job="ragfleet-gateway"}'
        in (gateway[1]["metadata"]["query"])
    )
    # The VPA recommends only, and never moves CPU under a CPU autoscaler.
    for (kind, name), vpa in keda.items():
        if kind == "VerticalPodAutoscaler":
            assert vpa["spec"]["updatePolicy"]["updateMode"] == "Off"
            policy = vpa["spec"]["resourcePolicy"]["containerPolicies"][0]
            single = name == "ragfleet-retrieval"  # one writer, no autoscaler
            assert policy["controlledResources"] == (["cpu", "memory"] if single else ["memory"])


def test_keda_on_auto_falls_back_to_the_hpa_without_the_api(tools: Toolchain) -> None:
    sets = ("--set", "components.gateway.autoscaling.keda.enabled=auto")
    without = _objects(tools, extra_args=sets)
    assert ("HorizontalPodAutoscaler", "ragfleet-gateway") in without
    assert ("ScaledObject", "ragfleet-gateway") not in without
    served = _objects(tools, extra_args=sets, api_versions=render.OPTIONAL_APIS["keda"])
    assert ("ScaledObject", "ragfleet-gateway") in served
    assert ("HorizontalPodAutoscaler", "ragfleet-gateway") not in served


def test_route_stickiness_only_where_the_crds_know_the_field(tools: Toolchain) -> None:
    values = CI / "gateway-api-values.yaml"
    standard = _objects(tools, values, api_versions=render.OPTIONAL_APIS["gateway-api"])
    rules = standard[("HTTPRoute", "ragfleet-gateway")]["spec"]["rules"]
    assert all("sessionPersistence" not in rule for rule in rules)
    experimental = _objects(
        tools,
        values,
        api_versions=render.OPTIONAL_APIS["gateway-api"] + render.OPTIONAL_APIS["gateway-api-experimental"],
    )
    rule = experimental[("HTTPRoute", "ragfleet-gateway")]["spec"]["rules"][0]
    assert rule["sessionPersistence"]["sessionName"] == "ragfleet_affinity"
    # The standard-channel check catches the field where it would be dropped.
    entry = next(g for g in golden.GOLDENS if g.standard_channel)
    problems = golden.channel_problems(entry, list(experimental.values()))
    assert len(problems) == 1 and "sessionPersistence" in problems[0]


def test_readiness_is_the_pods_own_and_the_worker_never_probes_the_broker(tools: Toolchain) -> None:
    objects = _objects(tools)
    for name in ("gateway", "retrieval", "llm-proxy", "ingestion-api"):
        container = _container(objects, f"ragfleet-{name}")
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    worker = _container(objects, "ragfleet-ingestion-worker")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        assert "exec" not in worker[probe]
    assert _env(worker)["RAGFLEET_INGESTION_WORKER_METRICS_PORT"]["value"] == "9090"


def test_a_disabled_component_is_not_configured_in_the_others(tools: Toolchain) -> None:
    objects = _objects(tools, CI / "component-off-values.yaml")
    env = _env(_container(objects, "ragfleet-gateway"))
    assert "RAGFLEET_GATEWAY_INGESTION_URL" not in env
    assert env["RAGFLEET_GATEWAY_RETRIEVAL_URL"]["value"] == "http://ragfleet-retrieval:8010"
    egress = objects[("NetworkPolicy", "ragfleet-gateway")]["spec"]["egress"]
    callees = {
        p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in egress
        for p in rule.get("to", [])
        if "podSelector" in p
    }
    assert "ingestion-api" not in callees and "retrieval" in callees


def test_metrics_have_a_port_that_only_monitoring_reaches_and_no_route_leads_to(tools: Toolchain) -> None:
    objects = _objects(tools, CI / "gateway-api-values.yaml", api_versions=render.ALL_OPTIONAL_APIS)
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    for name in ("gateway", "retrieval", "llm-proxy", "ingestion-api", "ingestion-worker"):
        container = _container(objects, f"ragfleet-{name}")
        assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
        service_ports = {p["name"] for p in objects[("Service", f"ragfleet-{name}")]["spec"]["ports"]}
        assert "metrics" in service_ports
        monitor = objects[("ServiceMonitor", f"ragfleet-{name}")]["spec"]["endpoints"]
        assert [e["port"] for e in monitor] == ["metrics"]
        for rule in objects[("NetworkPolicy", f"ragfleet-{name}")]["spec"]["ingress"]:
            ports = [p["port"] for p in rule["ports"]]
            from_monitoring = [
                p.get("namespaceSelector", {}).get("matchLabels") == monitoring for p in rule["from"]
            ]
            # The metrics port is opened to the monitoring namespace alone, and it to nothing else.
            assert ("metrics" in ports) == any(from_monitoring)
            assert ports == ["metrics"] or not any(from_monitoring)
    route = objects[("HTTPRoute", "ragfleet-gateway")]["spec"]["rules"][0]["backendRefs"]
    assert route == [{"name": "ragfleet-gateway", "port": 8000}]
    ingress = _objects(tools)[("Ingress", "ragfleet-gateway")]["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["port"] for p in ingress] == [{"name": "http"}]


def test_secure_affinity_cookie_under_tls(tools: Toolchain) -> None:
    ingress = _objects(tools, CI / "external-redis-values.yaml")[("Ingress", "ragfleet-gateway")]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/session-cookie-secure"] == "true"


def test_state_redis_persists_refuses_eviction_and_needs_its_password(tools: Toolchain) -> None:
    objects = _objects(tools)
    state = objects[("StatefulSet", "ragfleet-redis-state")]
    script = state["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--appendonly yes" in script and "--maxmemory-policy noeviction" in script
    assert "requirepass" in script and "$REDISCLI_AUTH" in script
    claim = state["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "2Gi"
    cache = _container(objects, "ragfleet-redis-cache")
    assert "--maxmemory-policy allkeys-lru" in cache["args"][0] and "--appendonly no" in cache["args"][0]
    for redis in (
        state["spec"]["template"]["spec"],
        objects[("Deployment", "ragfleet-redis-cache")]["spec"]["template"]["spec"],
    ):
        assert redis["securityContext"]["runAsUser"] == 10001
        assert redis["containers"][0]["image"].startswith("redis:7.4-alpine@sha256:")
    secret = objects[("Secret", "ragfleet-credentials")]
    assert set(secret["data"]) == {"state-redis-password", "cache-redis-password", "service-token"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    env = _env(_container(objects, "ragfleet-ingestion-api"))
    assert env["RAGFLEET_INGESTION_STATE_REDIS_URL"]["value"] == "redis://ragfleet-redis-state:6379/0"
    assert env["RAGFLEET_INGESTION_CACHE_REDIS_URL"]["value"] == "redis://ragfleet-redis-cache:6379/0"
    assert env["RAGFLEET_INGESTION_STATE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "ragfleet-credentials",
        "key": "state-redis-password",
    }
    assert env["RAGFLEET_INGESTION_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "service-token"
    assert "RAGFLEET_INGESTION_REDIS_URL" not in env


def test_external_redis_and_platform_values(tools: Toolchain) -> None:
    external = _objects(tools, CI / "external-redis-values.yaml")
    # No bundled Redis at all; the credentials Secret still carries the service token.
    assert not [name for _, name in external if "redis" in name]
    assert ("StatefulSet", "ragfleet-redis-state") not in external
    assert ("Secret", "ragfleet-credentials") in external
    env = _env(_container(external, "ragfleet-gateway"))
    assert env["RAGFLEET_GATEWAY_STATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "ragfleet-redis"
    assert "RAGFLEET_GATEWAY_STATE_REDIS_PASSWORD" not in env  # the URL carries it
    assert env["RAGFLEET_GATEWAY_CACHE_REDIS_URL"]["value"] == "rediss://cache.redis.example.com:6380/0"
    assert (
        env["RAGFLEET_GATEWAY_CACHE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        == "ragfleet-redis-cache"
    )
    assert env["RAGFLEET_GATEWAY_CACHE_REDIS_USERNAME"]["value"] == "ragfleet"

    platform = _objects(tools, CI / "platform-values.yaml")
    account = platform[("ServiceAccount", "ragfleet-gateway")]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/ragfleet")
    pod = platform[("Deployment", "ragfleet-gateway")]["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "search"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ragfleet/ragfleet-gateway:0.1.0@sha256:" + "0" * 63 + "1"
    assert _env(container)["RAGFLEET_EXTRA_NODE"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert _env(container)["RAGFLEET_GATEWAY_DOCS_ENABLED"]["value"] == "true"
    assert {"configMapRef": {"name": "ragfleet-site-settings"}} in container["envFrom"]
    dns = platform[("NetworkPolicy", "ragfleet-gateway")]["spec"]["egress"][0]["to"]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns


def test_admin_key_is_seeded_from_a_secret_when_named(tools: Toolchain) -> None:
    env = _env(_container(_objects(tools, CI / "bundled-redis-values.yaml"), "ragfleet-gateway"))
    assert env["RAGFLEET_GATEWAY_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "ragfleet-admin-key",
        "key": "admin-key",
        "optional": True,
    }
    assert "RAGFLEET_GATEWAY_ADMIN_KEY" not in _env(_container(_objects(tools), "ragfleet-gateway"))


@pytest.mark.parametrize("value", ["always", "Auto", 1])
def test_switches_take_only_true_false_or_auto(tools: Toolchain, tmp_path: Path, value: object) -> None:
    values = tmp_path / "switch-values.yaml"
    values.write_text(f"vpa:\n  enabled: {value}\n")
    with pytest.raises(render.RenderError, match="vpa"):
        render.helm_template(tools.helm, values)


def test_a_golden_diff_is_caught(tools: Toolchain) -> None:
    entry = golden.GOLDENS[0]
    objects = entry.render(tools.helm)
    assert golden.diff(entry, objects) == []
    vpa = next(o for o in objects if o["kind"] == "VerticalPodAutoscaler")
    vpa["spec"]["updatePolicy"]["updateMode"] = "Auto"
    problems = golden.diff(entry, objects)
    assert "differs from a fresh render" in problems[0]
    assert any(line.startswith("+") and "Auto" in line for line in problems)
