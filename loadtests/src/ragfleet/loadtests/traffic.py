"""What every load-test request carries: the API key and the marks that say it is synthetic.

Dashboards and logs tell load tests from real users by ``X-Ragfleet-Synthetic: 1`` and by the W3C
baggage entry ``ragfleet.synthetic=true`` (baggage also crosses every service with the trace).
"""

from __future__ import annotations

SYNTHETIC_HEADER = "X-Ragfleet-Synthetic"
SYNTHETIC_BAGGAGE = "ragfleet.synthetic=true"


def request_headers(api_key: str | None, scenario: str) -> dict[str, str]:
    headers = {
        SYNTHETIC_HEADER: "1",
        "baggage": f"{SYNTHETIC_BAGGAGE},ragfleet.loadtest.scenario={scenario}",
        "User-Agent": "ragfleet-loadtests",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers
