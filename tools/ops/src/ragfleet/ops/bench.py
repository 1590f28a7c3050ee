"""In-cluster benchmark history: each load-test result is kept with the chart version that produced
it, in one ConfigMap of the release, and compared with the previous result.

The chart's benchmark Job runs the Locust suite against its own release, then
``ragfleet-ops bench-record``: read the run's ``summary.json`` (written by ``ragfleet.loadtests``),
turn it into a few metrics with a direction, compare them with the newest stored record, store
the new record (the oldest ones are dropped past ``keep``), and exit ``EXIT_REGRESSION`` when a
metric got worse than the tolerance allows. The Job then fails, which kube-state-metrics exports
as ``kube_job_status_failed`` and the chart's PrometheusRule alerts on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ragfleet.ops.cluster import REQUEST_TIMEOUT, Connection, OpsError, api_message

EXIT_REGRESSION = 4  # distinct from the load test's own codes (1 request errors, 2 crash, 3 gates)
RECORD_KEY = re.compile(r"^\d{8}T\d{6}Z-.+\.json$")
# Conflicting writers (two Jobs at once) re-read and retry this many times.
WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class Metric:
    value: float
    unit: str
    higher_is_better: bool
    # Changes smaller than this (in the metric's unit) are noise whatever the relative change:
    # a failure ratio going from 0.0001 to 0.0002 doubles, and means nothing.
    noise_floor: float = 0.0


@dataclass(frozen=True)
class BenchRecord:
    recorded_at: str
    chart_version: str
    app_version: str
    scenario: str
    gates_passed: bool
    metrics: dict[str, Metric]
    regressions: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The ConfigMap data key: sorts by time, names the chart version."""
        stamp = datetime.fromisoformat(self.recorded_at).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{_key_safe(self.chart_version)}.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BenchRecord:
        data = json.loads(text)
        metrics = {name: Metric(**m) for name, m in data.pop("metrics").items()}
        return cls(metrics=metrics, **data)


@dataclass(frozen=True)
class Comparison:
    metric: str
    previous: float | None
    current: float | None
    unit: str
    change: float | None  # relative, current vs previous; None when either side is missing or 0
    regressed: bool

    def line(self) -> str:
        def shown(value: float | None) -> str:
            return "-" if value is None else f"{value:,.4g}"

        change = "" if self.change is None else f"{self.change:+.1%}"
        verdict = "REGRESSION" if self.regressed else ""
        return f"{self.metric:<44} {shown(self.previous):>12} {shown(self.current):>12} {self.unit:<6} {change:>8}  {verdict}"


def metrics_from_summary(summary: Mapping[str, Any]) -> dict[str, Metric]:
    """The compared metrics of one load-test ``summary.json``: throughput, failures, cache hit
    rate, and p95 latency and throughput per endpoint."""
    run = summary["summary"]
    requests, duration = run["total_requests"], run["duration_s"]
    metrics = {
        "requests_per_s": Metric(requests / duration if duration else 0.0, "req/s", True),
        "failure_ratio": Metric(
            run["total_failures"] / requests if requests else 1.0, "ratio", False, noise_floor=0.005
        ),
    }
    hit = run.get("hit_rate")
    if hit and hit.get("lookups"):
        metrics["cache_hit_rate"] = Metric(
            (hit["l1_hits"] + hit["l2_hits"]) / hit["lookups"], "ratio", True, noise_floor=0.02
        )
    for endpoint in run["endpoints"]:
        label = f"{endpoint['method']} {endpoint['name']}"
        metrics[f"p95 {label}"] = Metric(float(endpoint["p95_ms"]), "ms", False, noise_floor=5.0)
        metrics[f"rps {label}"] = Metric(float(endpoint["rps"]), "req/s", True, noise_floor=1.0)
    return metrics


Verdict = Literal["ok", "regression", "improvement"]


def verdict(
    value: float, baseline: float, higher_is_better: bool, relative: float, floor: float = 0.0
) -> Verdict:
    """The one rule both benchmark histories use (this one in the cluster, ragfleet.loadtests'
    bench_history on a machine): a move from the baseline counts when it exceeds ``relative`` of
    the baseline and ``floor`` in the metric's unit (noise on a value near zero); the wrong way
    is a regression, the right way an improvement."""
    worse_by = baseline - value if higher_is_better else value - baseline
    allowed = max(relative * abs(baseline), floor)
    if worse_by > allowed:
        return "regression"
    if -worse_by > allowed:
        return "improvement"
    return "ok"


