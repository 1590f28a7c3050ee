"""Rounds: interleaved, medians that drop one slow stretch, spreads that show it."""

from __future__ import annotations

import asyncio

import pytest

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

    rounds = asyncio.run(median_of_rounds({"figure": figure, "reference": reference_workload}))

    assert calls == ["figure", "reference"] * 5
    assert rounds.median == {"figure": 100.0, "reference": 10.0}
    assert rounds.spread["figure"] == pytest.approx(0.64)
    assert rounds.spread["reference"] == pytest.approx(0.6)


def test_no_rounds_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(median_of_rounds({"figure": lambda: 1.0}, rounds=0))
