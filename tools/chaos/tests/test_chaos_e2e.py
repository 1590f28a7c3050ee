"""One short real scenario end to end: a stack of its own, the load, Redis stopped for 5 s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragfleet.chaos.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.mark.xfail(
    strict=False,
    reason="kombu on this Celery: a worker whose broker connection drops while a task is unacknowledged can die with 'Unrecoverable error: NoneType has no attribute hostname' (restore_unacked on a closed connection); kubelet restarts it in a cluster, make run does not yet. Open in #17 (session 3 note).",
)
def test_a_short_redis_outage_passes_with_nothing_lost(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    code = main(
        ["--scenario", "redis-outage", "--redis-outage-s", "5", "--report-dir", str(report_dir),
         "--run-dir", str(tmp_path / "run")]
    )  # fmt: skip

    summary = json.loads((report_dir / "summary.json").read_text())
    (scenario,) = summary["scenarios"]
    checks = {c["name"]: c for c in scenario["checks"]}
    failed = [c for c in checks.values() if not c["passed"]]
    assert not failed, failed
    assert code == 0
    assert scenario["documents_lost"] == 0
    assert scenario["requests_sent"] > 0
    assert (report_dir / "summary.md").exists()
