"""ragfleet-ops: wait for a release's rollouts, show its status, watch it while a load test runs.

Exit codes: 0 ready/healthy (watch: the command's own exit code), 1 not ready in time, failing or
degraded (metrics-urls: a component without a Ready pod), 2 usage or connection error,
4 (bench-record) a benchmark metric regressed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ragfleet.bench.history import EXIT_REGRESSION, Record, Tolerances
from ragfleet.bench.stores import ConfigMapStore, StoreError
from ragfleet.ops import bench, keys
from ragfleet.ops.cluster import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    PART_OF_LABEL,
    ClusterReader,
    Connection,
    OpsError,
    connect,
)
from ragfleet.ops.metrics_targets import ComponentTargets, metrics_targets
from ragfleet.ops.status_text import not_ready_report, progress_line, status_report
from ragfleet.ops.timeline import CSV_NAME, JSONL_NAME, TimelineRecorder

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the subcommand; SUPPRESS keeps a value
    # given before the subcommand from being reset by the subparser's default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster)",
    )
    common.add_argument(
        "--context", default=argparse.SUPPRESS, help="kubeconfig context (default: the current one)"
    )
    common.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the context's, else default)",
    )
    common.add_argument(
        "--release",
        default=argparse.SUPPRESS,
        help="Helm release: select app.kubernetes.io/instance=RELEASE (default: every app.kubernetes.io/part-of=ragfleet workload)",
    )
    parser = argparse.ArgumentParser(
        prog="ragfleet-ops",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    wait = commands.add_parser(
        "wait", parents=[common], help="wait until every ragfleet rollout is available"
    )
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up (default 300)")
    wait.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")

    status = commands.add_parser(
        "status", parents=[common], help="components, replicas, HPA, VPA, PDB, restarts"
    )
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")

    watch = commands.add_parser(
        "watch", parents=[common], help="record a cluster timeline while a command runs"
    )
    watch.add_argument(
        "--during",
        required=True,
        metavar="COMMAND",
        help='the command to run (a shell command line, e.g. "make loadtest")',
    )
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    watch.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for timeline.jsonl, timeline.csv, timeline.png",
    )

    plot = commands.add_parser("plot", help="draw timeline.png again from a watch directory")
    plot.add_argument("directory", type=Path)

    record = commands.add_parser(
        "bench-record",
        parents=[common],
        help="store a load-test result in the release's benchmark history and compare it with the earlier ones",
    )
    record.add_argument(
        "--summary", type=Path, required=True, help="summary.json of the run (ragfleet.loadtests report)"
    )
    record.add_argument("--configmap", required=True, help="name of the history ConfigMap")
    record.add_argument("--chart-version", required=True, help="chart version the result is kept with")
    record.add_argument("--app-version", default="", help="app version of the release")
    record.add_argument(
        "--tolerance",
        type=float,
        default=0.15,
        help="relative change for the worse that counts as a regression (default 0.15)",
    )
    record.add_argument(
        "--tolerance-for",
        action="append",
        default=[],
        metavar="METRIC=RATIO",
        help='per-metric tolerance, e.g. "failure_ratio=0.5" (repeatable)',
    )
    record.add_argument("--keep", type=int, default=50, help="records kept in the ConfigMap (default 50)")

    urls = commands.add_parser(
        "metrics-urls",
        parents=[common],
        help="print the /metrics URL of every Ready pod of the given components (needs --release)",
    )
    urls.add_argument(
        "--component",
        action="append",
        required=True,
        help="chart component, e.g. gateway (repeatable; retrieval's URLs are printed first)",
    )
    urls.add_argument(
        "--port-name", default="http", help="the container port serving /metrics (default http)"
    )
    urls.add_argument("--path", default="/metrics", help="path of the metrics (default /metrics)")

    create_key = commands.add_parser(
        "create-key",
        parents=[common],
        help="make an admin API key in a Secret the gateway seeds it from (never printed)",
    )
    create_key.add_argument(
        "--secret",
        default="ragfleet-admin-key",
        help="Secret name (chart: credentials.adminKey.existingSecret)",
    )
    create_key.add_argument(
        "--key", default="admin-key", help="key inside the Secret (credentials.adminKey.existingSecretKey)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "plot":
            return _plot(args.directory)
        if args.command == "bench-record":
            # Read the run before connecting: a missing summary is the first thing to report.
            summary = _read_summary(args.summary)
        if args.command == "metrics-urls" and not getattr(args, "release", None):
            raise OpsError("metrics-urls needs --release: the pods of which release?")
        connection = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        reader = ClusterReader(
            connection,
            getattr(args, "namespace", None) or connection.default_namespace,
            getattr(args, "release", None),
        )
        if args.command == "wait":
            return wait(reader, args.timeout, args.interval)
        if args.command == "status":
            return status(reader, args.output)
        if args.command == "bench-record":
            labels = {PART_OF_LABEL: "ragfleet", COMPONENT_LABEL: "benchmark"}
            if getattr(args, "release", None):
                labels[INSTANCE_LABEL] = args.release
            store = ConfigMapStore(
                connection.api_client, reader.namespace, args.configmap, labels, keep=args.keep
            )
            where = f"{reader.namespace}/{getattr(args, 'release', None) or args.configmap}"
            record = bench.new_record(summary, args.chart_version, args.app_version, where=where)
            tolerances = Tolerances(default=args.tolerance, per_metric=_tolerances(args.tolerance_for))
            return bench_record(store, record, tolerances)
        if args.command == "create-key":
            return create_key(connection, reader.namespace, args.secret, args.key)
        if args.command == "metrics-urls":
            # The load-test runner takes the first URL for retrieval's (where it seeds a corpus).
            components = sorted(dict.fromkeys(args.component), key=lambda c: c != "retrieval")
            targets = metrics_targets(
                connection, reader.namespace, args.release, components, args.port_name, args.path
            )
            return metrics_urls(targets, reader.namespace)
        return watch(reader, connection, args.during, args.interval, args.out)
    except OpsError as error:
        print(f"ragfleet-ops: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def create_key(connection: Connection, namespace: str, secret: str, key: str) -> int:
    if keys.ensure_key_secret(connection, namespace, secret, key):
        print(
            f"Created Secret {secret} in namespace {namespace} with a new admin key under {key!r} "
            "(not shown). The gateway seeds it when it starts: restart it if it is already running."
        )
    else:
        print(f"Secret {secret} already exists in namespace {namespace}: kept as it is.")
    return EXIT_OK


def status(reader: ClusterReader, output: str) -> int:
    snapshot = reader.snapshot()
    print(json.dumps(snapshot.to_json(), indent=2) if output == "json" else status_report(snapshot))
    return EXIT_NOT_READY if snapshot.degraded else EXIT_OK


def wait(reader: ClusterReader, timeout: float, interval: float) -> int:
    started = time.monotonic()
    last_line, last_error = "", ""
    snapshot = None
    while True:
        elapsed = time.monotonic() - started
        try:
            snapshot = reader.snapshot()
        except OpsError as error:
            # Unreachable from the start is a usage problem; a blip later (a kind control plane
            # restarting) is waited out like any other not-ready state.
            if snapshot is None and not last_error:
                raise
            last_error = str(error)
            print(f"[{elapsed:5.0f}s] {error}; retrying", file=sys.stderr)
        else:
            if snapshot.components and all(c.is_ready for c in snapshot.components):
                print(
                    f"All {len(snapshot.components)} ragfleet rollouts in namespace {snapshot.namespace} are available after {elapsed:.0f}s."
                )
                return EXIT_OK
            failed = [c for c in snapshot.components if c.rollout_failed]
            if failed:
                names = ", ".join(c.component for c in failed)
                print(
                    not_ready_report(
                        snapshot, f"Rollout failed for {names} in namespace {snapshot.namespace}:"
                    )
                )
                return EXIT_NOT_READY
            line = progress_line(snapshot, elapsed)
            if line.split("]", 1)[1] != last_line.split("]", 1)[-1]:
                print(line, file=sys.stderr, flush=True)
            last_line = line
        if elapsed >= timeout:
            if snapshot is None:
                raise OpsError(f"cannot read the cluster: {last_error}")
            waiting = sum(1 for c in snapshot.components if not c.is_ready)
            headline = f"Timed out after {timeout:.0f}s: {waiting} of {len(snapshot.components)} ragfleet rollouts in namespace {snapshot.namespace} not available ({snapshot.selector})."
            print(not_ready_report(snapshot, headline))
            return EXIT_NOT_READY
        time.sleep(max(0.0, min(interval, timeout - elapsed)))


def bench_record(store: ConfigMapStore, record: Record, tolerances: Tolerances) -> int:
    try:
        history = store.records()
        record, rows = bench.judge(history, record, tolerances)
        key = store.append(record)
    except StoreError as error:
        raise OpsError(str(error)) from None
    print(bench.report(record, rows))
    print(
        f"Stored as {key} in ConfigMap {store.namespace}/{store.name} ({min(len(history) + 1, store.keep)} records)."
    )
    return EXIT_REGRESSION if record.extra["regressions"] else EXIT_OK


def metrics_urls(targets: Sequence[ComponentTargets], namespace: str) -> int:
    """Prints the URLs, one a line, only when every component has one: a script must not
    measure with part of its replicas silently missing."""
    for target in targets:
        if target.skipped:
            print(
                f"ragfleet-ops: {target.component}: {len(target.urls)} pod(s) ready; left out "
                + "; ".join(target.skipped),
                file=sys.stderr,
            )
    empty = [t.component for t in targets if not t.urls]
    if empty:
        print(
            f"ragfleet-ops: no Ready pod of {', '.join(empty)} in namespace {namespace}"
            " (see `ragfleet-ops status`)",
            file=sys.stderr,
        )
        return EXIT_NOT_READY
    for target in targets:
        for url in target.urls:
            print(url)
    return EXIT_OK


def _read_summary(path: Path) -> dict[str, object]:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OpsError(f"cannot read the load-test summary {path}: {error}") from None
    if not isinstance(summary, dict) or "summary" not in summary:
        raise OpsError(f"{path} is not a ragfleet.loadtests summary.json (no 'summary' key)")
    return summary


def _tolerances(specs: Sequence[str]) -> dict[str, float]:
    tolerances = {}
    for spec in specs:
        name, sep, ratio = spec.rpartition("=")
        try:
            tolerances[name] = float(ratio)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise OpsError(f"--tolerance-for {spec!r} should look like METRIC=RATIO")
    return tolerances


def watch(
    reader: ClusterReader,
    connection: Connection,
    command: str | Sequence[str],
    interval: float,
    out: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Runs ``command`` (a shell command line, or an argv list run without a shell, with ``env``
    as its whole environment when given) and records the cluster timeline until it ends."""
    shown = command if isinstance(command, str) else shlex.join(command)
    recorder = TimelineRecorder(
        out,
        {
            "namespace": reader.namespace,
            "selector": reader.selector,
            "command": shown,
            "interval": interval,
            "source": connection.source,
        },
    )
    print(
        f"ragfleet-ops: watching {reader.namespace} every {interval:g}s while running: {shown}",
        file=sys.stderr,
    )
    process = subprocess.Popen(command, shell=isinstance(command, str), env=env)
    exit_code = EXIT_USAGE
    try:
        while True:
            _sample(reader, recorder)
            if process.poll() is not None:
                break
            try:
                process.wait(timeout=interval)
            except subprocess.TimeoutExpired:
                continue
            # One last sample after the command ended: the state it left behind.
            _sample(reader, recorder)
            break
    except KeyboardInterrupt:
        # The command got the same SIGINT (same process group); let it finish writing its results.
        process.wait()
    finally:
        if process.returncode is not None:
            exit_code = process.returncode if process.returncode >= 0 else 128 - process.returncode
        recorder.finish(exit_code)
    written = [JSONL_NAME, CSV_NAME]
    png = _plot_quietly(out)
    if png:
        written.append(png.name)
    print(
        f"ragfleet-ops: {recorder.samples} samples; wrote {', '.join(written)} to {out}; command exit code {exit_code}",
        file=sys.stderr,
    )
    return exit_code


