"""The comparison rule: like with like (portable, same machine, normalised), against the median of the
last runs, within a noise band from the history's own spread, never on a busy machine; and the
stores' round trip."""

from __future__ import annotations

import json
from pathlib import Path

from ragfleet.bench.history import Metric, Record, Tolerances, compare, noise_band, regressions, table
from ragfleet.bench.stores import FileStore, record_key

QPS = "loadtest.qps"
RECALL = "retrieval.recall"
CPU = "proxy.cpu_ms"
SEARCH = "retrieval.vector_qps"


def run(
    when: str,
    *,
    qps: float,
    cpu_ms: float = 2.0,
    recall: float = 0.99,
    echo: float = 2000.0,
    machine: str = "m1",
    foreign_cpu: float | None = None,
) -> Record:
    return Record(
        started_at=f"2026-12-01T{when}:00Z",
        label=when,
        metrics={
            QPS: Metric(qps, "req/s", "higher", reference="echo_rps", foreign_cpu=foreign_cpu),
            CPU: Metric(cpu_ms, "ms", "lower", reference="echo_rps", foreign_cpu=foreign_cpu),
            RECALL: Metric(recall, "ratio", "higher", portable=True, foreign_cpu=foreign_cpu),
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


# Five quiet runs on machine A, a few percent apart, as two back-to-back runs on one machine are.
JITTER = (1.00, 0.97, 1.03, 0.98, 1.02)


def machine_a_history() -> list[Record]:
    return [
        run(f"0{i}:00", qps=1000 * j, cpu_ms=2.0 / j, echo=2000 * j, machine="A")
        for i, j in enumerate(JITTER)
    ]


def test_machine_b_twice_as_slow_on_every_calibrated_metric_flags_nothing() -> None:
    slow = run("12:00", qps=500, cpu_ms=4.0, echo=1000, machine="B")

    rows = compare(slow, machine_a_history(), Tolerances(0.15))

    assert {r.name: (r.basis, r.status) for r in rows} == {
        QPS: ("normalised", "ok"),
        CPU: ("normalised", "ok"),
        RECALL: ("portable", "ok"),
    }
    qps = next(r for r in rows if r.name == QPS)
    assert qps.raw_change == -0.5 and qps.baseline_runs == 5  # shown raw, judged normalised


def test_a_30_percent_regression_in_one_metric_with_the_calibration_unchanged_is_flagged() -> None:
    same_machine = run("12:00", qps=700, echo=2000, machine="A")
    other_machine = run("12:00", qps=350, cpu_ms=4.0, echo=1000, machine="B")  # 2x slower, and 30 % more

    for current, basis in ((same_machine, "same machine"), (other_machine, "normalised")):
        rows = {r.name: r for r in compare(current, machine_a_history(), Tolerances(0.15))}
        assert (rows[QPS].basis, rows[QPS].status) == (basis, "regression")
        assert (rows[CPU].status, rows[RECALL].status) == ("ok", "ok")


def test_a_run_on_a_busy_machine_is_not_comparable_rather_than_a_regression() -> None:
    busy = run("12:00", qps=500, cpu_ms=4.0, recall=0.5, echo=2000, machine="A", foreign_cpu=0.6)

    rows = {r.name: r for r in compare(busy, machine_a_history(), Tolerances(0.15))}

    assert (rows[QPS].basis, rows[QPS].status) == ("busy machine", "not comparable")
    assert "60 %" in rows[QPS].reason and rows[QPS].raw_change == -0.5  # still shown
    assert (rows[RECALL].basis, rows[RECALL].status) == ("portable", "regression")  # load cannot explain it
    assert "busy machine" in table(rows.values())
    # Judged when asked to be, whatever the load.
    forced = {
        r.name: r.status for r in compare(busy, machine_a_history(), Tolerances(0.15, max_foreign_cpu=1))
    }
    assert forced[QPS] == "regression"


def test_a_run_on_a_busy_machine_is_never_a_baseline() -> None:
    quiet_history = machine_a_history()
    busy_and_fast = run("11:00", qps=3000, echo=2000, machine="A", foreign_cpu=0.9)

    rows = {
        r.name: r
        for r in compare(run("12:00", qps=1000, machine="A"), [*quiet_history, busy_and_fast], Tolerances())
    }

    assert rows[QPS].status == "ok" and "11:00" not in rows[QPS].baseline_label


def test_the_baseline_is_the_median_of_the_last_like_for_like_runs() -> None:
    odd_one = run("03:30", qps=400, machine="A")  # one starved run among quiet ones
    other_profile = Record(**{**run("04:30", qps=5000, machine="A").__dict__, "profile": "quick"})
    history = [run("00:30", qps=9999, machine="A"), *machine_a_history(), odd_one, other_profile]

    rows = {r.name: r for r in compare(run("12:00", qps=980, machine="A"), history, Tolerances(0.15))}

    # The last five quiet runs of the full profile: 0.97, 1.03, 0.98, (the odd 0.4), 1.02 -> median 980.
    assert rows[QPS].baseline == 980 and rows[QPS].baseline_runs == 5
    assert rows[QPS].baseline_label == "median of 5: 01:00 … 04:00" and rows[QPS].status == "ok"


def test_the_noise_band_is_the_history_spread_with_the_tolerance_as_floor() -> None:
    assert noise_band([100.0, 101.0], 0.15) == 0.15  # two runs: no spread known, the floor
    assert noise_band([100.0, 101.0, 99.0, 100.0], 0.15) == 0.15  # quiet history: the floor
    wide = noise_band([100.0, 80.0, 120.0, 90.0, 110.0], 0.15)  # a history this machine swings in
    assert 0.4 < wide < 0.5
    noisy = [run(f"0{i}:00", qps=q, machine="A") for i, q in enumerate((1000, 800, 1200, 900, 1100))]
    quiet = machine_a_history()
    thirty_percent_down = run("12:00", qps=700, machine="A")

    assert {r.name: r.status for r in compare(thirty_percent_down, noisy, Tolerances(0.15))}[QPS] == "ok"
    assert {r.name: r.status for r in compare(thirty_percent_down, quiet, Tolerances(0.15))}[
        QPS
    ] == "regression"


def test_machines_with_other_vector_extensions_are_shown_not_judged_against_a_simd_reference() -> None:
    def on(flags: list[str], when: str, qps: float, echo: float, hnsw: float) -> Record:
        record = run(when, qps=qps, echo=echo, machine="+".join(flags))
        record.metrics[SEARCH] = Metric(qps, "q/s", "higher", reference="hnsw_qps")
        record.calibration["hnsw_qps"] = hnsw
        record.machine["cpu_flags"] = flags
        return record

    avx2 = on(["avx2", "fma"], "10:00", qps=1000, echo=2000, hnsw=2000)
    # Same code: the SIMD reference sped up 2x, the search 1.3x (normalised: -35 %); the echo app
    # (no vector code) 1.3x like the service's request path.
    avx512 = on(["avx2", "avx512f", "fma"], "11:00", qps=1300, echo=2600, hnsw=4000)

    rows = {r.name: r for r in compare(avx512, [avx2], Tolerances(0.15))}
    assert (rows[SEARCH].basis, rows[SEARCH].status) == ("normalised", "not comparable")
    assert "avx512f" in rows[SEARCH].reason
    assert rows[SEARCH].normalised_change is not None and rows[SEARCH].normalised_change < -0.3  # shown
    # A figure normalised by the echo app is judged across the line: here it held, then it did not.
    assert (rows[QPS].basis, rows[QPS].status) == ("normalised", "ok")
    slower_code = on(["avx2", "avx512f", "fma"], "12:00", qps=700, echo=2600, hnsw=4000)
    assert verdicts(slower_code, avx2)[QPS] == ("normalised", "regression")
    assert rows[RECALL].status == "ok"  # portable figures are judged as ever
    # A machine that names no flags (older records) keeps the normalised comparison.
    unnamed = on([], "12:00", qps=1300, echo=2600, hnsw=4000)
    del unnamed.machine["cpu_flags"]
    assert verdicts(unnamed, avx2)[SEARCH] == ("normalised", "regression")
