"""The comparison rule: like with like (portable, same machine, normalised), or no verdict; and the stores' round trip."""

from __future__ import annotations

import json
from pathlib import Path

from ragfleet.bench.history import Metric, Record, Tolerances, compare, regressions, table
from ragfleet.bench.stores import FileStore, record_key

QPS = "loadtest.qps"
RECALL = "retrieval.recall"
CPU = "proxy.cpu_ms"


def run(
    when: str,
    *,
    qps: float,
    cpu_ms: float = 2.0,
    recall: float = 0.99,
    echo: float = 2000.0,
    machine: str = "m1",
) -> Record:
    return Record(
        started_at=f"2026-12-01T{when}:00Z",
        label=when,
        metrics={
            QPS: Metric(qps, "req/s", "higher", reference="echo_rps"),
            CPU: Metric(cpu_ms, "ms", "lower", reference="echo_rps"),
            RECALL: Metric(recall, "ratio", "higher", portable=True),
        },
        fingerprint=machine,
        calibration={"echo_rps": echo},
        profile="full",
    )


def verdicts(current: Record, *history: Record) -> dict[str, tuple[str, str]]:
    return {r.name: (r.basis, r.status) for r in compare(current, history, Tolerances(0.15))}


def test_a_busier_shared_cpu_is_explained_by_the_calibration_on_the_same_machine() -> None:
    quiet = run("10:00", qps=1000, cpu_ms=2.0, echo=2000)
    busy = run("11:00", qps=600, cpu_ms=3.3, echo=1200)  # everything 40 % slower, the reference too

    assert verdicts(busy, quiet) == {
        QPS: ("same machine", "ok"),
        CPU: ("same machine", "ok"),
        RECALL: ("portable", "ok"),
    }


def test_a_real_slowdown_on_the_same_machine_is_flagged() -> None:
    before = run("10:00", qps=1000, echo=2000)
    after = run("11:00", qps=600, echo=2000)  # the reference held, the figure did not

    assert verdicts(after, before)[QPS] == ("same machine", "regression")


def test_another_machine_is_judged_on_normalised_figures_only() -> None:
    fast = run("10:00", qps=2000, cpu_ms=1.0, echo=4000, machine="avx512")
    slow_same_code = run("11:00", qps=1000, cpu_ms=2.0, echo=2000, machine="avx2")
    slow_worse_code = run("12:00", qps=600, cpu_ms=2.0, echo=2000, machine="avx2")

    assert verdicts(slow_same_code, fast)[QPS] == ("normalised", "ok")
    assert verdicts(slow_same_code, fast)[CPU] == ("normalised", "ok")
    assert verdicts(slow_worse_code, fast)[QPS] == ("normalised", "regression")


def test_without_a_calibration_another_machine_is_not_compared_but_portable_figures_are() -> None:
    old = Record("2026-11-21T10:00:00Z", "old", {**run("x", qps=2000).metrics}, profile="full")
    rows = {r.name: r for r in compare(run("11:00", qps=500, recall=0.5), [old], Tolerances(0.15))}

    assert (rows[QPS].basis, rows[QPS].status) == ("none", "not comparable")
    assert (rows[RECALL].basis, rows[RECALL].status) == ("portable", "regression")
    assert rows[QPS].raw_change is not None and rows[QPS].raw_change < 0  # still shown


def test_the_baseline_is_the_newest_earlier_run_on_the_same_machine_when_there_is_one() -> None:
    same_old = run("09:00", qps=1000)
    other_newer = run("10:00", qps=5000, echo=10000, machine="m2")
    rows = compare(run("11:00", qps=1000), [other_newer, same_old], Tolerances(0.15))

    assert {r.baseline_label for r in rows} == {"09:00"} and not regressions(rows)


def test_records_round_trip_through_the_file_store_and_read_the_older_schemas(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    record = run("10:00", qps=1000)
    path = store.append(record)
    (tmp_path / "broken.json").write_text("{")
    legacy = {  # make bench's schema 1
        "schema": 1,
        "started_at": "2026-11-21T19:11:45Z",
        "git": {"short": "ed24a62", "dirty": False},
        "machine": {"cpu_model": "AMD EPYC", "cores": 2},
        "profile": {"name": "full"},
        "metrics": {QPS: {"value": 1.0, "unit": "req/s", "better": "higher"}},
    }
    (tmp_path / "20261121T191145Z-ed24a62.json").write_text(json.dumps(legacy))

    first, second = store.records()

    assert path.endswith(record_key(record)) and second == record
    assert (first.label, first.profile, first.fingerprint, first.metrics[QPS].value) == (
        "ed24a62",
        "full",
        "",
        1.0,
    )


def test_the_table_shows_raw_and_normalised_change_and_the_basis() -> None:
    rows = compare(run("11:00", qps=600, echo=1200), [run("10:00", qps=1000, echo=2000)], Tolerances(0.15))

    line = next(line for line in table(rows).splitlines() if line.startswith(f"| {QPS} |"))
    assert "-40.0 %" in line and "+0.0 %" in line and "same machine" in line and "| ok |" in line
