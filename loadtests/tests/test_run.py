"""The runner's own options (the runs themselves: test_smoke.py, test_cluster_timeline.py)."""

from __future__ import annotations

import pytest

from ragfleet.loadtests.run import API_KEY_ENV, parser, shown_command


def test_the_api_key_comes_from_the_environment_when_not_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the chart's benchmark Job does: the Secret in the environment, never in `ps`.
    monkeypatch.setenv(API_KEY_ENV, "key-from-secret")

    assert parser().parse_known_args([])[0].api_key == "key-from-secret"
    assert parser().parse_known_args(["--api-key", "explicit"])[0].api_key == "explicit"


@pytest.mark.parametrize("value", [None, ""])
def test_without_a_key_anywhere_the_run_creates_one(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(API_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(API_KEY_ENV, value)

    assert parser().parse_known_args([])[0].api_key is None


def test_the_shown_command_hides_the_key_and_url_passwords() -> None:
    shown = shown_command(
        ["--api-key", "rfk_secret", "--redis-url", "redis://:hunter2@127.0.0.1:6390/0", "--api-key=rfk_2"]
    )
    assert "rfk_secret" not in shown and "hunter2" not in shown and "rfk_2" not in shown
    assert "redis://***@127.0.0.1:6390/0" in shown


def test_the_tail_scenario_implies_its_pool_and_gate_and_the_command_line_still_wins(tmp_path) -> None:
    from ragfleet.loadtests.run import locust_argv

    args, passthrough = parser().parse_known_args(
        ["--scenario", "search-tail", "--report-dir", str(tmp_path), "--query-pool-size", "500"]
    )
    args.command_line = []
    argv = locust_argv(args, "http://127.0.0.1:1", [], passthrough)
    assert argv[-1] == "SearchUser"
    sizes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--query-pool-size"]
    assert sizes == ["20000", "500"]  # the last occurrence is what Locust keeps
    assert argv[argv.index("--gate-p99-ms") + 1] == "*=500"
