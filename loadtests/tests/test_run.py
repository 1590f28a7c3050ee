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
