"""The timeline plot, drawn from a recorded timeline.jsonl (what the load-test report embeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragfleet.ops.plot import plot_timeline
from ragfleet.ops.timeline import load_timeline
from ragfleet.testkit.kube import clusters


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
@pytest.mark.integration  # runs the CLI as a process
def test_plot_subcommand_redraws_the_png_from_the_jsonl(fake_cluster, run_cli, tmp_path: Path) -> None:
    fake_cluster.use(clusters.load_test())
    run_cli(*fake_cluster.args("watch", "--during", "true", "--interval", "1", "--out", str(tmp_path)))
    (tmp_path / "timeline.png").unlink()

    code, out, _ = run_cli("plot", str(tmp_path))

    assert code == 0 and out.strip() == str(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_to_a_chosen_path_and_timeline_loader(tmp_path: Path) -> None:
    jsonl = tmp_path / "timeline.jsonl"
    jsonl.write_text(
        '{"type": "meta", "namespace": "ns"}\n'
        '{"type": "sample", "t": 0, "components": [{"component": "gateway", "ready": 2, "desired": 2, "restarts": 0, '
        '"hpa": {"current": 2, "desired": 3}, "pdb": {"disruptions_allowed": 1}}]}\n'
        '{"type": "event", "t": 1, "kind": "evicted", "component": "gateway", "message": "pod x"}\n'
        '{"type": "sample", "t": 2, "components": [{"component": "gateway", "ready": 3, "desired": 3, "restarts": 1, '
        '"hpa": {"current": 3, "desired": 3}, "pdb": {"disruptions_allowed": 0}}]}\n'
    )
    timeline = load_timeline(tmp_path)
    assert (len(timeline.samples), len(timeline.events), timeline.end) == (2, 1, None)

    png = plot_timeline(jsonl, tmp_path / "report" / "cluster.png")

    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plot_subcommand_without_a_timeline_is_a_usage_error(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("plot", str(tmp_path))

    assert code == 2 and "timeline.jsonl not found" in err
