"""The load-test report with the cluster timeline: `--watch` records it with ragfleet-ops while
Locust runs (against the fake Kubernetes API: no cluster runs here) and the report embeds it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragfleet.devstack.processes import free_port
from ragfleet.loadtests.cluster_report import CLUSTER_PLOT, add_cluster_timeline
from ragfleet.ops.cluster import ClusterReader, connect
from ragfleet.ops.timeline import TimelineRecorder
from ragfleet.testkit.kube.clusters import load_test
from ragfleet.testkit.kube.fake_apiserver import FakeKubeApiServer, running_fake_api

# The fake Kubernetes API is a real HTTP server on a loopback port: integration by the marker rule.
pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fake_api() -> Iterator[FakeKubeApiServer]:
    """The fake API playing a load test: the gateway's HPA scales 2 -> 4, a restart, a drain."""
    with running_fake_api(load_test()) as server:
        yield server


def test_a_recorded_timeline_is_embedded_in_the_report(fake_api: FakeKubeApiServer, tmp_path: Path) -> None:
    # One sample per frame of the scenario, as `watch` takes them (deterministic: no clock).
    connection = connect(str(fake_api.write_kubeconfig(tmp_path / "kubeconfig.yaml")))
    reader = ClusterReader(connection, "ragfleet", "ragfleet")
    timeline = tmp_path / "timeline"
    recorder = TimelineRecorder(
        timeline, {"namespace": "ragfleet", "selector": reader.selector, "interval": 5}
    )
    for _ in fake_api.scenario.frames:
        recorder.record(reader.snapshot())
    recorder.finish(0)
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.md").write_text("# Load test: search — PASSED\n")
    (report / "summary.json").write_text(json.dumps({"scenario": "search"}))

    page = add_cluster_timeline(report, timeline).read_text()

    assert page.startswith("# Load test: search — PASSED\n")
    assert f"![{CLUSTER_PLOT}]({CLUSTER_PLOT})" in page
    gateway = next(line for line in page.splitlines() if line.startswith("| gateway |"))
    # Ready 2 -> 4, the HPA asked for 4, one pod evicted while the PDB allowed no more.
    assert gateway.split(" | ")[1:] == ["2 → 4 (2-4)", "2 → 4 (4)", "0", "1", "0 |"]
    assert "| evicted | gateway |" in page and "| hpa-desired | gateway |" in page
    assert (report / CLUSTER_PLOT).read_bytes()[:8] == PNG_MAGIC
    facts = json.loads((report / "summary.json").read_text())
    assert facts["scenario"] == "search"
    assert {c["component"] for c in facts["cluster"]["components"]} >= {"gateway", "retrieval"}


@pytest.mark.integration
def test_run_with_watch_records_the_cluster_beside_locust(
    fake_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    """The runner end to end: Locust (against a closed port: only the wiring is under test) under
    `--watch`; the report has Locust's numbers and the cluster plot."""
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    report = tmp_path / "report"
    closed = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragfleet.loadtests.run",
            "--host",
            closed,
            "--api-key",
            "test-key",
            "--metrics-url",
            f"{closed}/metrics",
            "--users",
            "1",
            "--duration",
            "2s",
            "--report-dir",
            str(report),
            "--watch",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            "ragfleet",
            "--release",
            "ragfleet",
            "--watch-interval",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Every request failed (nothing listens): the gates say so; the report is complete anyway.
    assert result.returncode != 0, result.stderr
    records = [json.loads(line) for line in (report / "cluster" / "timeline.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "meta" and "locust" in records[0]["command"]
    assert "test-key" not in records[0]["command"]  # the key travels in the environment
    assert sum(r["type"] == "sample" for r in records) >= 3
    assert records[-1]["type"] == "end" and records[-1]["exit_code"] == result.returncode
    page = (report / "summary.md").read_text()
    assert page.index("## Gates") < page.index("## Cluster timeline")
    assert (report / CLUSTER_PLOT).read_bytes()[:8] == PNG_MAGIC
    assert "cluster" in json.loads((report / "summary.json").read_text())