def _sample(reader: ClusterReader, recorder: TimelineRecorder) -> None:
    try:
        snapshot = reader.snapshot()
    except OpsError as error:
        # The load test matters more than one missed sample: note it and go on.
        recorder.record_error(str(error))
        print(f"[{recorder.elapsed:5.0f}s] sample failed: {error}", file=sys.stderr)
        return
    for event in recorder.record(snapshot):
        print(
            f"[{recorder.elapsed:5.0f}s] {event['kind']} {event['component']}: {event['message']}",
            file=sys.stderr,
        )


def _plot_quietly(out: Path) -> Path | None:
    from ragfleet.ops.plot import PlotUnavailableError, plot_timeline

    try:
        return plot_timeline(out)
    except PlotUnavailableError as error:
        print(f"ragfleet-ops: {error}; skipped the PNG", file=sys.stderr)
        return None


def _plot(directory: Path) -> int:
    from ragfleet.ops.plot import PlotUnavailableError, plot_timeline

    if not (directory / JSONL_NAME).exists():
        raise OpsError(
            f"{directory / JSONL_NAME} not found: run `ragfleet-ops watch --out {shlex.quote(str(directory))}` first"
        )
    try:
        print(plot_timeline(directory))
    except PlotUnavailableError as error:
        raise OpsError(str(error)) from None
    return EXIT_OK
