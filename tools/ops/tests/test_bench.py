"""Benchmark history: the comparison rules, and `bench-record` writing the history ConfigMap
through the fake Kubernetes API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ragfleet.bench.history import EXIT_REGRESSION, Metric, Record, Row, Tolerances
from ragfleet.bench.stores import record_key
from ragfleet.ops.bench import judge, metrics_from_summary, new_record

CONFIGMAP = "ragfleet-benchmark-history"


def summary(
    *, rps: float = 400.0, p95_ms: float = 120.0, failures: int = 0, hits: int = 900
) -> dict[str, Any]:
    """A ragfleet.loadtests summary.json: 60 s, one search endpoint."""
    requests = int(rps * 60)
    return {
        "scenario": "search",
        "passed": True,
        "summary": {
            "endpoints": [
                {
                    "method": "POST",
                    "name": "/v1/search",
                    "requests": requests,
                    "failures": failures,
                    "rps": rps,
                    "p50_ms": p95_ms / 2,
                    "p95_ms": p95_ms,
                    "p99_ms": p95_ms * 2,
                }
            ],
            "total_requests": requests,
            "total_failures": failures,
            "duration_s": 60.0,
            "hit_rate": {"cache": "search", "lookups": 1000, "l1_hits": hits - 100, "l2_hits": 100},
            "hit_rate_error": None,
        },
    }


def record(**kwargs: float) -> Record:
    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    return new_record(summary(**kwargs), "0.1.0", "0.1.0", where="ragfleet/ragfleet", now=now)  # type: ignore[arg-type]


def compare(
    previous: Record | None, current: Record, tolerance: float, per_metric: dict[str, float] | None = None
) -> list[Row]:
    return judge([previous] if previous else [], current, Tolerances(tolerance, per_metric or {}))[1]


def regressed(rows: list[Row]) -> set[str]:
    return {r.name for r in rows if r.status == "regression"}


def test_metrics_of_a_summary_have_a_direction() -> None:
    metrics = metrics_from_summary(summary(failures=24))

    assert metrics["requests_per_s"] == Metric(400.0, "req/s", "higher")
    assert (
        metrics["failure_ratio"].value == pytest.approx(0.001) and metrics["failure_ratio"].better == "lower"
    )
    assert metrics["cache_hit_rate"].value == pytest.approx(0.9)
    assert metrics["p95 POST /v1/search"].value == 120.0
    assert metrics["rps POST /v1/search"].better == "higher"


def test_worse_beyond_the_tolerance_is_a_regression_better_is_not() -> None:
    slower = compare(record(), record(p95_ms=150.0, rps=300.0), tolerance=0.15)
    assert regressed(slower) == {"p95 POST /v1/search", "requests_per_s", "rps POST /v1/search"}

    faster = compare(record(), record(p95_ms=60.0, rps=800.0), tolerance=0.15)
    assert regressed(faster) == set()
    within = compare(record(), record(p95_ms=135.0, rps=350.0), tolerance=0.15)
    assert regressed(within) == set()


def test_noise_floor_and_per_metric_tolerance() -> None:
    # 0 -> 0.1 % failures is +inf relative, but under the 0.5 % floor: noise.
    assert regressed(compare(record(), record(failures=24), tolerance=0.15)) == set()
    assert regressed(compare(record(), record(failures=600), tolerance=0.15)) == {"failure_ratio"}
    # A looser tolerance for one metric only.
    comparisons = compare(record(), record(p95_ms=150.0), 0.15, {"p95 POST /v1/search": 0.5})
    assert regressed(comparisons) == set()


def test_first_record_and_metrics_on_one_side_only_never_regress() -> None:
    first = compare(None, record(), tolerance=0.15)
    assert regressed(first) == set() and all(r.baseline is None and r.status == "new" for r in first)

    renamed = record()
    renamed.metrics["p95 POST /v1/chat"] = renamed.metrics.pop("p95 POST /v1/search")
    comparisons = {r.name: r for r in compare(record(), renamed, tolerance=0.15)}
    assert comparisons["p95 POST /v1/chat"].status == "new"
    assert regressed(list(comparisons.values())) == set()


def test_record_round_trips_through_json() -> None:
    original = record()
    assert Record.from_json(json.loads(json.dumps(original.to_json()))) == original
    assert record_key(original) == "20261121T100000Z-0.1.0.json"


def _bench_record(fake_cluster, run_cli, tmp_path: Path, chart: str, **kwargs: Any) -> tuple[int, str, str]:
    path = tmp_path / f"summary-{chart}.json"
    path.write_text(json.dumps(summary(**kwargs)))
    return run_cli(
        *fake_cluster.args(
            "bench-record",
            "--release",
            "ragfleet",
            "--summary",
            str(path),
            "--configmap",
            CONFIGMAP,
            "--chart-version",
            chart,
            "--app-version",
            "0.1.0",
            "--keep",
            "2",
        )
    )


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_bench_record_keeps_history_in_a_configmap_and_flags_a_regression(
    fake_cluster, run_cli, tmp_path: Path
) -> None:
    code, out, _ = _bench_record(fake_cluster, run_cli, tmp_path, "0.1.0")
    assert code == 0, out
    assert "compared with nothing: this is the first record" in out

    code, out, _ = _bench_record(fake_cluster, run_cli, tmp_path, "0.2.0", p95_ms=80.0)
    assert code == 0, out
    assert "compared with chart(s) 0.1.0" in out and "No regression" in out

    code, out, _ = _bench_record(fake_cluster, run_cli, tmp_path, "0.3.0", p95_ms=200.0)
    assert code == EXIT_REGRESSION
    line = next(line for line in out.splitlines() if line.startswith("| p95 POST /v1/search |"))
    # The median of the two stored runs (120 and 80 ms), not the last one alone.
    assert "100 (median of 2: 0.1.0 … 0.2.0)" in line and "| 200 |" in line and "+100.0 %" in line
    assert "REGRESSION" in line
    assert "1 regression(s): p95 POST /v1/search" in out

    stored = fake_cluster.server.configmaps[("ragfleet", CONFIGMAP)]
    assert stored["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "ragfleet",
        "app.kubernetes.io/component": "benchmark",
        "app.kubernetes.io/instance": "ragfleet",
    }
    # --keep 2: the first record was dropped; each is kept with its chart version and verdict.
    records = [Record.from_json(json.loads(v)) for _, v in sorted(stored["data"].items())]
    assert [r.label for r in records] == ["0.2.0", "0.3.0"]
    assert (
        records[-1].extra["regressions"] == ["p95 POST /v1/search"] and records[0].extra["regressions"] == []
    )
    methods = [r.split()[0] for r in fake_cluster.server.requests if "/configmaps" in r]
    assert methods.count("POST") == 1 and methods.count("PUT") == 2


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_bench_record_without_a_summary_is_a_usage_error(fake_cluster, run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli(
        *fake_cluster.args(
            "bench-record",
            "--summary",
            str(tmp_path / "missing.json"),
            "--configmap",
            CONFIGMAP,
            "--chart-version",
            "0.1.0",
        )
    )

    assert code == 2 and "cannot read the load-test summary" in err
    assert not fake_cluster.server.configmaps


@pytest.mark.integration  # the fake Kubernetes API listens on loopback
def test_the_fake_api_refuses_a_stale_configmap_update(fake_cluster) -> None:
    server = fake_cluster.server
    created = server.answer(
        "POST",
        "/api/v1/namespaces/ragfleet/configmaps",
        f"Bearer {server.token}",
        json.dumps({"metadata": {"name": "history"}, "data": {}}).encode(),
    )[1]
    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "0"}}

    code, body = server.answer(
        "PUT",
        "/api/v1/namespaces/ragfleet/configmaps/history",
        f"Bearer {server.token}",
        json.dumps(stale).encode(),
    )

    assert code == 409 and body["reason"] == "Conflict"
