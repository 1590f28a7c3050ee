"""Figures measured in rounds: every measure once per round, one after the other, and the median kept.

A 2 vCPU VM's speed drifts over seconds (two quiet runs of the retrieval benchmark on one machine,
minutes apart, same code, measured single passes 25-37 % apart). A figure measured in one pass
catches whichever stretch it ran in; measured in short rounds interleaved with the others, a slow
stretch lands in one round of each figure and the median drops it. A calibration reference measured
as one of the measures sees the same machine as the figures it normalises.

Every measure of a round runs for the same time (``rate_for``, ``ROUND_S``), not a fixed count of
operations: with fixed counts the quick profile's rounds were ~40 ms of work for some figures and
a second for others, so the short ones sampled the machine's drift at another scale than the
reference beside them (two quick runs on one machine: store figures +30-44 % while the interleaved
hnswlib reference fell 10 %).
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

ROUNDS = 5
ROUND_S = 1.0  # seconds each measure runs per round (at least: the last pass is finished)


def rate_for(seconds: float, run_once: Callable[[], int]) -> float:
    """Operations per second of ``run_once`` (one pass over a prepared workload, returning how many
    operations it did), repeated until ``seconds`` have passed; at least one pass."""
    done, started = 0, time.perf_counter()
    while True:
        done += run_once()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


async def rate_for_async(seconds: float, run_once: Callable[[], Awaitable[int]]) -> float:
    """``rate_for`` for a coroutine pass (the store's async path)."""
    done, started = 0, time.perf_counter()
    while True:
        done += await run_once()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


@dataclass(frozen=True)
class Rounds:
    """Per measure, the median of its rounds and their spread ((max - min) / median)."""

    median: dict[str, float]
    spread: dict[str, float]


async def median_of_rounds(
    measures: Mapping[str, Callable[[], float | Awaitable[float]]], rounds: int = ROUNDS
) -> Rounds:
    """Run every measure ``rounds`` times, one round of each after the other, and keep the medians.
    A measure may be a coroutine function (the store's async path)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            value = measure()
            samples[name].append(await value if inspect.isawaitable(value) else value)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    spreads = {
        name: (max(values) - min(values)) / medians[name] if medians[name] else 0.0
        for name, values in samples.items()
    }
    return Rounds(medians, spreads)
