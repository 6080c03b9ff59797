"""`POST /compliance` on the emulator over real HTTP: issuance, OTP rules and CSR refusals."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from appliance.domain import Environment
from tests.fixtures.emulator import (
    SANDBOX_OTP,
    TEMPLATES,
    TEST_VAT,
    EmulatorProcess,
    certificate_from_token,
    csr_request_value,
    new_device_key,
    project_csr,
    public_key_der,
    variant_csr,
    zatca_headers,
)

OTHER_VAT = "300000000000003"
INVALID_OTP = {"errors": [{"code": "Invalid-OTP", "message": "The provided OTP is invalid"}]}
MISSING_OTP = {"errors": [{"code": "Missing-OTP", "message": "OTP is required field"}]}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def post_compliance(
    client: httpx.Client, emulator: EmulatorProcess, environment: str, csr_value: str, otp: str | None
) -> httpx.Response:
    return client.post(
        f"{emulator.environment_url(environment)}/compliance",
        headers=zatca_headers(otp=otp),
        json={"csr": csr_value},
    )


def assert_invalid_csr(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 400
    body: dict[str, Any] = response.json()
    assert body["errorCode"] == "400"
    assert body["errorCategory"] == "Invalid-CSR"
    assert body["errorMessage"] == "The provided Certificate Signing Request (CSR) is invalid."
    assert detail in body["emulatorDetail"]


def test_the_certificate_is_issued_for_the_csrs_own_key_and_names(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    key = new_device_key()
    pem = project_csr(Environment.DEVELOPMENT, key)
    csr = x509.load_pem_x509_csr(pem.encode())

    response = post_compliance(client, emulator, "Development", csr_request_value(pem), SANDBOX_OTP)

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["requestID", "dispositionMessage", "binarySecurityToken", "secret", "errors"]
    assert body["dispositionMessage"] == "ISSUED"
    assert body["errors"] is None
    assert re.fullmatch(r"[0-9]{13}", str(body["requestID"]))
    assert len(body["secret"]) == 44
    assert len(base64.b64decode(body["secret"], validate=True)) == 32
    certificate = certificate_from_token(body["binarySecurityToken"])
    assert public_key_der(key) == certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Subject in the CSR's own DER order (C, OU, O, CN), SAN byte for byte.
    assert certificate.subject.public_bytes() == csr.subject.public_bytes()
    san_oid = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    assert (
        certificate.extensions.get_extension_for_oid(san_oid).value.public_bytes()
        == csr.extensions.get_extension_for_oid(san_oid).value.public_bytes()
    )
    basic_constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic_constraints.critical and basic_constraints.value.ca is False
    assert certificate.not_valid_after_utc.time() == dt.time(21, 0)
    assert 5 * 365 - 2 <= (certificate.not_valid_after_utc - certificate.not_valid_before_utc).days <= 5 * 366


def test_the_certificate_chains_to_the_emulators_ca(client: httpx.Client, emulator: EmulatorProcess) -> None:
    pem = project_csr(Environment.DEVELOPMENT, new_device_key())
    response = post_compliance(client, emulator, "Development", csr_request_value(pem), SANDBOX_OTP)
    certificate = certificate_from_token(response.json()["binarySecurityToken"])
    authority = x509.load_pem_x509_certificate(emulator.ca_certificate_pem())
    certificate.verify_directly_issued_by(authority)


@pytest.mark.parametrize("environment", ["Simulation", "Production"])
def test_a_minted_otp_is_good_for_one_certificate_only(
    client: httpx.Client, emulator: EmulatorProcess, environment: str
) -> None:
    otp = emulator.mint_otp(environment, TEST_VAT)
    first = post_compliance(
        client,
        emulator,
        environment,
        csr_request_value(project_csr(Environment(environment), new_device_key())),
        otp,
    )
    second = post_compliance(
        client,
        emulator,
        environment,
        csr_request_value(project_csr(Environment(environment), new_device_key())),
        otp,
    )
    assert first.status_code == 200
    assert (second.status_code, second.json()) == (400, INVALID_OTP)


def test_an_otp_is_bound_to_the_vat_it_was_minted_for(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    otp = emulator.mint_otp("Simulation", OTHER_VAT)
    csr_value = csr_request_value(project_csr(Environment.SIMULATION, new_device_key(), vat=TEST_VAT))
    refused = post_compliance(client, emulator, "Simulation", csr_value, otp)
    assert (refused.status_code, refused.json()) == (400, INVALID_OTP)
    # Refused requests do not spend the OTP: its own taxpayer can still use it.
    own_csr = csr_request_value(project_csr(Environment.SIMULATION, new_device_key(), vat=OTHER_VAT))
    assert post_compliance(client, emulator, "Simulation", own_csr, otp).status_code == 200


def test_an_otp_is_bound_to_its_environment(client: httpx.Client, emulator: EmulatorProcess) -> None:
    otp = emulator.mint_otp("Simulation", TEST_VAT)
    csr_value = csr_request_value(project_csr(Environment.PRODUCTION, new_device_key()))
    refused = post_compliance(client, emulator, "Production", csr_value, otp)
    assert (refused.status_code, refused.json()) == (400, INVALID_OTP)


@pytest.mark.parametrize(("environment", "otp"), [("Development", "111111"), ("Simulation", SANDBOX_OTP)])
def test_otps_the_environment_never_issued_are_invalid(
    client: httpx.Client, emulator: EmulatorProcess, environment: str, otp: str
) -> None:
    csr_value = csr_request_value(project_csr(Environment(environment), new_device_key()))
    refused = post_compliance(client, emulator, environment, csr_value, otp)
    assert (refused.status_code, refused.json()) == (400, INVALID_OTP)


def test_the_developer_portals_fixed_otp_is_never_used_up(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    for _ in range(2):
        csr_value = csr_request_value(project_csr(Environment.DEVELOPMENT, new_device_key()))
        assert post_compliance(client, emulator, "Development", csr_value, SANDBOX_OTP).status_code == 200


@pytest.mark.parametrize("environment", ["Development", "Simulation"])
def test_no_otp_header_is_missing_otp(
    client: httpx.Client, emulator: EmulatorProcess, environment: str
) -> None:
    csr_value = csr_request_value(project_csr(Environment(environment), new_device_key()))
    refused = post_compliance(client, emulator, environment, csr_value, otp=None)
    assert (refused.status_code, refused.json()) == (400, MISSING_OTP)


def test_without_accept_version_the_answer_is_406_plain_text(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    csr_value = csr_request_value(project_csr(Environment.DEVELOPMENT, new_device_key()))
    response = client.post(
        f"{emulator.environment_url('Development')}/compliance",
        headers={"OTP": SANDBOX_OTP, "Content-Type": "application/json"},
        json={"csr": csr_value},
    )
    assert response.status_code == 406
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "This Version is not supported or not provided in the header."


def test_a_simulation_csr_posted_to_core_is_denied_by_policy(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    otp = emulator.mint_otp("Production", TEST_VAT)
    csr_value = csr_request_value(project_csr(Environment.SIMULATION, new_device_key()))
    refused = post_compliance(client, emulator, "Production", csr_value, otp)
    assert refused.status_code == 400
    assert refused.json() == {
        "requestID": -2,
        "tokenType": None,
        "dispositionMessage": "NOT_COMPLIANT",
        "binarySecurityToken": None,
        "secret": None,
        "errors": [
            "unable to submit and sign the csr in zatca side, caused : Denied by Policy Module 0x80094800, "
            "The request was for a certificate template that is not supported by the Active Directory "
            "Certificate Services policy: PREZATCA-Code-Signing.\r\n"
        ],
    }


@pytest.mark.parametrize(
    ("variant", "detail"),
    [
        ({"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)}, "RSA"),
        ({"key": ec.generate_private_key(ec.SECP256R1())}, "secp256r1"),
        ({"serial_number_oid": NameOID.SERIAL_NUMBER}, "2.5.4.5"),
        ({"subject_order": ("CN", "O", "OU", "C")}, "C, OU, O, CN in that DER order"),
        ({"vat": "39999999990000"}, "UID must be a VAT number"),
    ],
    ids=["rsa-key", "p256-key", "sn-as-serialNumber", "subject-order", "bad-vat"],
)
def test_malformed_csrs_are_refused_as_invalid_csr(
    client: httpx.Client, emulator: EmulatorProcess, variant: dict[str, Any], detail: str
) -> None:
    csr_value = csr_request_value(variant_csr(**variant))
    assert_invalid_csr(post_compliance(client, emulator, "Development", csr_value, SANDBOX_OTP), detail)


def test_base64_of_der_instead_of_pem_is_invalid_csr(client: httpx.Client, emulator: EmulatorProcess) -> None:
    csr_value = csr_request_value(project_csr(Environment.DEVELOPMENT, new_device_key()), armour=False)
    assert_invalid_csr(
        post_compliance(client, emulator, "Development", csr_value, SANDBOX_OTP), "base64 of the DER"
    )


def test_a_wrong_template_for_the_developer_portal_is_denied_by_policy(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    csr_value = csr_request_value(variant_csr(template=TEMPLATES["Production"]))
    refused = post_compliance(client, emulator, "Development", csr_value, SANDBOX_OTP)
    assert refused.status_code == 400
    assert refused.json()["requestID"] == -2
    assert refused.json()["errors"][0].endswith("policy: ZATCA-Code-Signing.\r\n")


def test_an_unknown_invoice_type_gets_the_ca_layers_not_compliant_answer(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    refused = post_compliance(
        client, emulator, "Development", csr_request_value(variant_csr(invoice_type="1111")), SANDBOX_OTP
    )
    assert refused.status_code == 400
    body = refused.json()
    assert {
        key: body[key] for key in ("requestID", "dispositionMessage", "binarySecurityToken", "secret")
    } == {
        "requestID": -1,
        "dispositionMessage": "NOT_COMPLIANT",
        "binarySecurityToken": "",
        "secret": "",
    }
    assert body["errors"][0].startswith("Invoice type is")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{}", "Missing-CSR"),
        (b'{"csr": ""}', "Missing-CSR"),
        (b"not json", "Invalid-Request"),
        (b"[1]", "Invalid-Request"),
    ],
)
def test_bodies_without_a_csr_are_refused_in_zatcas_errors_shape(
    client: httpx.Client, emulator: EmulatorProcess, body: bytes, code: str
) -> None:
    response = client.post(
        f"{emulator.environment_url('Development')}/compliance",
        headers=zatca_headers(otp=SANDBOX_OTP),
        content=body,
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code
