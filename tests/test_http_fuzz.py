"""Every route fuzzed by schemathesis from the OpenAPI description the server itself serves:
whatever it is sent, it answers without a 5xx (the databases behind it answer).

The operations are driven through hypothesis directly (schemathesis's pytest plugin does
not work with this pytest), one test per operation of the served description.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.http_fixtures import Site

OPERATIONS = [
    "GET /api/status",
    "GET /api/databases/{name}/diagnostics",
    "POST /api/databases/{name}/restart",
    "GET /metrics",
    "GET /healthz",
]


def served_operations(site: Site) -> dict[str, Any]:
    """The operations of the description the server serves, by ``METHOD /path``."""
    schema = schemathesis.openapi.from_url(site.base + "/openapi.json")
    operations = [cast(Any, item).ok() for item in schema.get_all_operations()]
    return {f"{op.method.upper()} {op.path}": op for op in operations}


def test_the_served_description_has_exactly_these_operations(site: Site) -> None:
    assert sorted(served_operations(site)) == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_route_answers_with_a_server_error(site: Site, label: str) -> None:
    site.check_in("Smile Dental", ok=False, summary="x", lines=(("error", "smtp", "y"),))
    operation = served_operations(site)[label]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    fuzz()
