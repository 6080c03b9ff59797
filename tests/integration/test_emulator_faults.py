"""Injected faults, as a client of the emulator sees them over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from appliance.domain import Environment
from tests.fixtures.emulator import (
    SANDBOX_OTP,
    EmulatorProcess,
    certificate_from_token,
    csr_request_value,
    new_device_key,
    project_csr,
    public_key_der,
    zatca_headers,
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def request_compliance(
    client: httpx.Client, emulator: EmulatorProcess, key_der_out: list[bytes] | None = None
) -> httpx.Response:
    key = new_device_key()
    if key_der_out is not None:
        key_der_out.append(public_key_der(key))
    return client.post(
        f"{emulator.environment_url('Development')}/compliance",
        headers=zatca_headers(otp=SANDBOX_OTP),
        json={"csr": csr_request_value(project_csr(Environment.DEVELOPMENT, key))},
    )


def test_error_500_answers_zatcas_500_for_its_count_then_recovers(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    emulator.inject_fault("error-500", count=2)
    statuses = [request_compliance(client, emulator) for _ in range(3)]
    assert [response.status_code for response in statuses] == [500, 500, 200]
    assert statuses[0].json() == {
        "code": "Invalid-Request",
        "message": "System failed to process your request",
    }


def test_latency_delays_the_answer_but_not_its_content(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    emulator.inject_fault("latency", seconds=0.4)
    started = time.perf_counter()
    response = request_compliance(client, emulator)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.4


def test_timeout_leaves_the_client_without_an_answer(emulator: EmulatorProcess) -> None:
    emulator.inject_fault("timeout")
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.5)) as impatient, pytest.raises(httpx.ReadTimeout):
        request_compliance(impatient, emulator)


def test_malformed_json_comes_with_a_200(client: httpx.Client, emulator: EmulatorProcess) -> None:
    emulator.inject_fault("malformed-json")
    response = request_compliance(client, emulator)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_wrong_key_issues_a_genuine_certificate_for_another_key(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    emulator.inject_fault("wrong-key")
    submitted: list[bytes] = []
    response = request_compliance(client, emulator, submitted)
    assert response.status_code == 200
    assert response.json()["dispositionMessage"] == "ISSUED"
    certificate = certificate_from_token(response.json()["binarySecurityToken"])
    certified = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert certified != submitted[0]


def test_faults_spare_the_administration_endpoints(client: httpx.Client, emulator: EmulatorProcess) -> None:
    emulator.inject_fault("error-500")
    assert client.get(f"{emulator.base_url}/emulator/health").status_code == 200
    assert emulator.mint_otp("Simulation", "399999999900003").isdigit()
    assert emulator.pending_faults() == [{"kind": "error-500", "remaining": 1, "seconds": None}]


def test_clearing_faults_restores_normal_answers(client: httpx.Client, emulator: EmulatorProcess) -> None:
    emulator.inject_fault("error-500", count=5)
    emulator.clear_faults()
    assert emulator.pending_faults() == []
    assert request_compliance(client, emulator).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"kind": "explode"}, {"kind": "error-500", "count": 0}, {"kind": "timeout", "seconds": 1.0}],
    ids=["unknown-kind", "zero-count", "seconds-on-timeout"],
)
def test_bad_fault_requests_are_refused(
    client: httpx.Client, emulator: EmulatorProcess, body: dict[str, object]
) -> None:
    assert client.post(f"{emulator.base_url}/emulator/faults", json=body).status_code == 400
    assert emulator.pending_faults() == []
