"""The machine a run measured: its fingerprint, and fixed reference workloads run in the same run.

Absolute figures only compare between runs on the same kind of machine; the fingerprint says
which (CPU model, cores, memory, the vector instructions numpy and onnxruntime use — session 1's
AVX-512 machine ran about twice as fast as session 2's AVX2 one under the same model name).
The reference workloads measure how fast this machine is *right now* (a shared CPU included):

- ``echo_rps`` / ``echo_requests_per_cpu_s``: the bare echo app (ragfleet.bench.echo) on the
  services' server stack (uvicorn, uvloop, httptools), loaded by an aiohttp closed loop — the
  reference for HTTP throughput and CPU per request;
- ``hnsw_qps``: raw hnswlib k=10 search, one thread, 20,000 x 384 random vectors;
- ``onnx_texts_per_s``: raw ONNX embedding of short queries, when the model is installed.

Each takes a few seconds. ``measure`` returns whichever could run; a metric whose reference is
missing is compared raw on the same machine only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("ragfleet.bench.calibration")

HNSW_QPS, ONNX_TEXTS_PER_S = "hnsw_qps", "onnx_texts_per_s"  # the references' names in records

# Instruction-set extensions that change how fast the numeric parts run.
_FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "avx2", "fma", "amx_tile")


def machine() -> dict[str, Any]:
    cpu_model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu_model in ("unknown", platform.processor()):
                cpu_model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    memory_gib = None
    with contextlib.suppress(ValueError, OSError):
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "cpu_flags": sorted(f for f in _FLAGS if f in flags),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }


def fingerprint(m: dict[str, Any]) -> str:
    """Same fingerprint = the same kind of machine; hostnames and kernels change without changing the numbers.

    Records written before the flags were recorded have no fingerprint: nothing is raw-comparable with them.
    """
    if "cpu_flags" not in m:
        return ""
    memory = m.get("memory_gib")
    text = "|".join(
        [
            str(m.get("cpu_model")),
            str(m.get("cores")),
            str(round(memory) if memory else "?"),
            ",".join(m["cpu_flags"]),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe(m: dict[str, Any]) -> str:
    flags = ", ".join(m.get("cpu_flags") or []) or "flags unknown"
    return f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} vCPU ({flags}), {m.get('memory_gib', '?')} GiB"


# -- the echo reference -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the echo app exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the echo app did not listen on {port} within {timeout_s:g} s")


@contextlib.contextmanager
def serve_echo(workers: int = 1, framework: str = "bare") -> Iterator[tuple[str, int]]:
    """An echo app (``bare`` or ``fastapi``, ragfleet.bench.echo) in a process of its own: yields
    (URL, pid). The Locust ratio gate loads the FastAPI one with the same Locust as the search path;
    the calibration below loads the bare one with aiohttp."""
    port = _free_port()
    argv = [sys.executable, "-m", "ragfleet.bench.echo", "--port", str(port), "--workers", str(workers)]
    argv += ["--framework", framework]
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces and parentheses):
    field 1 is the parent pid, 11 and 12 user and system CPU ticks."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent_pid(pid: int) -> int | None:
    """The parent of a live process; None when it is gone or /proc cannot say."""
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return None


def process_tree_cpu_ms(pid: int) -> float:
    """User + system CPU time of a process and its live descendants so far (uvicorn's workers), from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
                fields = _stat_fields(entry.name)
                stats[int(entry.name)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        if current in stats:
            total += (int(stats[current][11]) + int(stats[current][12])) * 1000 / tick
        todo += children.get(current, [])
    return total


def echo_reference(seconds: float = 3.0, concurrency: int = 16) -> dict[str, float]:
    """Requests/s of the echo app under an aiohttp closed loop, and its requests per CPU-second."""
    import aiohttp

    async def load(url: str) -> int:
        done = 0
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    async with session.get(url) as response:
                        await response.read()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done

    with serve_echo() as (url, pid):
        asyncio.run(load(url + "/echo"))  # warm-up the connections
        before_cpu, started = process_tree_cpu_ms(pid), time.monotonic()
        requests = asyncio.run(load(url + "/echo"))
        elapsed, cpu_ms = time.monotonic() - started, process_tree_cpu_ms(pid) - before_cpu
    return {
        "echo_rps": requests / elapsed,
        "echo_requests_per_cpu_s": requests / (cpu_ms / 1000) if cpu_ms else 0.0,
    }


class HnswWorkload:
    """Raw hnswlib k=10 search, one thread, 20,000 x 384 random vectors: built once, timed as often
    as asked (a part that interleaves it with its own measures builds it once)."""

    def __init__(self, n: int = 20_000, dim: int = 384) -> None:
        import hnswlib
        import numpy as np

        rng = np.random.default_rng(7)
        data = rng.standard_normal((n, dim), dtype=np.float32)
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.index.init_index(max_elements=n, ef_construction=100, M=16, random_seed=7)
        self.index.set_num_threads(2)
        self.index.add_items(data)
        self.index.set_num_threads(1)
        self.index.set_ef(64)
        self.queries = rng.standard_normal((512, dim), dtype=np.float32)

    def qps(self, seconds: float) -> float:
        done, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            self.index.knn_query(self.queries[done % 512], k=10)
            done += 1
        return done / (time.monotonic() - started)


class OnnxWorkload:
    """Raw ONNX embedding of short queries one at a time (the model on two threads)."""

    def __init__(self) -> None:
        from ragfleet.common.embeddings import Embedder

        self.embedder = Embedder(threads=2)
        self.embedder.load()
        self.texts = [f"how do I configure replica {i} of the search service?" for i in range(64)]
        self.embedder.embed(self.texts[:8])

    def texts_per_s(self, seconds: float) -> float:
        done, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            self.embedder.embed([self.texts[done % 64]])
            done += 1
        return done / (time.monotonic() - started)


def hnsw_reference(seconds: float = 2.0) -> dict[str, float]:
    return {HNSW_QPS: HnswWorkload().qps(seconds)}


def onnx_reference(seconds: float = 3.0) -> dict[str, float]:
    return {ONNX_TEXTS_PER_S: OnnxWorkload().texts_per_s(seconds)}


WORKLOADS: dict[str, Callable[[], dict[str, float]]] = {
    "echo": echo_reference,
    "hnsw": hnsw_reference,
    "onnx": onnx_reference,
}


def measure(names: Sequence[str] = tuple(WORKLOADS)) -> dict[str, Any]:
    """The named reference workloads that can run here; the ones that cannot are listed with the reason.

    ``make bench`` measures each part's references right before the part: a reference measured
    minutes earlier, before a neighbour's load test started, does not explain the part's figures."""
    figures: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in names:
        workload = WORKLOADS[name]
        try:
            figures.update(workload())
        except Exception as exc:  # a missing model or library: that reference is absent, the run goes on
            skipped[name] = f"{type(exc).__name__}: {exc}"
            log.warning("calibration %s skipped: %s", name, skipped[name])
    return {"figures": {k: round(v, 2) for k, v in figures.items()}, "skipped": skipped}


# -- other work on the machine ----------------------------------------------------------------------


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used since boot (all cores), from /proc/stat;
    steal counts as busy: it is another guest's work on our cores."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of every child it has waited for (their children included,
    as long as each waited for its own): what the benchmark itself spent."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class ForeignCpu:
    """The share of the machine's CPU that other processes used between ``start()`` and ``share()``.

    The load average cannot tell this: it counts the benchmark's own processes and lags a minute.
    The machine's busy time minus the benchmark's own CPU can, once the benchmark's children have
    been waited for (``make bench`` runs each part to its end before asking)."""

    started: float = 0.0
    machine_busy: float = 0.0
    own: float = 0.0

    def start(self) -> ForeignCpu:
        self.started, self.machine_busy, self.own = time.monotonic(), _machine_busy_s(), _own_cpu_s()
        return self

    def share(self) -> float | None:
        elapsed = time.monotonic() - self.started
        try:
            busy = _machine_busy_s() - self.machine_busy
        except OSError:  # no /proc: not Linux; the share is unknown and nothing is judged busy
            return None
        cores = os.cpu_count() or 1
        if elapsed <= 0:
            return None
        foreign = max(0.0, busy - (_own_cpu_s() - self.own))
        return round(min(1.0, foreign / (elapsed * cores)), 3)
