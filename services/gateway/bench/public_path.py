"""CPU per cached search on the public path, per process, read from /proc while wrk drives it.

Starts a whole stack on free ports (Redis, retrieval, llm-proxy, ingestion + worker, two
gateways, NGINX), loads the sample corpus, warms every query of the pool once, then runs wrk
through NGINX with a Lua script that posts searches drawn from the pool. Each process's user +
system CPU (``/proc/<pid>/stat``, its children included: NGINX's worker, uvicorn's workers) is
read before and after, so the figure is CPU time per request — what a shared machine distorts
least — beside the request rate.

    uv run python services/gateway/bench/public_path.py --seconds 15 --connections 32

``--profile gateway-1`` also records a py-spy flame graph (SVG) of that process during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack
from ragfleet.loadtests.queries import load_pool

ROOT = Path(__file__).resolve().parents[3]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu_s(pid: int) -> float:
    """User + system seconds of ``pid`` and its live descendants (uvicorn/NGINX workers)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += times.get(current, 0.0)
        stack.extend(children.get(current, []))
    return total


def machine_busy_share(seconds: float = 1.0) -> float:
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total_0, idle_0 = sample()
    time.sleep(seconds)
    total_1, idle_1 = sample()
    return 1 - (idle_1 - idle_0) / max(1, total_1 - total_0)


WRK_SCRIPT = """
local bodies = {BODIES}
local auth = "Bearer {KEY}"
request = function()
  local body = bodies[math.random(#bodies)]
  return wrk.format("POST", "/v1/search", {["Content-Type"] = "application/json",
    ["Authorization"] = auth, ["Accept-Encoding"] = "gzip"}, body)
end
"""


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rate": float(rate.group(1)) if rate else 0.0,
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0,
        "raw": out,  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--queries", type=int, default=200, help="distinct searches in the pool (all warmed)")
    parser.add_argument("--profile", default="", help="process name to record with py-spy (e.g. gateway-1)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument(
        "--serve", type=Path, default=None,
        help="keep the stack up after warming, its URL, key and pids in this JSON file (profiling)",
    )  # fmt: skip
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="ragfleet-public-path-"))
    run_dir.chmod(0o755)  # NGINX workers (nobody, when run as root) write request bodies below it
    stack = Stack(DevstackSettings.on_free_ports(run_dir, worker=True, log_level="WARNING"))
    try:
        stack.start()
        created = subprocess.run(
            [sys.executable, "-m", "ragfleet.gateway.keys", "create", "--tenant", "default",
             "--collections", "*", "--rate", "1000000", "--burst", "1000000", "--json"],
            env={**os.environ, "RAGFLEET_GATEWAY_REDIS_URL": stack.redis_url},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        api_key = json.loads(created.stdout)["api_key"]
        stack.load_corpus(ROOT / "services/ingestion/sample-corpus", api_key)
        pool = load_pool(None)[: args.queries]
        bodies = [json.dumps({"query": q, "mode": "hybrid", "top_k": 5}) for q in pool]
        headers = {"Authorization": f"Bearer {api_key}"}

        def warm() -> None:
            with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
                for _ in range(3):  # each gateway replica fills its own edge tier
                    for body in bodies:
                        response = client.post(
                            "/v1/search", content=body, headers={"content-type": "application/json"}
                        )
                        response.raise_for_status()

        warm()
        lua = "{" + ",".join(json.dumps(b) for b in bodies) + "}"
        script = run_dir / "search.lua"
        script.write_text(WRK_SCRIPT.replace("{BODIES}", lua).replace("{KEY}", api_key))
        names = ["nginx", "gateway-1", "gateway-2", "retrieval", "redis"]
        pids = {p.name: p.pid for p in stack.processes if p.name in names}
        if args.serve:
            state = {"url": stack.url, "api_key": api_key, "pids": pids, "script": str(script)}
            args.serve.write_text(json.dumps(state))
            sys.stdout.write(f"serving; state in {args.serve}; stop with SIGTERM\n")
            sys.stdout.flush()
            restart = args.serve.with_suffix(".restart")  # touch it to restart the gateways (new code)
            while all(p.alive() for p in stack.processes):
                time.sleep(1)
                if restart.exists():
                    restart.unlink()
                    for index, port in enumerate(stack.settings.gateway_ports, start=1):
                        stack.restart(f"gateway-{index}", ready_url=f"http://127.0.0.1:{port}/readyz")
                    warm()
                    pids = {p.name: p.pid for p in stack.processes if p.name in names}
                    state = {"url": stack.url, "api_key": api_key, "pids": pids, "script": str(script)}
                    args.serve.write_text(json.dumps(state))
                    sys.stdout.write("gateways restarted\n")
                    sys.stdout.flush()
            return 1
        busy = machine_busy_share()
        profiler = None
        if args.profile and shutil.which("py-spy"):
            profiler = subprocess.Popen(
                ["py-spy", "record", "-p", str(pids[args.profile]), "-d", str(args.seconds), "-r", "200",
                 "-o", str(run_dir / f"{args.profile}.svg"), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        before = {name: process_tree_cpu_s(pid) for name, pid in pids.items()}
        wrk = run_wrk(stack.url, script, args.seconds, args.connections)
        after = {name: process_tree_cpu_s(pid) for name, pid in pids.items()}
        if profiler is not None:
            profiler.wait(timeout=60)
        requests = wrk["rate"] * args.seconds
        cpu_ms = {name: (after[name] - before[name]) * 1000 / max(1.0, requests) for name in pids}
        figures = {
            "machine": f"{platform.node()} {os.cpu_count()} cpu",
            "busy_before": round(busy, 2),
            "rate": wrk["rate"],
            "non_2xx": wrk["non_2xx"],
            "p99_ms": wrk["p99_ms"],
            "cpu_ms_per_request": {k: round(v, 3) for k, v in cpu_ms.items()},
            "gateways_plus_nginx_ms": round(cpu_ms["gateway-1"] + cpu_ms["gateway-2"] + cpu_ms["nginx"], 3),
        }
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
        if profiler is not None:
            sys.stdout.write(f"flame graph: {run_dir / (args.profile + '.svg')}\n")
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
