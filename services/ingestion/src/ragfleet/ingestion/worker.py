"""``python -m ragfleet.ingestion.worker``: the Celery worker (same image as the API, another command)."""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from ragfleet.ingestion.config import IngestionSettings

log = logging.getLogger("ragfleet.ingestion.worker")

_PR_SET_PDEATHSIG = 1
LANE_ENV = "RAGFLEET_INGESTION_WORKER_LANE"


def start_metrics_server(settings: IngestionSettings) -> None:
    """Serve the worker's Prometheus metrics, summed over its pool processes.

    Pool processes are forked, so they write their samples to files in a shared directory only if
    the instruments were created in multiprocess mode. Importing the common metrics module loads
    prometheus_client before the directory is known, so its value class is chosen again here;
    the Celery app (and with it the tasks and their instruments) is imported only afterwards.
    """
    from prometheus_client import values

    from ragfleet.common.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(settings.metrics_dir)
    values.ValueClass = values.get_value_class()
    if settings.worker_metrics_port == 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.worker_metrics_port, addr=settings.host, registry=registry)


def attach_metrics_dir() -> None:
    """The small lane writes its samples into the bulk worker's directory (inherited in the
    environment prepare_multiprocess_dir exported), so the one metrics server reports both lanes."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


class SmallLane:
    """The small-document lane: a second Celery worker, started and watched by the first.

    Celery gives a worker one pool for all its queues, so no pool process can be kept free for
    small documents inside one worker: two long documents on a two-process pool made a small one
    sent after them wait for the first to end (about a minute). The lane is a worker of its own
    on the small queue (``small_lane_concurrency`` processes), while the bulk worker takes both
    queues. Started from here, not as a second container or Deployment, so that every way of
    running the worker — ``make run``, the test stacks, the chart's pod — has the lane with the
    same command and the same durability: both workers ack late, a task of either that dies with
    its process is delivered again, and a SIGKILL of the process group (the supervisor's, kubelet's)
    ends both. The child is watched from a thread and started again with a back-off if it exits;
    it also dies with that thread (``PR_SET_PDEATHSIG``), so a SIGKILLed parent leaves nothing.
    """

    def __init__(self, settings: IngestionSettings) -> None:
        self._settings = settings
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # terminate() runs in a signal handler too
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._watch, name="small-lane", daemon=True)

    def start(self) -> SmallLane:
        self._thread.start()
        return self

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    return
                started = time.monotonic()
                argv = [sys.executable, "-m", "ragfleet.ingestion.worker", "--parent-pid", str(os.getpid())]
                # A setting of the child's whole process tree: its pool processes read their
                # settings from the environment when they boot.
                self._process = subprocess.Popen(argv, env={**os.environ, LANE_ENV: "small"})
            code = self._process.wait()
            if self._stopping.is_set():
                return
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
            log.error("the small-lane worker exited (%s); starting it again in %.0fs", code, backoff)
            self._stopping.wait(backoff)

    def terminate(self) -> None:
        """Ask the lane to shut down warm (its running task finishes), without waiting."""
        with self._lock:
            self._stopping.set()
            if self._process is not None and self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> None:
        self.terminate()
        process = self._process
        if process is None:
            return
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()  # its unacknowledged task goes back to the queue


def _die_with_parent(parent_pid: int) -> None:
    """The small lane ends when the thread that started it does, even by SIGKILL of its process."""
    if not parent_pid:  # started by hand: nothing to die with
        return
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the line above
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ragfleet.ingestion.worker")
    parser.add_argument("--parent-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = IngestionSettings()
    lane: SmallLane | None = None
    if settings.worker_lane == "small":
        _die_with_parent(args.parent_pid)
        attach_metrics_dir()
        queues = [settings.small_queue, settings.control_queue]
        concurrency, name = settings.small_lane_concurrency, "ingestion-small"
    else:
        start_metrics_server(settings)
        # The bulk worker takes small documents too: when it has a free process, they need not wait.
        queues = [settings.queue_name, settings.small_queue, settings.control_queue]
        concurrency, name = settings.worker_concurrency, "ingestion"
    from celery.signals import worker_shutting_down

    from ragfleet.ingestion.celery_app import celery_app

    if settings.worker_lane == "bulk" and settings.small_lane_concurrency:
        lane = started = SmallLane(settings).start()
        # SIGTERM reaches this process alone in a pod: the lane shuts down warm with it.
        worker_shutting_down.connect(lambda **_: started.terminate(), weak=False)
    try:
        celery_app.worker_main(
            [
                "worker",
                f"--loglevel={settings.log_level}",
                f"--concurrency={concurrency}",
                f"--hostname={name}@{settings.replica_name or socket.gethostname()}",
                f"--queues={','.join(queues)}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        if lane is not None:
            lane.wait(timeout_s=60)


if __name__ == "__main__":
    main()
