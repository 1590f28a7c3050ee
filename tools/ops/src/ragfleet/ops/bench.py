"""In-cluster benchmark history: each load-test result kept with the chart version that produced it,
in one ConfigMap of the release, and compared with the earlier results.

The chart's benchmark Job runs the Locust suite against its own release, then
``ragfleet-ops bench-record``: read the run's ``summary.json`` (written by ``ragfleet.loadtests``),
turn it into a few metrics with a direction, compare them with the stored records of the same
scenario (the median of the last few, within a noise band from their own spread: ragfleet.bench's
rule), store the new record (the oldest ones are dropped past ``keep``), and exit
``EXIT_REGRESSION`` when a metric got worse than its band allows. The Job then fails, which kube-state-metrics exports as
``kube_job_status_failed`` and the chart's PrometheusRule alerts on.

Records, the comparison rule and the ConfigMap store are ragfleet.bench's, shared with ``make bench``.
A release measured in its own cluster counts as one machine (its fingerprint names the namespace and
release): nodes change less often than charts, and the records say which chart produced them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ragfleet.bench.history import Metric, Record, Row, Tolerances, compare, regressions, table


def metrics_from_summary(summary: Mapping[str, Any]) -> dict[str, Metric]:
    """The compared metrics of one load-test ``summary.json``: throughput, failures, cache hit
    rate, and p95 latency and throughput per endpoint."""
    run = summary["summary"]
    requests, duration = run["total_requests"], run["duration_s"]
    metrics = {
        "requests_per_s": Metric(requests / duration if duration else 0.0, "req/s", "higher"),
        "failure_ratio": Metric(
            run["total_failures"] / requests if requests else 1.0,
            "ratio",
            "lower",
            portable=True,
            noise_floor=0.005,
        ),
    }
    hit = run.get("hit_rate")
    if hit and hit.get("lookups"):
        metrics["cache_hit_rate"] = Metric(
            (hit["l1_hits"] + hit["l2_hits"]) / hit["lookups"],
            "ratio",
            "higher",
            portable=True,
            noise_floor=0.02,
        )
    for endpoint in run["endpoints"]:
        label = f"{endpoint['method']} {endpoint['name']}"
        metrics[f"p95 {label}"] = Metric(float(endpoint["p95_ms"]), "ms", "lower", noise_floor=5.0)
        metrics[f"rps {label}"] = Metric(float(endpoint["rps"]), "req/s", "higher", noise_floor=1.0)
    return metrics


def new_record(
    summary: Mapping[str, Any],
    chart_version: str,
    app_version: str,
    *,
    where: str,
    now: datetime | None = None,
) -> Record:
    """``where`` (namespace/release) is the record's machine fingerprint."""
    return Record(
        started_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        label=chart_version,
        metrics=metrics_from_summary(summary),
        fingerprint=f"cluster:{where}",
        profile=str(summary.get("scenario", "?")),
        extra={
            "chart_version": chart_version,
            "app_version": app_version,
            "gates_passed": bool(summary.get("passed", False)),
            "regressions": [],
        },
    )


def judge(history: list[Record], current: Record, tolerances: Tolerances) -> tuple[Record, list[Row]]:
    """The rows against the stored history, and the current record carrying its regressions."""
    rows = compare(current, history, tolerances)
    flagged = [r.name for r in regressions(rows)]
    return replace(current, extra={**current.extra, "regressions": flagged}), rows


def report(current: Record, rows: list[Row]) -> str:
    labels = sorted({r.baseline_label for r in rows if r.baseline_label})
    against = f"chart(s) {'; '.join(labels)}" if labels else "nothing: this is the first record"
    flagged = regressions(rows)
    gates = "passed" if current.extra.get("gates_passed") else "FAILED"
    return "\n".join(
        [
            f"Benchmark {current.profile} of chart {current.label} (app {current.extra.get('app_version', '?')}), "
            f"gates {gates}; compared with {against}.",
            "",
            table(rows),
            "",
            f"{len(flagged)} regression(s): {', '.join(r.name for r in flagged)}"
            if flagged
            else "No regression beyond the tolerance.",
        ]
    )
