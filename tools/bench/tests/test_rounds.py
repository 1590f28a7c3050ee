"""Rounds: interleaved, medians that drop one slow stretch, spreads that show it."""

from __future__ import annotations

import asyncio

import pytest

from ragfleet.bench import rounds
from ragfleet.bench.rounds import median_of_rounds


def test_measures_run_round_robin_and_one_slow_round_is_dropped_by_the_median() -> None:
    calls: list[str] = []
    # The third round ran while the machine was slow: both figures dip in it.
    fast = iter([100.0, 104.0, 40.0, 98.0, 102.0])
    reference = iter([10.0, 10.0, 4.0, 10.0, 10.0])

    def figure() -> float:
        calls.append("figure")
        return next(fast)

    async def reference_workload() -> float:  # a coroutine function, as the store's async path is
        calls.append("reference")
        return next(reference)

    measured = asyncio.run(median_of_rounds({"figure": figure, "reference": reference_workload}))

    assert calls == ["figure", "reference"] * 5
    assert measured.median == {"figure": 100.0, "reference": 10.0}
    assert measured.spread["figure"] == pytest.approx(0.64)
    assert measured.spread["reference"] == pytest.approx(0.6)


def test_no_rounds_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(median_of_rounds({"figure": lambda: 1.0}, rounds=0))


class FakeClock:
    """perf_counter for ragfleet.bench.rounds: each pass of the workload advances it by 0.25 s."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_measure_repeats_its_pass_until_its_time_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(rounds.time, "perf_counter", clock)
    passes: list[int] = []

    def one_pass() -> int:  # 10 operations in 0.25 s
        clock.now += 0.25
        passes.append(10)
        return 10

    assert rounds.rate_for(1.0, one_pass) == pytest.approx(40.0)
    assert len(passes) == 4  # 1.0 s of passes, not one pass of however long it takes


def test_a_pass_longer_than_the_round_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(rounds.time, "perf_counter", clock)

    async def slow_pass() -> int:  # the async path: 64 operations in 2 s
        clock.now += 2.0
        return 64

    assert asyncio.run(rounds.rate_for_async(1.0, slow_pass)) == pytest.approx(32.0)
