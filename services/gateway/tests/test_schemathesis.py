"""Property-based hostile input: schemathesis generates requests for every operation in the
gateway's OpenAPI, valid and invalid ones, sent with a real key of a real tenant to a gateway in
front of the real platform. The gateway must never answer 5xx, every 4xx must be the JSON error
model, and documented answers must match their documented schema and content type.

Operations are driven from schemathesis' Python API (one Hypothesis run per operation) rather
than its pytest plugin: the plugin's fixture-loaded schemas rewrite pytest's private node ids,
which pytest 9 no longer has (schemathesis 4.32.5).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

pytestmark = pytest.mark.integration

# Enough examples to reach each parameter's edge cases; few enough to keep both runs near a minute.
MAX_EXAMPLES = 20
# The public API's operations when this was written: fewer means the schema lost some.
MIN_OPERATIONS = 13


def run_operation(operation: Any, mode: GenerationMode, platform: Any, json_error: Any) -> None:
    session = requests.Session()
    session.headers.update(platform.headers("acme"))

    def error_is_json_shaped(ctx: Any, response: Any, case: Any) -> None:
        # The key is valid throughout: a 401 would mean the run never got past authentication.
        assert response.status_code != 401, response.text
        if 400 <= response.status_code < 500:
            json_error(response.status_code, response.headers, response.content)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(
            base_url=platform.url,
            session=session,
            checks=[
                not_a_server_error,
                error_is_json_shaped,
                response_schema_conformance,
                content_type_conformance,
            ],
            timeout=30,
        )

    exercise()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_operation_answers_5xx_or_a_non_json_error(
    mode: GenerationMode, platform: Any, json_error: Any
) -> None:
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Static pages (a web console) may be mounted beside the API; they are not part of it.
    operations = [op for op in operations if not op.path.startswith("/console")]
    assert len(operations) >= MIN_OPERATIONS, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        try:
            run_operation(operation, mode, platform, json_error)
        except Unsatisfiable:
            # Nothing in the operation can be made invalid (no parameters, or a free-form string).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
