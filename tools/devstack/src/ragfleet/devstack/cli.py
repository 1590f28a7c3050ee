"""``python -m ragfleet.devstack run|stop``: what ``make run`` and ``make stop`` call."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from types import FrameType

from ragfleet.devstack.processes import StartupError
from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack


def _print_summary(stack: Stack, api_key: str) -> None:
    print("\nragfleet is up.\n")
    print(f"  URL           {stack.url}")
    print(f"  console       {stack.url}/console/   (paste the API key below)")
    print(f"  API docs      {stack.url}/docs")
    print(f"  readiness     {stack.url}/readyz")
    print(
        f"  API key       {api_key}   (tenant 'default', all its collections; also in {stack.run_dir}/api-key)"
    )
    print(f"  try           curl -s {stack.url}/v1/search -H 'Authorization: Bearer {api_key}' \\")
    print(
        '                  -H \'content-type: application/json\' -d \'{"query": "what is ragfleet?", "mode": "hybrid"}\'\n'
    )
    print(f"  {'process':<18}{'pid':>8}   log")
    for process in stack.processes:
        print(f"  {process.name:<18}{process.pid:>8}   {process.log_path}")
    print("\nCtrl-C stops everything.", flush=True)


def run(settings: DevstackSettings) -> int:
    stack = Stack(settings)
    stopping = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        print(
            "starting ragfleet (Redis, retrieval, llm-proxy, ingestion + worker, gateways, NGINX)...",
            flush=True,
        )
        stack.start()
        api_key = stack.create_api_key()
        (stack.run_dir / "api-key").write_text(api_key + "\n")
        if settings.load_sample_corpus and settings.sample_corpus_dir.exists():
            print(f"loading the sample corpus from {settings.sample_corpus_dir}...", flush=True)
            stack.load_corpus(settings.sample_corpus_dir, api_key)
        _print_summary(stack, api_key)
        while True:
            time.sleep(1)
            dead = stack.unsupervised_dead()  # the supervisor starts the worker again itself
            if dead:
                print(
                    f"stopping: {', '.join(dead)} exited (see {settings.run_dir / 'logs'})", file=sys.stderr
                )
                return 1
    except StartupError as exc:
        print(f"ragfleet could not start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A terminal's Ctrl-C reaches us twice (directly and forwarded by `uv run`): once we are
        # stopping, further signals must not interrupt the stop and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stopping every process ragfleet started...", flush=True)
        stack.stop()
        print("stopped.", flush=True)


def stop(settings: DevstackSettings) -> int:
    pid_file = settings.run_dir / "stack.pid"
    if not pid_file.exists():
        print("ragfleet is not running (no .run/stack.pid)")
        return 0
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        print("ragfleet was not running (stale pid file removed)")
        return 0
    for _ in range(300):
        if not pid_file.exists():
            break
        time.sleep(0.1)
    print(f"ragfleet (pid {pid}) stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragfleet.devstack")
    parser.add_argument("command", choices=["run", "stop"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = DevstackSettings()
    return run(settings) if args.command == "run" else stop(settings)


if __name__ == "__main__":
    sys.exit(main())
