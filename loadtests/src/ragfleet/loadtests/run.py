"""Run one scenario headless and write its report; the exit code is the gates' verdict.

    python -m ragfleet.loadtests.run --scenario search --duration 60s --users 50 \
        --host http://127.0.0.1:8080 --report-dir reports/search [--start-stack] [LOCUST OPTIONS...]

Options this runner does not know go to Locust unchanged, so every gate option works here
(``--gate-qps 1000000``, ``--gate-p95-ms '*=500'``, ...; see ``docs/loadtests.md``).
With ``--start-stack`` it starts the one-machine stack itself (as ``make run`` does) and stops it
afterwards. The API key is ``--api-key``, else $RAGFLEET_LOADTEST_API_KEY (a Job's Secret, kept off
the process list), else a key this run creates in the gateway's Redis.
With ``--watch`` (a Kubernetes target) it records the cluster timeline with ``ragfleet-ops watch``
while Locust runs, and the report embeds it; ``--cluster-timeline DIR`` embeds one recorded
outside (``ragfleet-ops watch --during "make loadtest ..."``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ragfleet.loadtests import corpus
from ragfleet.loadtests.options import ENV_PREFIX, stack_metrics_urls
from ragfleet.loadtests.scenarios import MIXES, SCENARIO_OPTIONS, SCENARIOS

log = logging.getLogger("ragfleet.loadtests.run")

HERE = Path(__file__).parent
LOCUSTFILE = HERE / "locustfile.py"
RAMPFILE = HERE / "ramp.py"
DEFAULT_HOST = "http://127.0.0.1:8080"
CLUSTER_DIR = "cluster"  # where --watch writes the timeline, inside the report directory
# The variable Locust's --api-key reads (options.py): the key reaches Locust through it, and a
# caller can hand it to this runner the same way instead of on the command line.
API_KEY_ENV = f"{ENV_PREFIX}API_KEY"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ragfleet.loadtests.run",
        description="Run a ragfleet load-test scenario headless; exit non-zero if a gate fails.",
        allow_abbrev=False,  # unknown options go to Locust; never guess them as ours
        epilog="Unknown options are passed to Locust (e.g. --gate-qps 1000000, --processes 2).",
    )
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="search")
    p.add_argument("--mix", choices=sorted(MIXES), default="normal", help="weights for --scenario mixed")
    p.add_argument("--collection", default="default", help="collection searched and uploaded to")
    p.add_argument("--duration", default="60s", help="Locust --run-time, e.g. 30s, 5m")
    p.add_argument("--users", type=int, default=50)
    p.add_argument(
        "--spawn-rate", type=float, default=None, help="users started per second (default: all in 1 s)"
    )
    p.add_argument("--host", default=None, help=f"gateway or ingress URL (default {DEFAULT_HOST})")
    p.add_argument("--report-dir", type=Path, default=None, help="default reports/<scenario>-<timestamp>")
    p.add_argument("--ramp", action="store_true", help="step-ramp until p95 breaks (--step-* options)")
    p.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"use this key instead of creating one (default ${API_KEY_ENV})",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="the gateway's state Redis, where a key is created (default: the make run stack's, found by the keys CLI)",
    )
    p.add_argument(
        "--metrics-url",
        action="append",
        default=None,
        help="/metrics of retrieval and of each gateway replica (repeatable; default: make run's ports)",
    )
    p.add_argument("--start-stack", action="store_true", help="start the one-machine stack for this run")
    p.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first run the scenario this long with every gate off (fills the caches), report in <report-dir>/warmup",
    )
    p.add_argument(
        "--echo-seconds",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="search scenario: first load the echo app (--echo-app) this long with the same Locust and "
        "users, for the ratio gate (--gate-echo-ratio); 0 turns it off",
    )
    p.add_argument(
        "--echo-app",
        choices=("fastapi", "bare"),
        default="fastapi",
        help="the ratio gate's reference: fastapi (the issue's: a FastAPI app validating the JSON it is "
        "sent, on the services' server stack) or bare (no framework: the server stack's floor)",
    )
    cluster = p.add_argument_group("cluster timeline (Kubernetes targets)")
    cluster.add_argument(
        "--watch", action="store_true", help="record the cluster with ragfleet-ops watch while Locust runs"
    )
    cluster.add_argument("--watch-interval", type=float, default=5.0, help="seconds between samples")
    cluster.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )
    cluster.add_argument("--kube-context", default=None, help="kubeconfig context (default: the current one)")
    cluster.add_argument(
        "--namespace", default=None, help="namespace of the release (default: the context's)"
    )
    cluster.add_argument("--release", default=None, help="Helm release (default: every ragfleet workload)")
    cluster.add_argument(
        "--cluster-timeline",
        type=Path,
        default=None,
        metavar="DIR",
        help="embed a timeline recorded by `ragfleet-ops watch --out DIR` in the report",
    )
    p.add_argument(
        "--seed-corpus",
        metavar="RETRIEVAL_URL",
        default=None,
        help="first write a small corpus into the collection through retrieval's internal API",
    )
    return p


def create_api_key(redis_url: str | None, scenario: str) -> str:
    """A key for the run, through the gateway's own CLI; its rate limit is high enough not to be the test."""
    argv = [
        sys.executable,
        "-m",
        "ragfleet.gateway.keys",
        "create",
        "--tenant",
        "default",
        "--collections",
        "*",
        "--name",
        f"loadtest-{scenario}",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--json",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=_child_env({"RAGFLEET_GATEWAY_STATE_REDIS_URL": redis_url} if redis_url else {}),
        timeout=60,
    )
    if done.returncode != 0:
        # Not the URL: it carries the Redis password.
        raise RuntimeError(f"could not create an API key: {done.stderr.strip()}")
    return str(json.loads(done.stdout)["api_key"])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The child inherits our environment (PATH, the virtualenv) plus the variables it is given."""
    return {**os.environ, **extra}


# user:password@ in a URL (the Redis URL carries the stack's password).
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def shown_command(argv: Sequence[str]) -> str:
    """The command as the report shows it, with the API key's value and URL credentials elided."""
    shown: list[str] = []
    for arg in argv:
        if shown and shown[-1] == "--api-key":
            arg = "***"
        elif arg.startswith("--api-key="):
            arg = "--api-key=***"
        shown.append(_URL_CREDENTIALS.sub("***@", arg))
    return shlex.join(["python", "-m", "ragfleet.loadtests.run", *shown])


