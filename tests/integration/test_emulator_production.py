"""`POST` and `PATCH /production/csids` on the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from appliance.domain import Environment
from tests.fixtures.emulator import (
    SANDBOX_OTP,
    TEST_VAT,
    EmulatorProcess,
    basic_authorization,
    certificate_from_token,
    csr_request_value,
    new_device_key,
    project_csr,
    public_key_der,
    zatca_headers,
)

ALL_STEPS = [
    "standard-compliant",
    "standard-credit-note-compliant",
    "standard-debit-note-compliant",
    "simplified-compliant",
    "simplified-credit-note-compliant",
    "simplified-debit-note-compliant",
]
TOKEN_TYPE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def compliance_csid(
    client: httpx.Client,
    emulator: EmulatorProcess,
    environment: str = "Development",
    invoice_type: str = "1100",
) -> tuple[dict[str, Any], bytes]:
    """A fresh compliance CSID's answer, and the SPKI DER of its key."""
    key = new_device_key()
    otp = SANDBOX_OTP if environment == "Development" else emulator.mint_otp(environment, TEST_VAT)
    response = client.post(
        f"{emulator.environment_url(environment)}/compliance",
        headers=zatca_headers(otp=otp),
        json={
            "csr": csr_request_value(project_csr(Environment(environment), key, invoice_type=invoice_type))
        },
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer, public_key_der(key)


def exchange(
    client: httpx.Client,
    emulator: EmulatorProcess,
    compliance: dict[str, Any],
    environment: str = "Development",
    request_id: object = None,
    authorization: str | None = None,
) -> httpx.Response:
    return client.post(
        f"{emulator.environment_url(environment)}/production/csids",
        headers=zatca_headers(
            authorization=authorization
            or basic_authorization(compliance["binarySecurityToken"], compliance["secret"])
        ),
        json={"compliance_request_id": str(compliance["requestID"]) if request_id is None else request_id},
    )


def renew(
    client: httpx.Client,
    emulator: EmulatorProcess,
    credentials: dict[str, Any],
    csr_pem: str,
    otp: str | None,
) -> httpx.Response:
    return client.patch(
        f"{emulator.environment_url('Development')}/production/csids",
        headers=zatca_headers(
            otp=otp,
            authorization=basic_authorization(credentials["binarySecurityToken"], credentials["secret"]),
        ),
        json={"csr": csr_request_value(csr_pem)},
    )


def spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("invoice_type", "missing"),
    [("1100", ALL_STEPS), ("1000", ALL_STEPS[:3]), ("0100", ALL_STEPS[3:])],
)
def test_before_its_compliance_steps_pass_no_production_csid_is_issued(
    client: httpx.Client, emulator: EmulatorProcess, invoice_type: str, missing: list[str]
) -> None:
    compliance, _ = compliance_csid(client, emulator, invoice_type=invoice_type)
    refused = exchange(client, emulator, compliance)
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "Missing-ComplianceSteps",
        "message": "The compliance certificate is not done with the following compliance steps yet "
        f"[{','.join(missing)}]",
    }


def test_only_the_steps_still_missing_are_named(client: httpx.Client, emulator: EmulatorProcess) -> None:
    compliance, _ = compliance_csid(client, emulator, invoice_type="1000")
    emulator.pass_compliance_steps(compliance["requestID"], ["standard-compliant"])
    refused = exchange(client, emulator, compliance)
    assert refused.json()["message"].endswith(
        "[standard-credit-note-compliant,standard-debit-note-compliant]"
    )


def test_after_the_steps_the_production_csid_certifies_the_same_key(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    compliance, key_der = compliance_csid(client, emulator, environment="Simulation")
    emulator.pass_compliance_steps(compliance["requestID"])
    response = exchange(client, emulator, compliance, environment="Simulation")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["requestID", "tokenType", "dispositionMessage", "binarySecurityToken", "secret"]
    assert body["tokenType"] == TOKEN_TYPE
    assert body["dispositionMessage"] == "ISSUED"
    assert body["requestID"] != compliance["requestID"]
    certificate = certificate_from_token(body["binarySecurityToken"])
    assert spki(certificate) == key_der
    # Production CAs re-order the subject to C, O, OU, CN.
    assert [attribute.oid for attribute in certificate.subject] == [
        NameOID.COUNTRY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(emulator.ca_certificate_pem()))


def test_auto_passed_steps_issue_at_once(client: httpx.Client, emulator: EmulatorProcess) -> None:
    emulator.set_behaviour(auto_pass_compliance_steps=True)
    compliance, _ = compliance_csid(client, emulator)
    assert exchange(client, emulator, compliance, request_id=int(compliance["requestID"])).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # no Authorization header
        "Basic " + "bm90LWEtdG9rZW46bm90LWEtc2VjcmV0",  # not-a-token:not-a-secret
        "Bearer abc",
    ],
    ids=["missing", "unknown-credentials", "not-basic"],
)
def test_bad_basic_auth_is_zatcas_401(
    client: httpx.Client, emulator: EmulatorProcess, authorization: str | None
) -> None:
    compliance, _ = compliance_csid(client, emulator)
    emulator.pass_compliance_steps(compliance["requestID"])
    headers = zatca_headers(authorization=authorization)
    response = client.post(
        f"{emulator.environment_url('Development')}/production/csids",
        headers=headers,
        json={"compliance_request_id": str(compliance["requestID"])},
    )
    assert response.status_code == 401
    body = response.json()
    assert {key: body[key] for key in ("status", "error", "message")} == {
        "status": 401,
        "error": "Unauthorized",
        "message": "",
    }


