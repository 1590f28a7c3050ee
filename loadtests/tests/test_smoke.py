"""The suite against the real stack, small and short: it cannot rot without `make test` noticing.

Tiny gates (the real targets are for `make loadtest`, not for a test on a busy CI box); one test
checks that a run meeting its gates exits 0 with a full report, one that an impossible gate exits
non-zero.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragfleet.devstack.settings import DevstackSettings
from ragfleet.devstack.stack import Stack
from ragfleet.loadtests.gates import GATES_FAILED_EXIT_CODE
from ragfleet.loadtests.options import stack_metrics_urls

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = DevstackSettings.on_free_ports(tmp_path_factory.mktemp("loadtest-stack"))
    running = Stack(settings).start()
    yield running
    running.stop()


def run_loadtest(stack: Stack, report_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    retrieval = f"http://127.0.0.1:{stack.settings.retrieval_port}"
    # Retrieval and both gateways: the gateways count the edge tier of the search cache.
    metrics = [arg for url in stack_metrics_urls(stack.settings) for arg in ("--metrics-url", url)]
    argv = [
        sys.executable,
        "-m",
        "ragfleet.loadtests.run",
        "--host",
        stack.url,
        "--redis-url",
        stack.redis_url,
        *metrics,
        "--seed-corpus",
        retrieval,
        "--report-dir",
        str(report_dir),
        "--seed",
        "1",
        *args,
    ]
    # Generous: each Locust process takes 5-60 s to start on a shared 2-core box, and a search
    # run starts two (the echo reference, then the run).
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def failed_gates(report_dir: Path) -> str:
    """The verdicts that failed, for an assertion message (Locust's long tables crowd them out of stderr)."""
    summary = report_dir / "summary.json"
    if not summary.exists():
        return ""
    verdicts = json.loads(summary.read_text())["verdicts"]
    return "failed gates: " + "; ".join(
        f"{v['gate']}: {v['measured']} (target {v['target']})" for v in verdicts if not v["passed"]
    )


def test_a_mixed_run_meeting_its_gates_exits_zero_with_a_report(stack: Stack, tmp_path: Path) -> None:
    done = run_loadtest(
        stack,
        tmp_path,
        *("--scenario", "mixed", "--mix", "rag", "--users", "6", "--duration", "8s"),
        *("--gate-qps", "1", "--gate-hit-rate", "0.2", "--gate-failure-ratio", "0.05"),
        *("--gate-p95-ms", "*=10000", "--gate-ttft-p95-ms", "10000", "--chat-turns", "2"),
    )
    assert done.returncode == 0, failed_gates(tmp_path) or done.stderr[-3000:]

    facts = json.loads((tmp_path / "summary.json").read_text())
    assert facts["passed"] is True
    names = {e["name"] for e in facts["summary"]["endpoints"]}
    assert any(name.startswith("/v1/search [") for name in names)
    assert any(name.startswith("/v1/chat [") for name in names), names
    assert facts["summary"]["hit_rate"]["lookups"] > 0  # read from the services' /metrics
    page = (tmp_path / "summary.md").read_text()
    assert "PASSED" in page and "| cache hit rate |" in page
    for produced in ("locust.html", "locust_stats.csv", "locust_stats_history.csv", "throughput.png"):
        assert (tmp_path / produced).stat().st_size > 0, produced


def test_an_impossible_qps_gate_fails_the_run(stack: Stack, tmp_path: Path) -> None:
    done = run_loadtest(
        stack,
        tmp_path,
        *("--scenario", "search", "--users", "2", "--duration", "3s"),
        *("--gate-qps", "1000000", "--gate-hit-rate", "off", "--gate-p95-ms", "off"),
        # The ratio gate's reference: the echo app under the same Locust first, with a target any
        # run that answered at all meets.
        *("--echo-seconds", "2", "--gate-echo-ratio", "0.0001"),
    )
    assert done.returncode == GATES_FAILED_EXIT_CODE, done.stderr[-3000:]
    facts = json.loads((tmp_path / "summary.json").read_text())
    failed = [v["gate"] for v in facts["verdicts"] if not v["passed"]]
    assert failed == ["QPS /v1/search*"]
    ratio = next(v for v in facts["verdicts"] if v["gate"] == "QPS /v1/search* ÷ echo")
    assert ratio["passed"] and "req/s" in ratio["measured"]
    echo = json.loads((tmp_path / "echo" / "summary.json").read_text())
    assert echo["summary"]["total_requests"] > 0 and echo["summary"]["total_failures"] == 0
    assert "FAILED" in (tmp_path / "summary.md").read_text()