def compare(
    previous: BenchRecord | None,
    current: BenchRecord,
    tolerance: float,
    tolerances: Mapping[str, float] | None = None,
) -> list[Comparison]:
    """Every metric of either record; a metric regressed when it moved the wrong way by more than
    its tolerance (relative; ``tolerances`` overrides per metric name) and by more than its noise
    floor. A metric only one side has is shown, never a regression: scenarios change."""
    if previous is None:
        return [
            Comparison(name, None, m.value, m.unit, None, False)
            for name, m in sorted(current.metrics.items())
        ]
    comparisons = []
    for name in sorted(previous.metrics.keys() | current.metrics.keys()):
        old, new = previous.metrics.get(name), current.metrics.get(name)
        unit = (new or old).unit  # type: ignore[union-attr]
        if old is None or new is None:
            previous_value = old.value if old else None
            current_value = new.value if new else None
            comparisons.append(Comparison(name, previous_value, current_value, unit, None, False))
            continue
        change = (new.value - old.value) / old.value if old.value else None
        relative = (tolerances or {}).get(name, tolerance)
        regressed = (
            verdict(new.value, old.value, new.higher_is_better, relative, new.noise_floor) == "regression"
        )
        comparisons.append(Comparison(name, old.value, new.value, unit, change, regressed))
    return comparisons


def new_record(
    summary: Mapping[str, Any], chart_version: str, app_version: str, now: datetime | None = None
) -> BenchRecord:
    return BenchRecord(
        recorded_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        chart_version=chart_version,
        app_version=app_version,
        scenario=str(summary.get("scenario", "?")),
        gates_passed=bool(summary.get("passed", False)),
        metrics=metrics_from_summary(summary),
    )


class HistoryStore:
    """The records in one ConfigMap (one data key per record), read and written through the API.

    The Job's Role allows get/update on this ConfigMap and create in the namespace, nothing else.
    """

    def __init__(self, connection: Connection, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        self.namespace, self.name, self.labels = namespace, name, dict(labels)
        self._core = client.CoreV1Api(connection.api_client)

    def records(self) -> list[BenchRecord]:
        """Oldest first."""
        return _records_of(self._read())

    def append(self, record: BenchRecord, keep: int) -> None:
        """Stores ``record``, dropping the oldest records past ``keep``."""
        for _attempt in range(WRITE_ATTEMPTS):
            configmap = self._read()
            data = {k: v for k, v in ((configmap.data if configmap else None) or {}).items()}
            data[record.key] = record.to_json()
            for stale in sorted(k for k in data if RECORD_KEY.match(k))[:-keep]:
                del data[stale]
            try:
                self._write(configmap, data)
            except ApiException as error:
                if error.status == 409:  # another writer got there first: read again
                    continue
                raise OpsError(
                    f"cannot write ConfigMap {self.namespace}/{self.name}: {error.status} {api_message(error)}"
                ) from None
            return
        raise OpsError(f"ConfigMap {self.namespace}/{self.name} kept changing under us; gave up")

    def _read(self) -> client.V1ConfigMap | None:
        try:
            return self._core.read_namespaced_config_map(
                self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise OpsError(
                f"cannot read ConfigMap {self.namespace}/{self.name}: {error.status} {api_message(error)}"
            ) from None

    def _write(self, existing: client.V1ConfigMap | None, data: dict[str, str]) -> None:
        if existing is None:
            body = client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=self.name, labels=self.labels), data=data
            )
            self._core.create_namespaced_config_map(self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
            return
        # The resourceVersion read above makes the update conditional (409 if it changed).
        existing.data = data
        self._core.replace_namespaced_config_map(
            self.name, self.namespace, existing, _request_timeout=REQUEST_TIMEOUT
        )


def _records_of(configmap: client.V1ConfigMap | None) -> list[BenchRecord]:
    data = (configmap.data if configmap else None) or {}
    return [BenchRecord.from_json(data[key]) for key in sorted(data) if RECORD_KEY.match(key)]


def _key_safe(text: str) -> str:
    """ConfigMap keys allow [-._a-zA-Z0-9]; a version like 1.2.0+build.1 keeps its meaning."""
    return re.sub(r"[^-._a-zA-Z0-9]", "_", text)


def report(previous: BenchRecord | None, current: BenchRecord, comparisons: list[Comparison]) -> str:
    against = (
        f"chart {previous.chart_version} (app {previous.app_version}) recorded {previous.recorded_at}"
        if previous
        else "nothing: this is the first record"
    )
    regressed = [c for c in comparisons if c.regressed]
    lines = [
        f"Benchmark {current.scenario} of chart {current.chart_version} (app {current.app_version}), "
        f"gates {'passed' if current.gates_passed else 'FAILED'}; compared with {against}.",
        "",
        f"{'metric':<44} {'previous':>12} {'current':>12} {'unit':<6} {'change':>8}",
        *(c.line() for c in comparisons),
        "",
        f"{len(regressed)} regression(s): {', '.join(c.metric for c in regressed)}"
        if regressed
        else "No regression beyond the tolerance.",
    ]
    return "\n".join(lines)