@contextlib.contextmanager
def maybe_stack(start: bool) -> Iterator[tuple[str, str, list[str]] | None]:
    """With --start-stack: (url, redis url, metrics urls: retrieval first) of a fresh stack, stopped afterwards."""
    if not start:
        yield None
        return
    from ragfleet.devstack.settings import DevstackSettings
    from ragfleet.devstack.stack import Stack

    stack = Stack(DevstackSettings())
    log.info("starting the stack (Redis, services, worker, gateways, NGINX)...")
    stack.start()
    try:
        yield stack.url, stack.redis_url, stack_metrics_urls(stack.settings)
    finally:
        log.info("stopping the stack")
        stack.stop()


# Appended after the caller's options for the runs that only prepare the measured one (the last
# occurrence of an option wins).
GATES_OFF = [
    *("--gate-hit-rate", "off", "--gate-qps", "off", "--gate-failure-ratio", "off"),
    *("--gate-p95-ms", "off", "--gate-p99-ms", "off", "--gate-ttft-p95-ms", "off"),
    *("--gate-echo-ratio", "off"),
]
ECHO_USER = "EchoUser"
ECHO_WORKERS = 2  # as many processes as make run has gateway replicas, one per core here


def locust_argv(
    args: argparse.Namespace,
    host: str,
    metrics_urls: list[str],
    passthrough: Sequence[str],
    *,
    duration: str | None = None,
    report_dir: Path | None = None,
    users: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Locust's command line for the scenario; the keyword arguments make the preparing runs."""
    report_dir = report_dir or args.report_dir
    duration = duration or args.duration
    files = f"{LOCUSTFILE},{RAMPFILE}" if args.ramp else str(LOCUSTFILE)
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        files,
        "--headless",
        "--host",
        host,
        "--run-time",
        duration,
        "--csv",
        str(report_dir / "locust"),
        "--csv-full-history",
        "--html",
        str(report_dir / "locust.html"),
        "--only-summary",
        "--scenario",
        args.scenario,
        "--mix",
        args.mix,
        "--collection",
        args.collection,
        "--report-dir",
        str(report_dir),
        "--run-command",
        shown_command(sys.argv[1:] if args.command_line is None else args.command_line),
    ]
    if not args.ramp:
        argv += ["--users", str(args.users), "--spawn-rate", str(args.spawn_rate or args.users)]
    for url in metrics_urls:
        argv += ["--metrics-url", url]
    implied = SCENARIO_OPTIONS.get(args.scenario, [])
    return [*argv, *implied, *passthrough, *extra, *(users or SCENARIOS[args.scenario])]


