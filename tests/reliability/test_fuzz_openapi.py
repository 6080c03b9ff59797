"""Schemathesis against the service's own OpenAPI document, authenticated, every operation.

Every generated request, with valid and with invalid data, must get a documented status and a
body that matches the documented schema, never a 5xx, and every 4xx carries the appliance's
error body. Schemathesis' `positive_data_acceptance` check is left out: the document gives the
register fields as plain strings, while the field rules (VAT, OTP, characters) refuse most
strings with a 400, as documented. The service is a private one (its own token and registry): a Development
registration takes any OTP, so generated requests may create devices.

Schemathesis' pytest integration (`schema.parametrize`) does not work with this pytest, so each
operation's Hypothesis strategy is driven with `@given` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.reliability.fleet import Fleet, PrivateService
from tests.reliability.support import assert_error_document, check_invariants, wait_until_idle
from tests.reliability.tally import TALLY

EXAMPLES_PER_OPERATION_AND_MODE = 250
MINIMUM_REQUESTS = 1000
EXPECTED_OPERATIONS = {
    "POST /v1/Devices/Register",
    "GET /v1/Devices",
    "GET /v1/Devices/{device_id}",
    "DELETE /v1/Devices/{device_id}",
    "POST /v1/Devices/{device_id}/Renew",
    "PUT /v1/Devices/{device_id}/Seller",
    "POST /v1/Devices/{device_id}/Invoices",
    "POST /v1/Devices/{device_id}/Invoices/Submit",
    "GET /v1/Devices/{device_id}/Invoices",
    "GET /v1/Invoices/{invoice_id}",
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
}


@pytest.fixture(scope="module")
def fuzzed(module_fleet: Fleet) -> Iterator[PrivateService]:
    private = module_fleet.start("fuzzed")
    yield private
    wait_until_idle(private.service)
    check_invariants(private.service, private.token)


def fuzz_operation(operation: Any, mode: GenerationMode, api_key: str) -> None:
    """Drive one operation's strategy with one kind of data; every request is counted in TALLY."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        TALLY.requests_fuzzed += 1
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {api_key}"},
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert_error_document(response.status_code, content_type, response.content)

    try:
        exercise()
    except Unsatisfiable:
        # No invalid data exists for an operation without inputs, or whose only input is a
        # path segment (any string is one): nothing to send.
        if mode is GenerationMode.POSITIVE:
            raise


def test_every_operation_answers_as_documented(fuzzed: PrivateService) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.service.base_url}/schema/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the service's OpenAPI document is invalid: {result}"
        operations.append(result.ok())
    assert {f"{operation.method.upper()} {operation.path}" for operation in operations} == EXPECTED_OPERATIONS
    failures: list[str] = []
    sent: dict[str, int] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            name = f"{operation.method.upper()} {operation.path} ({mode.value})"
            before = TALLY.requests_fuzzed
            try:
                fuzz_operation(operation, mode, fuzzed.service.api_key)
            # Schemathesis reports several failed checks as a FailureGroup, a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"--- {name}:\n{exc}")
            sent[name] = TALLY.requests_fuzzed - before
    requests = sum(sent.values())
    print(
        f"\nschemathesis sent {requests} requests: "
        + ", ".join(f"{name} {count}" for name, count in sent.items())
    )
    assert not failures, "\n".join(failures)
    assert requests >= MINIMUM_REQUESTS
