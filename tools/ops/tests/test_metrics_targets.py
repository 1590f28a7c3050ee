"""`ragfleet-ops metrics-urls` against the fake Kubernetes API: one URL per Ready pod, by pod IP
and the container's named port, retrieval first; exit 1 when a component has no Ready pod."""

from __future__ import annotations

import pytest

from ragfleet.testkit.kube import clusters
from ragfleet.testkit.kube.clusters import pod, pod_ip
from ragfleet.testkit.kube.fake_apiserver import Scenario

# The fake Kubernetes API is a real HTTP server on a loopback port: integration by the marker rule.
pytestmark = pytest.mark.integration

RELEASE_ARGS = ("metrics-urls", "--release", clusters.RELEASE)


def test_every_ready_pod_of_each_component_retrieval_first(fake_cluster, run_cli) -> None:
    code, out, err = run_cli(
        *fake_cluster.args(*RELEASE_ARGS, "--component", "gateway", "--component", "retrieval")
    )

    assert code == 0, err
    assert out.splitlines() == [
        f"http://{pod_ip('retrieval', 0)}:8010/metrics",
        f"http://{pod_ip('retrieval', 1)}:8010/metrics",
        f"http://{pod_ip('gateway', 0)}:8000/metrics",
        f"http://{pod_ip('gateway', 1)}:8000/metrics",
    ]
    # Found by the chart's labels, one list per component (not the whole namespace).
    pod_lists = [r for r in fake_cluster.server.requests if "/pods?" in r]
    assert len(pod_lists) == 2 and all("app.kubernetes.io/instance%3Dragfleet" in r for r in pod_lists)


def test_pods_not_ready_terminating_or_of_another_release_are_left_out(fake_cluster, run_cli) -> None:
    other_release = pod("gateway", 7)
    other_release["metadata"]["labels"]["app.kubernetes.io/instance"] = "staging"
    frame = {
        "pods": [
            pod("gateway", 0),
            pod("gateway", 1, terminating=True),
            pod("gateway", 2, ready=False, waiting=("CrashLoopBackOff", "back-off")),
            other_release,
        ]
    }
    fake_cluster.use(Scenario([frame]))

    code, out, err = run_cli(*fake_cluster.args(*RELEASE_ARGS, "--component", "gateway"))

    assert code == 0
    assert out.splitlines() == [f"http://{pod_ip('gateway', 0)}:8000/metrics"]
    assert "gateway: 1 pod(s) ready; left out" in err
    assert f"{clusters.pod_name('gateway', 1)}: terminating" in err
    assert f"{clusters.pod_name('gateway', 2)}: not Ready (phase Running)" in err


def test_a_component_without_a_ready_pod_exits_1_and_prints_no_url(fake_cluster, run_cli) -> None:
    # llm-proxy cannot pull its image; retrieval has one of two pods crash-looping.
    fake_cluster.use(clusters.failing())

    code, out, err = run_cli(
        *fake_cluster.args(*RELEASE_ARGS, "--component", "retrieval", "--component", "llm-proxy")
    )

    assert code == 1
    assert out == ""
    assert "no Ready pod of llm-proxy in namespace ragfleet" in err
    assert f"retrieval: 1 pod(s) ready; left out {clusters.pod_name('retrieval', 1)}: not Ready" in err


def test_a_component_without_the_named_port_has_no_url(fake_cluster, run_cli) -> None:
    # The Celery worker serves no HTTP: its pods are Ready but have nothing to scrape.
    code, out, err = run_cli(*fake_cluster.args(*RELEASE_ARGS, "--component", "ingestion-worker"))

    assert code == 1 and out == ""
    assert "no container port named 'http'" in err


def test_without_a_release_it_refuses_to_guess(fake_cluster, run_cli) -> None:
    code, out, err = run_cli(*fake_cluster.args("metrics-urls", "--component", "gateway"))

    assert code == 2 and out == ""
    assert "metrics-urls needs --release" in err
