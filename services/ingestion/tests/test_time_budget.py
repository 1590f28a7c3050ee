"""The Celery time limits and the visibility timeout follow from the per-document budget: a lost
task is delivered again minutes after the longest document would have been killed, never while a
copy can still run, and never an hour later."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ragfleet.ingestion.config import IngestionSettings


def test_the_defaults_derive_from_the_largest_document_allowed() -> None:
    settings = IngestionSettings()
    # 20 MiB parsed in 5 + 3 s/MiB, 1000 chunks at 0.2 s, 30 s of round trips.
    assert settings.document_budget_s == 5 + 60 + 200 + 30
    assert settings.hard_time_limit_s == settings.document_budget_s
    assert settings.soft_time_limit_s < settings.hard_time_limit_s < settings.visibility_timeout
    assert settings.visibility_timeout == 295 + 60
    assert settings.visibility_timeout < 3600 / 6  # not the hour it used to be


def test_the_budget_grows_with_the_limits_it_covers() -> None:
    bigger = IngestionSettings(max_chunks_per_document=5000, max_document_bytes=100 * 1024 * 1024)
    assert bigger.document_budget_s == 5 + 300 + 1000 + 30
    assert bigger.visibility_timeout == bigger.hard_time_limit_s + bigger.hard_time_limit_s // 10


def test_a_short_visibility_timeout_bounds_the_time_limit_below_it() -> None:
    settings = IngestionSettings(visibility_timeout_s=10)
    assert settings.visibility_timeout == 10
    assert settings.soft_time_limit_s < settings.hard_time_limit_s == 9


def test_a_time_limit_at_or_above_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="task_time_limit_s must be below visibility_timeout_s"):
        IngestionSettings(task_time_limit_s=400, visibility_timeout_s=400)
    explicit = IngestionSettings(task_time_limit_s=1000)
    assert explicit.visibility_timeout == 1100