def successful_rps(report_dir: Path, endpoint: str = "/v1/search") -> float:
    """Successful req/s on ``endpoint*`` of a finished run, from its summary.json (as the QPS gate counts)."""
    summary = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))["summary"]
    matched = [e for e in summary["endpoints"] if e["name"].startswith(endpoint)]
    successes = sum(e["requests"] - e["failures"] for e in matched)
    return successes / summary["duration_s"] if summary["duration_s"] > 0 else 0.0


def measure_echo(
    args: argparse.Namespace, metrics_urls: list[str], passthrough: Sequence[str], env: dict[str, str]
) -> float:
    """The echo app's req/s under this Locust, with the scenario's users, bodies and headers."""
    from ragfleet.bench.calibration import serve_echo

    report_dir = args.report_dir / "echo"
    with serve_echo(workers=ECHO_WORKERS, framework=args.echo_app) as (url, _):
        command = locust_argv(
            args, url, metrics_urls, passthrough, duration=f"{args.echo_seconds:g}s",
            report_dir=report_dir, users=[ECHO_USER], extra=GATES_OFF,
        )  # fmt: skip
        log.info(
            "echo reference (%s echo app, %g s, %d workers): %s",
            args.echo_app, args.echo_seconds, ECHO_WORKERS, shlex.join(command),
        )  # fmt: skip
        subprocess.run(command, env=env)
    rps = successful_rps(report_dir)
    if rps <= 0:
        raise RuntimeError(f"the echo reference answered nothing (see {report_dir})")
    log.info("echo reference: %.0f req/s", rps)
    return rps


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args, passthrough = parser().parse_known_args(argv)
    args.command_line = list(argv) if argv is not None else None
    if args.report_dir is None:
        args.report_dir = Path("reports") / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    args.report_dir.mkdir(parents=True, exist_ok=True)
    with maybe_stack(args.start_stack) as stack:
        host = stack[0] if stack else args.host or DEFAULT_HOST
        redis_url = stack[1] if stack else args.redis_url
        metrics_urls = stack[2] if stack else args.metrics_url or stack_metrics_urls()
        if args.seed_corpus or args.start_stack:
            retrieval = args.seed_corpus or metrics_urls[0].removesuffix("/metrics")
            log.info("seeded %d chunks into %s", corpus.seed(retrieval, args.collection), retrieval)
        api_key = args.api_key or create_api_key(redis_url, args.scenario)
        # The key travels in the environment, not on a command line anyone can read in `ps`.
        env = _child_env({API_KEY_ENV: api_key})
        if args.warmup > 0:
            warmup = locust_argv(
                args, host, metrics_urls, passthrough, duration=f"{args.warmup:g}s",
                report_dir=args.report_dir / "warmup", extra=GATES_OFF,
            )  # fmt: skip
            log.info("warm-up (%g s, gates off): %s", args.warmup, shlex.join(warmup))
            subprocess.run(warmup, env=env)
        extra: list[str] = []
        if args.scenario == "search" and args.echo_seconds > 0 and not args.ramp:
            # Right before the measured run, so both see the machine in the same state.
            extra = ["--echo-rps", f"{measure_echo(args, metrics_urls, passthrough, env):.1f}"]
            extra += ["--echo-app", args.echo_app]
        command = locust_argv(args, host, metrics_urls, passthrough, extra=extra)
        log.info("running: %s", shlex.join(command))
        if args.watch:
            exit_code = run_watched(args, command, env)
        else:
            exit_code = subprocess.run(command, env=env).returncode
    timeline = args.report_dir / CLUSTER_DIR if args.watch else args.cluster_timeline
    if timeline is not None and (timeline / "timeline.jsonl").is_file():
        from ragfleet.loadtests.cluster_report import add_cluster_timeline

        log.info("cluster timeline: %s", add_cluster_timeline(args.report_dir, timeline))
    elif timeline is not None:
        log.error("no cluster timeline in %s: the report has none", timeline)
    log.info("report: %s (exit code %d)", args.report_dir / "summary.md", exit_code)
    return exit_code


def run_watched(args: argparse.Namespace, command: list[str], env: dict[str, str]) -> int:
    """Locust under `ragfleet-ops watch`: the cluster timeline goes to <report dir>/cluster."""
    from ragfleet.ops import cli as ops
    from ragfleet.ops.cluster import ClusterReader, OpsError, connect

    try:
        connection = connect(args.kubeconfig, args.kube_context)
    except OpsError as error:
        log.error("--watch: %s", error)
        return 2
    reader = ClusterReader(connection, args.namespace or connection.default_namespace, args.release)
    return ops.watch(reader, connection, command, args.watch_interval, args.report_dir / CLUSTER_DIR, env)


if __name__ == "__main__":
    sys.exit(main())
