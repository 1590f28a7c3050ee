"""A step ramp that finds where p95 breaks: add users step by step until p95 passes a limit.

Each step holds ``--step-users`` more users for ``--step-seconds``; at its end the p95 of the last
window (Locust's ~10 s sliding window, so steps should be at least that long) is recorded with the
throughput. The first step whose p95 exceeds ``--step-p95-ms`` ends the run; the step before it is
the capacity the report quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

from locust import LoadTestShape


@dataclass(frozen=True)
class StepResult:
    users: int
    rps: float
    p95_ms: float
    broke: bool


STEP_RESULTS: list[StepResult] = []


def capacity(results: list[StepResult]) -> StepResult | None:
    """The last step that held its p95, if any."""
    held = [r for r in results if not r.broke]
    return held[-1] if held else None


class StepRampShape(LoadTestShape):
    use_common_options = True  # keep -t/--run-time as the upper bound of the whole ramp

    def __init__(self) -> None:
        super().__init__()
        self.steps_checked = 0

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None or self.runner.environment.parsed_options is None:
            return None
        options = self.runner.environment.parsed_options
        run_time = self.get_run_time()
        if options.run_time and run_time >= options.run_time:
            return None
        step = int(run_time // options.step_seconds)
        if step > self.steps_checked:
            self.steps_checked = step
            stats = self.runner.stats.total
            users = step * options.step_users
            p95 = float(stats.get_current_response_time_percentile(0.95) or 0)
            broke = p95 > options.step_p95_ms
            STEP_RESULTS.append(StepResult(users, round(stats.current_rps, 1), p95, broke))
            if broke:
                return None
        users = (step + 1) * options.step_users
        if users > options.step_max_users:
            return None
        return users, float(options.step_users)
