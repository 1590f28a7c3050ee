"""The run's bookkeeping on Locust's events: scrape the services' cache counters when the test starts
and stops, sample throughput and latency over time, and when Locust quits, judge the gates, write the
summary page and set the exit code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from ragfleet.loadtests import report, shapes
from ragfleet.loadtests.gates import GATES_FAILED_EXIT_CODE, EndpointStats, RunSummary, evaluate
from ragfleet.loadtests.options import add_options, gate_config, metrics_urls
from ragfleet.loadtests.promscrape import Scrape, hit_rate, paired, scrape
from ragfleet.loadtests.scenarios import MIXES
from ragfleet.loadtests.users import STREAM_RESTARTS, X_CACHE_SEEN, apply_mix

log = logging.getLogger("ragfleet.loadtests")

SAMPLE_EVERY_S = 2.0


def _options(environment: Environment) -> Any:
    """Locust's parsed options, ours included (always set when run from the command line)."""
    if environment.parsed_options is None:
        raise RuntimeError("the ragfleet load tests run from Locust's command line (parsed options missing)")
    return environment.parsed_options


@dataclass
class Recorder:
    environment: Environment
    started_at: float = 0.0
    metrics_before: Scrape | None = None
    metrics_after: Scrape | None = None
    samples: list[report.Sample] = field(default_factory=list)
    sampler: gevent.Greenlet | None = None
    # Where the cache counters are read, resolved once (the default builds the stack's settings).
    metrics_urls: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.started_at = time.time()
        self.metrics_urls = metrics_urls(_options(self.environment))
        self.metrics_before = scrape(self.metrics_urls)
        self.sampler = gevent.spawn(self._sample_forever)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.kill(block=False)
            self.sampler = None
        self.metrics_after = scrape(self.metrics_urls)

    def _sample_forever(self) -> None:
        options = _options(self.environment)
        cache = options.gate_hit_rate_cache
        while True:
            gevent.sleep(SAMPLE_EVERY_S)
            runner = self.environment.runner
            if runner is None:
                continue
            total = runner.stats.total
            rate = None
            if self.metrics_before is not None:
                pair = paired(self.metrics_before, scrape(self.metrics_urls, timeout_s=1.0))
                rate = hit_rate(*pair, cache).rate if pair is not None else None
            self.samples.append(
                report.Sample(
                    t_s=time.time() - self.started_at,
                    users=runner.user_count,
                    rps=total.current_rps,
                    failures_per_s=total.current_fail_per_sec,
                    p50_ms=float(total.get_current_response_time_percentile(0.5) or 0),
                    p95_ms=float(total.get_current_response_time_percentile(0.95) or 0),
                    p99_ms=float(total.get_current_response_time_percentile(0.99) or 0),
                    hit_rate=rate,
                )
            )

    def summary(self) -> RunSummary:
        stats = self.environment.stats
        assert stats is not None
        total = stats.total
        duration = max(0.0, (total.last_request_timestamp or total.start_time) - total.start_time)
        endpoints = [
            EndpointStats(
                method=entry.method or "",
                name=entry.name,
                requests=entry.num_requests,
                failures=entry.num_failures,
                rps=entry.total_rps,
                p50_ms=float(entry.get_response_time_percentile(0.5) or 0),
                p95_ms=float(entry.get_response_time_percentile(0.95) or 0),
                p99_ms=float(entry.get_response_time_percentile(0.99) or 0),
            )
            for entry in sorted(stats.entries.values(), key=lambda e: (e.name, e.method or ""))
        ]
        options = _options(self.environment)
        urls = self.metrics_urls or metrics_urls(options)  # a run stopped before it started
        rate, error = None, None
        pair = paired(self.metrics_before or {}, self.metrics_after or {})
        if pair is None:
            error = f"could not scrape {', '.join(urls)} both before and after the run (see the log)"
        else:
            rate = hit_rate(*pair, options.gate_hit_rate_cache)
            read_twice = (self.metrics_before or {}).keys() & (self.metrics_after or {}).keys()
            if missed := set(urls) - read_twice:
                log.warning("hit rate read without %s (not reachable)", ", ".join(sorted(missed)))
        return RunSummary(
            endpoints=endpoints,
            total_requests=total.num_requests,
            total_failures=total.num_failures,
            duration_s=duration,
            hit_rate=rate,
            hit_rate_error=error,
        )


_recorders: dict[int, Recorder] = {}


def _recorder(environment: Environment) -> Recorder:
    return _recorders.setdefault(id(environment), Recorder(environment))


def _on_init_parser(parser: Any, **_: Any) -> None:
    add_options(parser)


def _on_init(environment: Environment, **_: Any) -> None:
    # gevent's loop caches its clock, last refreshed before the slow imports of the locustfile; Locust
    # arms the --run-time timer on that stale clock, and the run ended seconds early without this.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    if options is not None and options.mix in MIXES:
        apply_mix(options.mix)


def _on_test_start(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        _recorder(environment).start()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        _recorder(environment).stop()


def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    recorder = _recorder(environment)
    if recorder.metrics_after is None and recorder.started_at:
        recorder.stop()  # quitting without test_stop (Ctrl-C): still judge what ran
    options = _options(environment)
    summary = recorder.summary()
    verdicts = evaluate(summary, gate_config(options))
    for verdict in verdicts:
        log.info(
            "gate %-4s %s: %s (target %s)", verdict.status, verdict.gate, verdict.measured, verdict.target
        )
    failed = [v for v in verdicts if not v.passed]
    if STREAM_RESTARTS:
        log.info("answers restarted on another gateway replica: %s", dict(STREAM_RESTARTS))
    if options.report_dir:
        page = report.write(
            Path(options.report_dir),
            report.RunReport(
                scenario=options.scenario,
                host=environment.host or "",
                command=options.run_command,
                summary=summary,
                verdicts=verdicts,
                samples=recorder.samples,
                steps=list(shapes.STEP_RESULTS),
                x_cache_seen=dict(X_CACHE_SEEN),
            ),
        )
        log.info("report: %s", page)
    if failed:
        log.error("%d of %d gates failed: %s", len(failed), len(verdicts), ", ".join(v.gate for v in failed))
        environment.process_exit_code = GATES_FAILED_EXIT_CODE
    elif environment.process_exit_code is None:
        environment.process_exit_code = 0  # gates passed: the gates decide, not stray errors within budget


_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    events.init_command_line_parser.add_listener(_on_init_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
