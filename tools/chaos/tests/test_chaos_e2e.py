"""One short real scenario end to end: a stack of its own, the load, Redis stopped for 5 s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragfleet.chaos.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


# A stack of its own (about a minute to start on 2 shared cores), the load and the scenario: over
# the suite's 300 s on a busy machine. It was marked xfail after three runs at load 10-17 in session
# 4; it passed in every CI run since (sessions 5 and 6). One of those failures (every search 404
# collection_not_found) fits a seed job that failed and was taken as done; seeding now fails loudly.
@pytest.mark.timeout(600)
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
