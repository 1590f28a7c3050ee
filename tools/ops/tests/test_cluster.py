"""Connection and selection rules, and the fake API's own wire behaviour."""

from __future__ import annotations

import json
import urllib.request
from urllib.error import HTTPError

import pytest
from kubernetes import client

from ragfleet.ops.cluster import ClusterReader, OpsError, connect, release_selector, selector_matches
from ragfleet.testkit.kube import clusters


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_namespace_and_context_come_from_the_kubeconfig(fake_cluster) -> None:
    connection = connect(str(fake_cluster.kubeconfig))
    assert connection.default_namespace == "ragfleet"
    assert connection.source == "kubeconfig context fake"
    with pytest.raises(OpsError, match="cannot use kubeconfig"):
        connect(str(fake_cluster.kubeconfig), context="nope")


def test_release_selector() -> None:
    assert release_selector(None) == "app.kubernetes.io/part-of=ragfleet"
    assert release_selector("prod") == "app.kubernetes.io/instance=prod"


def test_selector_matches_labels_and_expressions() -> None:
    labels = {"app": "ragfleet", "tier": "api"}
    expression = client.V1LabelSelectorRequirement
    assert selector_matches(client.V1LabelSelector(match_labels={"app": "ragfleet"}), labels)
    assert not selector_matches(client.V1LabelSelector(match_labels={"app": "other"}), labels)
    assert selector_matches(
        client.V1LabelSelector(match_expressions=[expression(key="tier", operator="In", values=["api"])]),
        labels,
    )
    assert not selector_matches(
        client.V1LabelSelector(match_expressions=[expression(key="tier", operator="DoesNotExist")]), labels
    )
    # An empty selector is attributed to nobody (not to every component).
    assert not selector_matches(client.V1LabelSelector(), labels)
    assert not selector_matches(None, labels)


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_reader_sees_one_frame_per_poll(fake_cluster) -> None:
    fake_cluster.use(clusters.load_test())
    reader = ClusterReader(connect(str(fake_cluster.kubeconfig)), "ragfleet")

    desired = [
        next(c for c in reader.snapshot().components if c.component == "gateway").hpa.desired_replicas
        for _ in range(3)
    ]

    # Frame 0, then frame 1 (the HPA asks for 4), then frame 2 — never a mix within one snapshot.
    assert desired == [2, 4, 4]


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_fake_api_speaks_status_errors_and_discovery(fake_cluster) -> None:
    fake_cluster.use(clusters.healthy(vpa_crd_installed=False))
    url = fake_cluster.server.url

    def get(path: str, token: str) -> tuple[int, dict]:
        request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except HTTPError as error:
            return error.code, json.loads(error.read())

    token = fake_cluster.server.token
    assert get("/apis/apps/v1/namespaces/ragfleet/deployments", "wrong")[0] == 401
    status, body = get("/apis/autoscaling.k8s.io/v1/namespaces/ragfleet/verticalpodautoscalers", token)
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")
    status, body = get("/apis", token)
    assert "autoscaling.k8s.io" not in {g["name"] for g in body["groups"]}
    status, body = get(
        "/api/v1/namespaces/ragfleet/pods?labelSelector=app.kubernetes.io/component%3Dgateway", token
    )
    assert (status, body["kind"], len(body["items"])) == (200, "PodList", 2)
    status, body = get("/api/v1/namespaces/other/pods", token)
    assert body["items"] == []
