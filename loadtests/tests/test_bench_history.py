"""History and comparison rules of the benchmark suite: baseline choice, tolerances, verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragfleet.loadtests import bench_history as history
from ragfleet.loadtests.bench_history import Metric, Record, Tolerances

MACHINE = {"cpu_model": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "hostname": "vm"}
QUICK = {"name": "quick", "retrieval_n": 5000}


def record(
    started_at: str,
    metrics: dict[str, tuple[float, str]],
    *,
    machine: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    commit: str = "abc1234",
) -> Record:
    """A record with metrics given as name -> (value, better)."""
    return Record(
        None,
        {
            "started_at": started_at,
            "git": {"commit": commit * 5, "short": commit, "dirty": False},
            "machine": machine or MACHINE,
            "profile": profile or QUICK,
            "metrics": {
                name: {"value": value, "unit": "q/s", "better": better}
                for name, (value, better) in metrics.items()
            },
        },
    )


def verdicts(current: Record, baseline: Record, tolerances: Tolerances | None = None) -> dict[str, str]:
    rows = history.compare(current, history.pick_baseline(current, [baseline]), tolerances or Tolerances())
    return {row.name: row.status for row in rows}


def test_a_drop_beyond_tolerance_is_a_regression_within_it_is_not() -> None:
    before = record("2026-11-20T10:00:00Z", {"qps": (1000, "higher"), "p95": (100, "lower")})
    assert verdicts(
        record("2026-11-21T10:00:00Z", {"qps": (860, "higher"), "p95": (114, "lower")}), before
    ) == {
        "qps": "ok",
        "p95": "ok",
    }
    assert verdicts(
        record("2026-11-21T10:00:00Z", {"qps": (840, "higher"), "p95": (116, "lower")}), before
    ) == {
        "qps": "regression",
        "p95": "regression",
    }


def test_a_gain_beyond_tolerance_is_an_improvement_not_a_regression() -> None:
    before = record("2026-11-20T10:00:00Z", {"qps": (1000, "higher"), "p95": (100, "lower")})
    now = record("2026-11-21T10:00:00Z", {"qps": (1500, "higher"), "p95": (50, "lower")})
    assert verdicts(now, before) == {"qps": "improvement", "p95": "improvement"}
    assert history.regressions(history.compare(now, history.pick_baseline(now, [before]), Tolerances())) == []


def test_a_missing_metric_is_reported_and_a_new_one_has_no_baseline() -> None:
    before = record("2026-11-20T10:00:00Z", {"old": (5, "higher"), "kept": (10, "higher")})
    now = record("2026-11-21T10:00:00Z", {"kept": (10, "higher"), "added": (3, "lower")})
    rows = {r.name: r for r in history.compare(now, history.pick_baseline(now, [before]), Tolerances())}
    assert {name: r.status for name, r in rows.items()} == {"kept": "ok", "added": "new", "old": "missing"}
    assert rows["old"].current is None and rows["old"].baseline == 5
    assert rows["added"].baseline is None and rows["added"].change is None


def test_runs_from_another_machine_class_or_profile_are_not_a_baseline() -> None:
    other_cpu = record("2026-11-20T10:00:00Z", {"qps": (9999, "higher")}, machine={**MACHINE, "cores": 16})
    other_profile = record("2026-11-20T11:00:00Z", {"qps": (9999, "higher")}, profile={"name": "full"})
    now = record("2026-11-21T10:00:00Z", {"qps": (100, "higher")})
    baseline = history.pick_baseline(now, [other_cpu, other_profile])
    assert baseline.values == {}
    assert "first baseline" in baseline.notes[0]
    assert [r.status for r in history.compare(now, baseline, Tolerances())] == ["new"]


def test_another_hostname_is_the_same_machine_class() -> None:
    before = record(
        "2026-11-20T10:00:00Z", {"qps": (1000, "higher")}, machine={**MACHINE, "hostname": "ci-7"}
    )
    assert verdicts(record("2026-11-21T10:00:00Z", {"qps": (500, "higher")}), before) == {"qps": "regression"}


def test_an_explicit_baseline_from_another_machine_is_compared_with_a_warning() -> None:
    elsewhere = record("2026-11-20T10:00:00Z", {"qps": (2000, "higher")}, machine={**MACHINE, "cores": 16})
    now = record("2026-11-21T10:00:00Z", {"qps": (1000, "higher")})
    baseline = history.pick_baseline(now, [], explicit=elsewhere)
    assert any("another machine class" in note for note in baseline.notes)
    assert [r.status for r in history.compare(now, baseline, Tolerances())] == ["regression"]


def test_each_metric_is_compared_with_the_newest_earlier_run_that_measured_it() -> None:
    oldest = record(
        "2026-11-18T10:00:00Z", {"qps": (100, "higher"), "recall": (0.9, "higher")}, commit="aaaaaaa"
    )
    newer = record("2026-11-19T10:00:00Z", {"qps": (200, "higher")}, commit="bbbbbbb")  # a partial run
    later = record("2026-11-23T10:00:00Z", {"qps": (999, "higher")}, commit="ddddddd")  # after "now"
    now = record("2026-11-20T10:00:00Z", {"qps": (205, "higher"), "recall": (0.9, "higher")})
    baseline = history.pick_baseline(now, [later, newer, oldest])
    assert {name: (m.value, r.short_commit) for name, (m, r) in baseline.values.items()} == {
        "qps": (200, "bbbbbbb"),
        "recall": (0.9, "aaaaaaa"),
    }


def test_tolerance_overrides_by_pattern_and_an_absolute_floor_for_zero_baselines() -> None:
    tolerances = Tolerances(
        default=0.15,
        per_metric={"retrieval.recall": 0.01},
        overrides=(("loadtest.*", 0.5), ("loadtest.p95", 0.1)),
        absolute={"loadtest.failures": 0.005},
    )
    assert tolerances.relative("retrieval.qps") == 0.15
    assert tolerances.relative("retrieval.recall") == 0.01
    assert tolerances.relative("loadtest.qps") == 0.5
    assert tolerances.relative("loadtest.p95") == 0.1  # the last matching override wins

    failures = Metric(0.004, "ratio", "lower")
    assert history.judge(failures, 0.0, 0.15, tolerances.absolute_floor("loadtest.failures")) == "ok"
    assert history.judge(Metric(0.01, "ratio", "lower"), 0.0, 0.15, 0.005) == "regression"
    assert history.judge(Metric(0.0, "ratio", "lower"), 0.0, 0.15) == "ok"


def test_records_round_trip_through_the_history_directory(tmp_path: Path) -> None:
    first = record("2026-11-20T10:00:00Z", {"qps": (1000, "higher")}, commit="1111111")
    second = record("2026-11-21T09:30:05Z", {"qps": (1100, "higher")}, commit="2222222")
    for r in (second, first):
        history.save(tmp_path, r.data)
    (tmp_path / "notes.json").write_text("not a record")
    (tmp_path / "other.json").write_text(json.dumps({"no": "started_at"}))

    loaded = history.load_history(tmp_path)
    assert [r.path.name for r in loaded if r.path] == [
        "20261120T100000Z-1111111.json",
        "20261121T093005Z-2222222.json",
    ]
    assert loaded[1].metrics == {"qps": Metric(1100, "q/s", "higher")}
    assert history.load_history(tmp_path / "absent") == []


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [(0.98765, "ratio", "0.9877"), (12345.6, "q/s", "12,346"), (42.42, "ms", "42.4"), (0.512, "ms", "0.512")],
)
def test_table_numbers_are_readable(value: float, unit: str, shown: str) -> None:
    now = Record(
        None,
        {
            "started_at": "2026-11-21T10:00:00Z",
            "metrics": {"m": {"value": value, "unit": unit, "better": "higher"}},
        },
    )
    text = history.table(history.compare(now, history.Baseline({}, []), Tolerances()))
    assert f"| m | {unit} | higher | — | {shown} | — | ±15 % | new |" in text
