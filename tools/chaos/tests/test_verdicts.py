"""Verdicts, recovery time and the report files, from outcomes made up by hand."""

from __future__ import annotations

import json
from pathlib import Path

from ragfleet.chaos.client import SseEvent, stream_status
from ragfleet.chaos.scenarios.gateway import finished_whole
from ragfleet.chaos.verdicts import (
    Outcome,
    ScenarioResult,
    between,
    errors_by_status,
    recovery_time,
    statuses_by_kind,
    write_report,
)


def outcomes(spec: str, kinds: tuple[str, ...] = ("search", "chat"), step: float = 0.5) -> list[Outcome]:
    """One outcome per character, ``step`` seconds apart, kinds in turn: ``.`` is a 200, ``x`` a 503."""
    return [
        Outcome(kinds[i % len(kinds)], i * step, 0.01, "200" if c == "." else "503")
        for i, c in enumerate(spec)
    ]


def test_recovery_is_the_start_of_the_first_green_window_after_the_fault() -> None:
    # Faults end at t=2.0; errors until t=3.5; green from t=4.0 on.
    seen = outcomes("....xxxx............")
    assert recovery_time(seen, 2.0, window_s=2.0, kinds=("search", "chat")) == 2.0


def test_no_error_means_recovery_at_once() -> None:
    assert recovery_time(outcomes("." * 20), 1.0, window_s=2.0, kinds=("search",)) == 0.0


def test_a_window_must_hold_every_kind_of_request() -> None:
    only_search = outcomes("." * 20, kinds=("search",))
    assert recovery_time(only_search, 0.0, window_s=2.0, kinds=("search", "chat")) is None


def test_never_green_when_errors_continue_or_the_load_stops_too_soon() -> None:
    assert recovery_time(outcomes("..xx.x.x.x.x.x.x"), 0.0, window_s=2.0, kinds=("search",)) is None
    # Green, but the last outcome comes before a whole window could be filled.
    assert recovery_time(outcomes("xxxx..."), 0.0, window_s=2.0, kinds=("search",)) is None


def test_counts_by_kind_and_errors_by_status() -> None:
    seen = [
        Outcome("search", 0, 0, "200"),
        Outcome("search", 1, 0, "503"),
        Outcome("chat-sse", 2, 0, "error-event:upstream_error"),
        Outcome("ingest", 3, 0, "202"),
        Outcome("chat", 4, 0, "timeout"),
    ]
    assert statuses_by_kind(seen)["search"] == {"200": 1, "503": 1}
    assert errors_by_status(seen) == {"503": 1, "error-event:upstream_error": 1, "timeout": 1}
    assert [o.status for o in between(seen, 1, 3)] == ["503", "error-event:upstream_error"]


def test_a_scenario_passes_only_when_it_checked_something_and_everything_held() -> None:
    result = ScenarioResult("redis-outage", "Redis stopped")
    assert not result.passed  # nothing checked proves nothing
    result.check("searches answered", True)
    assert result.verdict == "PASS"
    result.check("nothing lost", False, "3 missing")
    assert result.verdict == "FAIL"


def event(name: str, **data: str) -> SseEvent:
    return SseEvent(name, "s:1", dict(data))


def test_stream_status_names_how_a_stream_ended() -> None:
    assert stream_status(200, [event("sources"), event("done")]) == "200"
    assert stream_status(200, [event("sources"), event("error", code="stream_interrupted")]) == (
        "error-event:stream_interrupted"
    )
    assert stream_status(200, [event("sources"), event("token")]) == "truncated"
    assert stream_status(503, []) == "503"


def test_a_whole_answer_is_the_tokens_after_the_last_restart() -> None:
    cut = [event("sources"), event("token", text="hal")]
    again = [event("restart"), event("sources"), event("token", text="whole"), event("token", text="!")]
    assert finished_whole([*cut, *again, event("done", answer="whole!")])
    assert finished_whole([event("token", text="a"), event("done", answer="a")])
    assert not finished_whole([*cut, *again, event("done", answer="halwhole!")])
    assert not finished_whole([*cut, *again])


def test_report_files_carry_verdicts_losses_and_recovery(tmp_path: Path) -> None:
    good = ScenarioResult("redis-outage", "Redis stopped", documents_lost=0, recovery_s=1.5)
    good.check("searches answered", True, "40/40")
    good.record_load(outcomes("..x."))
    bad = ScenarioResult("worker-kill", "worker killed", documents_lost=2)
    bad.check("no document missing", False, "2 missing")

    markdown = write_report(
        tmp_path, [good, bad], {"command": "python -m ragfleet.chaos", "duration_s": 12.0}
    )

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] is False
    assert summary["documents_lost"] == 2
    assert [s["verdict"] for s in summary["scenarios"]] == ["PASS", "FAIL"]
    assert summary["scenarios"][0]["client_errors"] == {"503": 1}
    assert summary["scenarios"][0]["requests_sent"] == 4
    text = markdown.read_text()
    assert "| redis-outage | **PASS** | 4 | 503: 1 | 0 | 1.5 s |" in text
    assert "- [ ] no document missing — 2 missing" in text
    assert "overall: **FAIL**" in text
