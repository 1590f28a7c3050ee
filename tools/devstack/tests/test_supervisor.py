"""The devstack's supervisor restarts an exited process like kubelet does: with a back-off that
doubles while it keeps crashing, logged and counted; never a process it does not supervise, and
nothing once it was stopped."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from ragfleet.devstack.processes import ManagedProcess
from ragfleet.devstack.supervisor import Supervisor

pytestmark = pytest.mark.integration


def crashing(tmp_path: Path, name: str = "crasher", code: int = 3) -> ManagedProcess:
    """Exits with ``code`` at once, and writes a line per run to its log."""
    return ManagedProcess(name, ["sh", "-c", f"echo run; exit {code}"], tmp_path / f"{name}.log").start()


def supervise(processes: list[ManagedProcess], **options: float) -> Supervisor:
    return Supervisor(processes, threading.RLock(), {"crasher"}, lambda p: p.again(), **options)


def test_a_crashing_process_is_restarted_with_a_doubling_backoff_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    processes = [crashing(tmp_path)]
    supervisor = supervise(processes, backoff_start_s=0.2, backoff_max_s=0.8, healthy_after_s=60, poll_s=0.02)
    caplog.set_level(logging.WARNING, logger="ragfleet.devstack.supervisor")
    supervisor.start()
    time.sleep(3.5)  # back-offs 0.2, 0.4, 0.8, 0.8, ...: 5 or 6 restarts, not 3.5 / 0.02
    supervisor.stop()
    restarts = supervisor.restarts["crasher"]
    assert 4 <= restarts <= 7, restarts
    assert (tmp_path / "crasher.log").read_text().count("run") == restarts + 1
    exits = [r.getMessage() for r in caplog.records if "exited (code 3)" in r.getMessage()]
    assert "restarting it in 0.2 s (crash 1 in a row" in exits[0], exits
    assert "restarting it in 0.8 s (crash 3 in a row" in exits[2], exits
    assert any(
        f"restarted (pid {processes[0].pid}; restart {restarts})" in r.getMessage() for r in caplog.records
    )


def test_the_backoff_starts_over_once_a_process_ran_long_enough(tmp_path: Path) -> None:
    supervisor = supervise([], backoff_start_s=1, backoff_max_s=30, healthy_after_s=0.3)
    assert [supervisor.backoff_s(n) for n in (1, 2, 3, 5, 6, 9)] == [1, 2, 4, 16, 30, 30]
    long_runner = ManagedProcess("crasher", ["sh", "-c", "sleep 0.5; exit 1"], tmp_path / "l.log").start()
    processes = [long_runner]
    supervisor = Supervisor(
        processes, threading.RLock(), {"crasher"}, lambda p: p.again(),
        backoff_start_s=0.1, backoff_max_s=5, healthy_after_s=0.3, poll_s=0.02,
    ).start()  # fmt: skip
    time.sleep(3)
    supervisor.stop()
    # Each run lasted 0.5 s (> healthy_after_s): every exit is the first in a row, 0.1 s back-off.
    assert supervisor.restarts["crasher"] >= 4, supervisor.restarts


def test_unsupervised_processes_stay_down_and_nothing_restarts_after_stop(tmp_path: Path) -> None:
    other = crashing(tmp_path, name="other")
    mine = crashing(tmp_path)
    processes = [other, mine]
    supervisor = supervise(processes, backoff_start_s=0.05, poll_s=0.02).start()
    time.sleep(0.5)
    supervisor.stop()
    assert processes[0] is other and "other" not in supervisor.restarts
    after_stop = supervisor.restarts["crasher"]
    time.sleep(0.5)
    assert supervisor.restarts["crasher"] == after_stop
    for process in processes:
        process.stop()
