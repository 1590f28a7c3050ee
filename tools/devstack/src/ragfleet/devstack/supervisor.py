"""Restarts a stack's processes that exit, the way kubelet restarts a crashed container.

In a cluster a Celery worker that dies is started again by kubelet (restartPolicy Always, with a
crash-loop back-off); ``make run`` had nothing of the kind, so one crash left the stack without a
worker and every accepted document waiting. Here an exited process is started again with the same
command, after a back-off that doubles with each crash in a row (``backoff_start_s`` up to
``backoff_max_s``) and starts over once the process has run ``healthy_after_s``. Each restart is
logged with the exit code and counted in ``restarts``; the process's log file keeps what it said
before it died (it is appended to, never truncated).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ragfleet.devstack.processes import ManagedProcess

log = logging.getLogger("ragfleet.devstack.supervisor")


@dataclass
class _Crashes:
    in_a_row: int = 0
    started_at: float = field(default_factory=time.monotonic)
    exited_at: float | None = None


class Supervisor:
    """Watches ``processes`` (a list the stack owns, changed only under ``lock``) for the names in
    ``names``; ``restart(process)`` starts a replacement and returns it."""

    def __init__(
        self,
        processes: list[ManagedProcess],
        lock: threading.RLock,
        names: Collection[str],
        restart: Callable[[ManagedProcess], ManagedProcess],
        *,
        backoff_start_s: float = 1.0,
        backoff_max_s: float = 30.0,
        healthy_after_s: float = 60.0,
        poll_s: float = 0.2,
    ) -> None:
        self.processes = processes
        self.lock = lock
        self.names = frozenset(names)
        self._restart = restart
        self.backoff_start_s = backoff_start_s
        self.backoff_max_s = backoff_max_s
        self.healthy_after_s = healthy_after_s
        self.poll_s = poll_s
        self.restarts: dict[str, int] = {}
        self._crashes: dict[str, _Crashes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devstack-supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Before the stack stops its processes: nothing is restarted from here on."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def supervises(self, name: str) -> bool:
        return name in self.names

    def started(self, process: ManagedProcess) -> None:
        """The stack (re)started ``process`` itself: a fresh run, not a crash."""
        crashes = self._crashes.setdefault(process.name, _Crashes())
        crashes.started_at, crashes.exited_at = time.monotonic(), None

    def backoff_s(self, in_a_row: int) -> float:
        """Before the restart that follows ``in_a_row`` crashes in a row (the first one: 1)."""
        return float(min(self.backoff_max_s, self.backoff_start_s * 2 ** max(0, in_a_row - 1)))

    def check(self) -> None:
        """One look at every supervised process (the thread calls it every ``poll_s``)."""
        now = time.monotonic()
        with self.lock:
            for index, process in enumerate(self.processes):
                if process.name not in self.names or process.alive() or self._stop.is_set():
                    continue
                crashes = self._crashes.setdefault(process.name, _Crashes())
                if crashes.exited_at is None:
                    crashes.exited_at = now
                    ran_s = now - crashes.started_at
                    crashes.in_a_row = 1 if ran_s >= self.healthy_after_s else crashes.in_a_row + 1
                    log.warning(
                        "%s exited (code %s) after %.1f s; restarting it in %.1f s (crash %d in a row, log %s)",
                        process.name, process.popen.returncode if process.popen else None, ran_s,
                        self.backoff_s(crashes.in_a_row), crashes.in_a_row, process.log_path,
                    )  # fmt: skip
                if now - crashes.exited_at < self.backoff_s(crashes.in_a_row):
                    continue
                try:
                    replacement = self._restart(process)
                except OSError:  # could not even be started: a crash like any other, backed off
                    log.exception("%s could not be started again", process.name)
                    crashes.exited_at, crashes.in_a_row = now, crashes.in_a_row + 1
                    continue
                self.processes[index] = replacement
                crashes.started_at, crashes.exited_at = now, None
                self.restarts[process.name] = self.restarts.get(process.name, 0) + 1
                log.warning(
                    "%s restarted (pid %s; restart %d)",
                    process.name, replacement.pid, self.restarts[process.name],
                )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # whatever it was, supervision goes on
                log.exception("supervising the stack's processes failed; trying again")
