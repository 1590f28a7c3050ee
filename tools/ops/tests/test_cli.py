"""The CLI against the fake Kubernetes API: reports and exit codes for healthy, progressing and
failing rollouts, and the timeline `watch` writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragfleet.testkit.kube import clusters

# The fake Kubernetes API is a real HTTP server on a loopback port: integration by the marker rule.
pytestmark = pytest.mark.integration


def test_status_healthy_release_is_a_table_and_exit_0(fake_cluster, run_cli) -> None:
    code, out, _ = run_cli(*fake_cluster.args("status"))

    assert code == 0
    assert "healthy" in out.splitlines()[0]
    gateway = next(line for line in out.splitlines() if line.startswith("gateway "))
    assert gateway.split()[:6] == ["gateway", "Deployment", "2/2", "2", "2", "0"]
    assert "2->2 (2-6)" in gateway and "cpu 35%/70%" in gateway and "1 (2/1 healthy)" in gateway
    assert any(line.startswith("redis ") and "StatefulSet" in line for line in out.splitlines())
    # VPA recommendations of both autoscaled components.
    assert "retrieval  retrieval  Off   400m" in out
    assert "Problems" not in out


def test_status_json_carries_hpa_pdb_vpa_and_restarts(fake_cluster, run_cli) -> None:
    code, out, _ = run_cli(*fake_cluster.args("status", "--output", "json"))

    report = json.loads(out)
    assert code == 0 and report["degraded"] is False
    components = {c["component"]: c for c in report["components"]}
    assert set(components) == {"gateway", "retrieval", "llm-proxy", "ingestion", "ingestion-worker", "redis"}
    gateway = components["gateway"]
    assert (gateway["desired"], gateway["ready"], gateway["updated"], gateway["restarts"]) == (2, 2, 2, 0)
    assert gateway["hpa"]["metrics"] == [{"name": "cpu", "current": "35%", "target": "70%"}]
    assert (gateway["hpa"]["current_replicas"], gateway["hpa"]["desired_replicas"]) == (2, 2)
    assert gateway["pdb"]["disruptions_allowed"] == 1
    assert gateway["vpa"]["recommendations"][0]["target"] == {"cpu": "250m", "memory": "300Mi"}
    assert report["vpa_installed"] is True


def test_status_without_the_vpa_crd_says_so_and_stays_healthy(fake_cluster, run_cli) -> None:
    fake_cluster.use(clusters.healthy(vpa_crd_installed=False))

    code, out, _ = run_cli(*fake_cluster.args("status"))

    assert code == 0
    assert "VPA not installed" in out
    assert "VerticalPodAutoscaler CRD (autoscaling.k8s.io/v1) not installed" in out


def test_status_failing_release_names_each_problem_and_exits_1(fake_cluster, run_cli) -> None:
    fake_cluster.use(clusters.failing())

    code, out, _ = run_cli(*fake_cluster.args("status"))

    assert code == 1
    assert "DEGRADED" in out.splitlines()[0]
    retrieval = next(line for line in out.splitlines() if line.startswith("retrieval "))
    assert (
        "1/2" in retrieval
        and " 7 " in retrieval
        and "cpu <unknown>/70%" in retrieval
        and "NOT READY" in retrieval
    )
    problems = out.split("Problems", 1)[1]
    assert "CrashLoopBackOff" in problems and "last exit Error code 1" in problems
    assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in problems
    assert "ImagePullBackOff" in problems and 'Back-off pulling image "ragfleet-llm-proxy:0.2.0"' in problems
    assert "unschedulable: 0/1 nodes are available: 1 Insufficient cpu" in problems
    assert "HPA ScalingActive=False (FailedGetResourceMetric)" in problems
    # ingestion's pods are fine: the worker's scheduling events are not attributed to it.
    assert "  ingestion (" not in problems


def test_wait_healthy_returns_at_once(fake_cluster, run_cli) -> None:
    code, out, _ = run_cli(*fake_cluster.args("wait", "--timeout", "30", "--interval", "0.05"))

    assert code == 0
    assert "All 6 ragfleet rollouts in namespace ragfleet are available" in out
    assert fake_cluster.server.polls == 1


def test_wait_progressing_shows_progress_then_succeeds(fake_cluster, run_cli) -> None:
    fake_cluster.use(clusters.progressing(polls_until_ready=3))

    code, out, err = run_cli(*fake_cluster.args("wait", "--timeout", "60", "--interval", "0.05"))

    assert code == 0
    assert "available" in out
    assert fake_cluster.server.polls == 4
    assert "4/6 rollouts ready" in err
    assert "gateway: 1 of 2 new replicas updated" in err
    assert "retrieval: 1 of 2 updated replicas available" in err
    # The display prints a line when the state changes, not on every poll.
    assert err.count("rollouts ready") == 1


def test_wait_failing_times_out_naming_what_and_why(fake_cluster, run_cli) -> None:
    fake_cluster.use(clusters.failing())

    code, out, _ = run_cli(*fake_cluster.args("wait", "--timeout", "0.3", "--interval", "0.1"))

    assert code == 1
    assert out.startswith("Timed out after 0s: 3 of 6 ragfleet rollouts in namespace ragfleet not available")
    assert "retrieval (Deployment ragfleet-retrieval): 1/2 ready" in out
    assert "llm-proxy (Deployment ragfleet-llm-proxy): 0/1 ready" in out
    assert "ingestion-worker (Deployment ragfleet-ingestion-worker): 0/1 ready" in out
    assert "Warning Unhealthy x21 on Pod ragfleet-retrieval-7d9f8c6b5-p001: Readiness probe failed" in out
    assert "Warning BackOff x30" in out and "CrashLoopBackOff" in out
    assert "ImagePullBackOff" in out and "Warning Failed x4" in out
    assert "Warning FailedScheduling x3" in out
    assert out.rstrip().endswith("Ready: gateway, ingestion, redis")


def test_wait_fails_fast_when_the_progress_deadline_is_exceeded(fake_cluster, run_cli) -> None:
    frame = clusters.healthy_frame()
    frame["deployments"][0] = clusters.deployment(
        "gateway", 2, ready=1, updated=1, total=2, deadline_exceeded=True
    )
    fake_cluster.use(clusters.Scenario([frame]))

    code, out, _ = run_cli(*fake_cluster.args("wait", "--timeout", "60", "--interval", "0.05"))

    assert code == 1
    assert out.startswith("Rollout failed for gateway")
    assert 'ReplicaSet "ragfleet-gateway-7d9f8c6b5" has timed out progressing.' in out
    assert fake_cluster.server.polls == 1


def test_nothing_installed_is_not_ready(fake_cluster, run_cli) -> None:
    code, out, _ = run_cli(*fake_cluster.args("--release", "other", "status"))

    assert code == 1
    assert "No Deployments or StatefulSets match the selector" in out
    assert "labelSelector=app.kubernetes.io/instance%3Dother" in fake_cluster.server.requests[0]


def test_release_option_selects_by_instance_label(fake_cluster, run_cli) -> None:
    code, _, _ = run_cli(*fake_cluster.args("status", "--release", "ragfleet", "--namespace", "ragfleet"))

    assert code == 0
    assert "labelSelector=app.kubernetes.io/instance%3Dragfleet" in fake_cluster.server.requests[0]


def test_unreachable_api_and_bad_kubeconfig_exit_2(fake_cluster, run_cli, tmp_path: Path) -> None:
    fake_cluster.server.stop()
    code, _, err = run_cli(*fake_cluster.args("wait", "--timeout", "5"))
    assert code == 2 and "cannot reach the API server" in err

    code, _, err = run_cli("--kubeconfig", str(tmp_path / "missing.yaml"), "status")
    assert code == 2 and "cannot use kubeconfig" in err


def test_wrong_credentials_exit_2(fake_cluster, run_cli) -> None:
    config = json.loads(fake_cluster.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "wrong"
    fake_cluster.kubeconfig.write_text(json.dumps(config))

    code, _, err = run_cli(*fake_cluster.args("status"))

    assert code == 2 and "401" in err


@pytest.mark.integration  # watch runs a real command
def test_watch_records_a_timeline_while_the_command_runs(fake_cluster, run_cli, tmp_path: Path) -> None:
    fake_cluster.use(clusters.load_test())
    out_dir = tmp_path / "timeline"

    code, _, err = run_cli(
        *fake_cluster.args("watch", "--during", "sleep 2", "--interval", "0.2", "--out", str(out_dir))
    )

    assert code == 0
    records = [json.loads(line) for line in (out_dir / "timeline.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "meta" and records[0]["command"] == "sleep 2"
    assert records[-1] == {**records[-1], "type": "end", "exit_code": 0}
    samples = [r for r in records if r["type"] == "sample"]
    assert len(samples) >= 4
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    gateway = [next(c for c in s["components"] if c["component"] == "gateway") for s in samples]
    assert gateway[0]["ready"] == 2 and max(g["ready"] for g in gateway) == 4
    # The frames of the load-test scenario, as events: HPA decision, scale-up, OOM restart, eviction.
    kinds = {(r["kind"], r["component"]) for r in records if r["type"] == "event"}
    assert {
        ("hpa-desired", "gateway"),
        ("k8s-event", "gateway"),
        ("scaled", "gateway"),
        ("restart", "retrieval"),
        ("evicted", "gateway"),
    } <= kinds
    evicted = next(r for r in records if r.get("kind") == "evicted")
    assert "EvictionByEvictionAPI" in evicted["message"]
    # The PDB held: it allowed no further disruption while the evicted pod was replaced.
    assert min(g["pdb"]["disruptions_allowed"] for g in gateway) == 0
    rows = list(csv.DictReader((out_dir / "timeline.csv").open()))
    assert len(rows) == 6 * len(samples)
    assert {"hpa_desired", "pdb_disruptions_allowed", "evictions", "restarts"} <= set(rows[0])
    assert (out_dir / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "evicted gateway" in err


@pytest.mark.integration  # watch runs a real command
def test_watch_exits_with_the_commands_exit_code(fake_cluster, run_cli, tmp_path: Path) -> None:
    code, _, _ = run_cli(
        *fake_cluster.args("watch", "--during", "exit 3", "--interval", "5", "--out", str(tmp_path))
    )

    assert code == 3
    end = json.loads((tmp_path / "timeline.jsonl").read_text().splitlines()[-1])
    assert end["exit_code"] == 3 and end["samples"] >= 1


@pytest.mark.integration  # watch runs a real command
def test_watch_keeps_the_command_running_when_the_api_goes_away(
    fake_cluster, run_cli, tmp_path: Path
) -> None:
    fake_cluster.server.stop()

    code, _, _ = run_cli(
        *fake_cluster.args("watch", "--during", "true", "--interval", "5", "--out", str(tmp_path))
    )

    assert code == 0
    assert any(
        json.loads(line)["type"] == "error" for line in (tmp_path / "timeline.jsonl").read_text().splitlines()
    )


@pytest.mark.integration
def test_console_script_runs_as_its_own_process(fake_cluster) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ragfleet.ops", *fake_cluster.args("status", "-o", "json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["degraded"] is False
