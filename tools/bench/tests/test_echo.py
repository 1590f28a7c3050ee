"""The echo apps the ratio gate and the calibration load: both answer any JSON POST alike, and the
FastAPI one validates what it is sent (the framework's work is the point of that reference)."""

from __future__ import annotations

import httpx
import pytest

from ragfleet.bench.calibration import serve_echo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("framework", ["bare", "fastapi"])
def test_each_echo_app_answers_a_json_post_with_the_same_small_answer(framework: str) -> None:
    with serve_echo(framework=framework) as (url, _):
        response = httpx.post(f"{url}/v1/search", json={"query": "what is ragfleet?", "mode": "hybrid"})
    assert response.status_code == 200
    assert response.content == b'{"echo":"ok"}'


def test_the_fastapi_echo_app_validates_the_body_it_is_sent() -> None:
    with serve_echo(framework="fastapi") as (url, _):
        response = httpx.post(
            f"{url}/v1/search", content=b"[1, 2]", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