def test_the_right_token_with_a_wrong_secret_is_401(client: httpx.Client, emulator: EmulatorProcess) -> None:
    compliance, _ = compliance_csid(client, emulator)
    emulator.pass_compliance_steps(compliance["requestID"])
    forged = basic_authorization(compliance["binarySecurityToken"], "A" * 43 + "=")
    assert exchange(client, emulator, compliance, authorization=forged).status_code == 401


def test_the_request_id_must_be_the_authenticated_ccsids_own(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    compliance, _ = compliance_csid(client, emulator)
    other, _ = compliance_csid(client, emulator)
    emulator.pass_compliance_steps(compliance["requestID"])
    refused = exchange(client, emulator, compliance, request_id=str(other["requestID"]))
    assert refused.status_code == 400
    assert refused.json()["code"] == "Invalid-ComplianceRequestId"


def test_a_ccsid_from_another_environment_is_invalid_current_ccsid(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    compliance, _ = compliance_csid(client, emulator, environment="Development")
    emulator.pass_compliance_steps(compliance["requestID"])
    refused = exchange(client, emulator, compliance, environment="Simulation")
    assert (refused.status_code, refused.json()) == (
        400,
        {"code": "Invalid-CurrentCCSID", "message": "The provided CurrentCCSID is invalid"},
    )


def production_csid(client: httpx.Client, emulator: EmulatorProcess) -> dict[str, Any]:
    compliance, _ = compliance_csid(client, emulator)
    emulator.pass_compliance_steps(compliance["requestID"])
    response = exchange(client, emulator, compliance)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def test_renewal_issues_a_production_csid_for_the_new_key(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    current = production_csid(client, emulator)
    new_key = new_device_key()
    response = renew(client, emulator, current, project_csr(Environment.DEVELOPMENT, new_key), SANDBOX_OTP)
    assert response.status_code == 200
    body = response.json()
    assert (body["dispositionMessage"], body["tokenType"]) == ("ISSUED", TOKEN_TYPE)
    assert spki(certificate_from_token(body["binarySecurityToken"])) == public_key_der(new_key)


def test_renewal_can_answer_428_with_compliance_credentials_to_exchange_again(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    emulator.set_behaviour(renewal_requires_compliance=True)
    current = production_csid(client, emulator)
    response = renew(
        client, emulator, current, project_csr(Environment.DEVELOPMENT, new_device_key()), SANDBOX_OTP
    )
    assert response.status_code == 428
    renewed = response.json()
    assert (renewed["dispositionMessage"], renewed["tokenType"], renewed["errors"]) == (
        "NOT_COMPLIANT",
        None,
        None,
    )
    assert exchange(client, emulator, renewed).json()["code"] == "Missing-ComplianceSteps"
    emulator.pass_compliance_steps(renewed["requestID"])
    assert exchange(client, emulator, renewed).status_code == 200


def test_renewal_with_the_compliance_csid_is_401(client: httpx.Client, emulator: EmulatorProcess) -> None:
    compliance, _ = compliance_csid(client, emulator)
    response = renew(
        client, emulator, compliance, project_csr(Environment.DEVELOPMENT, new_device_key()), SANDBOX_OTP
    )
    assert response.status_code == 401


def test_renewal_without_otp_is_missing_otp(client: httpx.Client, emulator: EmulatorProcess) -> None:
    current = production_csid(client, emulator)
    response = renew(client, emulator, current, project_csr(Environment.DEVELOPMENT, new_device_key()), None)
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, "Missing-OTP")


def test_renewal_for_another_taxpayer_is_invalid_csr(client: httpx.Client, emulator: EmulatorProcess) -> None:
    current = production_csid(client, emulator)
    other_vat_csr = project_csr(Environment.DEVELOPMENT, new_device_key(), vat="300000000000003")
    response = renew(client, emulator, current, other_vat_csr, SANDBOX_OTP)
    assert (response.status_code, response.json()["errorCategory"]) == (400, "Invalid-CSR")
