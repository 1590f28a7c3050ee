"""The benchmark runner: figures read from what the parts really write, and one real (small) run that
stores its record, writes the pages and exits with the regression code against a better baseline.

The full `make bench` takes minutes; only the fastest part (llm-proxy, --quick) runs here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ragfleet.bench import calibration, history
from ragfleet.bench.stores import FileStore
from ragfleet.loadtests import bench, bench_parts, bench_report
from ragfleet.loadtests.gates import EndpointStats, RunSummary
from ragfleet.loadtests.promscrape import HitRate


def test_loadtest_figures_come_from_the_summary_the_run_writes() -> None:
    summary = RunSummary(
        endpoints=[
            EndpointStats("POST", "/v1/search [vector]", 900, 9, 300.0, 5, 40, 90),
            EndpointStats("GET", "/healthz", 100, 0, 10.0, 1, 2, 3),
        ],
        total_requests=1000,
        total_failures=9,
        duration_s=3.0,
        hit_rate=HitRate("search", lookups=800, l1_hits=400, l2_hits=100, edge_hits=100),
    )
    # As report.write stores it in summary.json (importing the report would import Locust, whose
    # gevent monkey-patching must not happen inside pytest).
    written = json.dumps({"summary": dataclasses.asdict(summary)})

    values = bench_parts.loadtest_metrics(json.loads(written))

    assert values == {
        "loadtest.vector_search_qps": 300.0,
        "loadtest.vector_search_p95_ms": 40,
        "loadtest.failure_ratio": 0.009,
        "loadtest.cache_hit_rate": 0.75,
    }
    assert set(values) <= set(bench_parts.CATALOG)


def test_the_retrieval_figures_are_normalised_by_the_references_measured_in_their_rounds(
    tmp_path: Path,
) -> None:
    qps = {"1": 2000.0, "2": 3000.0}
    kinds = ["vector", "vector + filter (1/3 match)", "vector + filter (~1 % match)", "bm25"]
    kinds += ["hybrid (relative_score)", "hybrid (rrf)"]
    written = {  # the shape bench_store.py --json writes
        "store": {"recall@10": 0.99, "qps": dict.fromkeys(kinds, qps), "async_qps": 1500.0}
        | {"build_s": 50.0, "load_s": 2.5},
        "embeddings": {"query_single_per_s": 150.0, "query_batched_per_s": 220.0}
        | {"passage_batched_per_s": 11.0},
        "references": {"hnsw_qps": 2500.0, "onnx_texts_per_s": 140.0},
    }
    (tmp_path / "retrieval.json").write_text(json.dumps(written))

    values, references = bench_parts.read_figures("retrieval", tmp_path, tmp_path)
    metrics = bench_parts.metric_entries(values, references)

    assert bench_parts.PART_REFERENCES["retrieval"] == ()  # none measured before: the part's own
    assert metrics["retrieval.vector_qps"].normalised({}) == pytest.approx(2000.0 / 2500.0)
    assert metrics["retrieval.embed_query_single_per_s"].reference_value == 140.0
    assert metrics["retrieval.recall_at_10"].reference_value is None


def test_the_readme_table_is_replaced_between_its_markers_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Index\n\nhand-written\n\n{bench_report.README_START}\nold table\n{bench_report.README_END}\n\nfooter\n"
    )
    record = history.Record(
        started_at="2026-11-21T10:00:00Z",
        label="abc1234+dirty",
        metrics=bench_parts.metric_entries({"llm_proxy.errors": 0}),
        machine={"cpu_model": "EPYC", "cores": 2, "memory_gib": 23.5, "cpu_flags": ["avx2"]},
        calibration={"echo_rps": 2000.0},
        profile="quick",
    )
    rows = history.compare(record, [], history.Tolerances())

    bench_report.update_readme(readme, record, rows, tmp_path / "latest.md")

    text = readme.read_text()
    assert "old table" not in text and "hand-written" in text and text.endswith("footer\n")
    assert "commit `abc1234+dirty`" in text and "| llm_proxy.errors | count | lower |" in text
    assert "calibration echo_rps 2,000.0" in text


def test_bad_options_are_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        bench.parser().parse_args(["--only", "retrieval,nope"])
    with pytest.raises(SystemExit):
        bench.parser().parse_args(["--tolerance-for", "loadtest.qps"])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit):  # before any benchmark runs
        bench.main(["--baseline", str(tmp_path / "broken.json"), "--history-dir", str(tmp_path)])
    args = bench.parser().parse_args(["--only", "loadtest,retrieval", "--tolerance-for", "loadtest.*=0.3"])
    assert args.only == ["retrieval", "loadtest"] and args.tolerance_for == [("loadtest.*", 0.3)]


@pytest.mark.integration
def test_a_quick_run_is_stored_and_a_regression_exits_with_its_code(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text(
        f"# Benchmarks\n\n{bench_report.README_START}\n{bench_report.README_END}\n"
    )
    # A baseline no real proxy can match, from this machine: every CPU figure near zero.
    here = calibration.machine()
    impossible = history.Record(
        started_at="2000-01-01T00:00:00Z",
        label="0000000",
        metrics=bench_parts.metric_entries({"llm_proxy.json_cpu_ms_per_request": 1e-6}),
        machine=here,
        fingerprint=calibration.fingerprint(here),
        profile="quick",
    ).to_json()
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(impossible))

    code = bench.main(
        [
            # Judged whatever else loads the machine: this test checks the exit code, not the machine.
            *("--quick", "--only", "llm-proxy", "--baseline", str(baseline), "--max-foreign-cpu", "1"),
            *("--history-dir", str(tmp_path / "history"), "--docs-dir", str(docs)),
            *("--reports-dir", str(tmp_path / "reports")),
        ]
    )

    assert code == bench.REGRESSION_EXIT_CODE
    (stored,) = FileStore(tmp_path / "history").records()
    assert stored.extra["parts"]["llm-proxy"]["ok"] is True
    assert {"cpu_model", "cores", "memory_gib", "cpu_flags", "load_before", "load_after"} <= set(
        stored.machine
    )
    assert stored.fingerprint == calibration.fingerprint(here)
    # The proxy's reference, measured right before its part, in the record and beside each metric.
    assert {"echo_rps", "echo_requests_per_cpu_s"} <= set(stored.calibration)
    cpu = stored.metrics["llm_proxy.json_cpu_ms_per_request"]
    assert cpu.reference_value == stored.calibration["echo_requests_per_cpu_s"]
    assert cpu.foreign_cpu is not None and 0 <= cpu.foreign_cpu <= 1
    assert set(stored.extra["git"]) == {"commit", "short", "dirty"}
    assert "--quick" in stored.extra["command"]
    assert set(stored.metrics) == {name for name in bench_parts.CATALOG if name.startswith("llm_proxy.")}
    assert stored.metrics["llm_proxy.errors"].value == 0
    latest = (docs / "latest.md").read_text()
    # Same machine, and the baseline has no calibration: the raw verdict stands.
    assert "REGRESSION" in latest and "same machine" in latest
    assert "| llm_proxy.json_cpu_ms_per_request |" in (docs / "README.md").read_text()
    assert (tmp_path / "reports" / "llm-proxy.md").exists()
