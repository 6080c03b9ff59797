"""POST /v1/Devices/Register end to end: real SoftHSM token, emulator on loopback, service over HTTP."""

from __future__ import annotations

import base64
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from tests.fixtures.service import VAT, RunningService, registration_body
from tests.support.pkcs11_tool import list_private_keys

DEVICE_LABEL_PREFIX = "zatca-device-"


def spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


def certificate_of(csid: str) -> x509.Certificate:
    inner = base64.b64decode(csid).decode().strip()
    return x509.load_der_x509_certificate(base64.b64decode(inner + "=" * (-len(inner) % 4)))


def register(service: RunningService, emulator: Any, **overrides: Any) -> httpx.Response:
    body = registration_body(**overrides)
    environment = body["Environment"]
    if environment != "Development" and "otp" not in overrides:
        body["OTP"] = emulator.mint_otp(environment, body["Organization"]["Vat"])
    with service.client() as client:
        return post_registration(service, client, body)


def post_registration(service: RunningService, client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    """Register, and note every secret that went over the wire for the log scan at the end."""
    response = client.post("/v1/Devices/Register", json=body)
    service.remember_otp(body.get("OTP"))
    if response.status_code == 200:
        answer = response.json()
        csr_lines = [line for line in answer["CSR"].splitlines() if not line.startswith("-----")]
        key_lines = [
            line for line in (answer["privateKey"] or "").splitlines() if not line.startswith("-----")
        ]
        service.remember(answer["secret"], answer["csid"], *csr_lines, *key_lines)
    return response


def assert_token_matches_registry(service: RunningService, service_token: Any) -> None:
    """Every appliance key in the token has an active row, and every active row has its key."""
    rows = service.registry_rows()
    token_ids = {
        key.id_hex
        for key in list_private_keys(service_token).values()
        if key.label.startswith(DEVICE_LABEL_PREFIX)
    }
    active_ids = {row["key_id_hex"] for row in rows.values() if row["status"] == "active"}
    assert token_ids == active_ids
    assert not [row for row in rows.values() if row["status"] == "pending"]


@pytest.mark.parametrize("environment", ["Development", "Simulation", "Production"])
def test_each_environment_registers_and_the_certificate_carries_the_csr_key(
    service: RunningService, emulator: Any, environment: str
) -> None:
    response = register(service, emulator, environment=environment)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "Success" and answer["errorList"] == []
    assert answer["invoiceType"] == "Both"
    uuid.UUID(answer["deviceId"])
    csr = x509.load_pem_x509_csr(answer["CSR"].encode())
    assert csr.is_signature_valid
    certificate = certificate_of(answer["csid"])
    assert spki(certificate.public_key()) == spki(csr.public_key())
    with service.client() as client:
        device = client.get(f"/v1/Devices/{answer['deviceId']}").json()
    assert device["status"] == "active" and device["environment"] == environment
    assert device["certificate"]["serialNumber"] == format(certificate.serial_number, "x")
    assert "secret" not in device and "csid" not in device


@pytest.mark.parametrize("invoice_format", ["Xml", "Pdf"])
def test_xml_and_pdf_receive_the_private_key_of_the_certificate(
    service: RunningService, emulator: Any, service_token: Any, invoice_format: str
) -> None:
    response = register(service, emulator, invoice_format=invoice_format)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["privateKey"].startswith("-----BEGIN EC PRIVATE KEY-----")
    private_key = load_pem_private_key(answer["privateKey"].encode(), password=None)
    assert spki(private_key.public_key()) == spki(certificate_of(answer["csid"]).public_key())
    listed = list_private_keys(service_token)[uuid.UUID(answer["deviceId"]).bytes.hex()]
    assert "never extractable" not in listed.access
    # Sent once: the token no longer lets it be wrapped out (issue 13 item 13).
    assert "extractable" not in listed.access.split(", ")


def test_model_keeps_the_key_sealed_in_the_token(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    response = register(service, emulator, invoice_format="Model")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["privateKey"] is None
    listed = list_private_keys(service_token)[uuid.UUID(answer["deviceId"]).bytes.hex()]
    assert "never extractable" in listed.access
    assert "sensitive" in listed.access


def test_lower_camel_case_field_names_register_too(service: RunningService, emulator: Any) -> None:
    body = registration_body()
    body["OTP"] = emulator.mint_otp("Simulation", VAT)
    camel = {
        "deviceDetails": {k[0].lower() + k[1:]: v for k, v in body["Device"].items()},
        "organizationDetails": {k[0].lower() + k[1:]: v for k, v in body["Organization"].items()},
        "environment": body["Environment"],
        "otp": body["OTP"],
        "invoiceFormat": body["InvoiceFormat"],
    }
    with service.client() as client:
        response = post_registration(service, client, camel)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"vat": "39999999990000"}, "Organization.Vat"),
        ({"vat": "499999999900003"}, "Organization.Vat"),
        ({"vat": "3999999999000A3"}, "Organization.Vat"),
        ({"InvoiceType": "0000"}, "Device.InvoiceType"),
        ({"InvoiceType": "1110"}, "Device.InvoiceType"),
        ({"Location": " "}, "Device.Location"),
        ({"Industry": ""}, "Device.Industry"),
        ({"EgsSerialNumber": "SN=1"}, "Device.EgsSerialNumber"),
        ({"Location": "x" * 65}, "Device.Location"),
        ({"Industry": "Retail\u0007"}, "Device.Industry"),
        ({"otp": "12345"}, "OTP"),
        ({"environment": "Staging"}, "Environment"),
        ({"invoice_format": "Json"}, "InvoiceFormat"),
    ],
)
def test_each_validation_rule_answers_400_naming_the_field(
    service: RunningService, emulator: Any, service_token: Any, change: dict[str, str], field: str
) -> None:
    keys_before = set(list_private_keys(service_token))
    # Validation answers before ZATCA is asked, so no OTP has to be minted.
    response = register(service, emulator, **{"otp": "123456", **change})
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "Failed"
    assert field in {item.get("field") for item in answer["errorList"]}
    assert all(item["source"] == "Appliance" for item in answer["errorList"])
    assert set(list_private_keys(service_token)) == keys_before


def test_group_vat_with_a_branch_name_instead_of_a_tin(service: RunningService, emulator: Any) -> None:
    response = register(service, emulator, vat="311111111111113", otp="123456")
    assert response.status_code == 400
    assert "Organization.OrganizationUnitName" in {item.get("field") for item in response.json()["errorList"]}


@pytest.mark.parametrize("api_key", ["", "zak_not-a-real-key"])
def test_missing_or_wrong_api_key_is_401_with_the_error_body(service: RunningService, api_key: str) -> None:
    with service.client(api_key=api_key) as client:
        response = client.post("/v1/Devices/Register", json=registration_body())
        listing = client.get("/v1/Devices")
    for answer in (response, listing):
        assert answer.status_code == 401
        assert answer.json()["status"] == "Failed"
        assert answer.json()["errorList"][0]["code"] == "Unauthorized"


def test_the_same_device_twice_is_409_naming_the_existing_device(
    service: RunningService, emulator: Any
) -> None:
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    first = register(service, emulator, egs_serial=serial)
    assert first.status_code == 200, first.text
    second = register(service, emulator, egs_serial=serial)
    assert second.status_code == 409
    assert first.json()["deviceId"] in second.json()["errorList"][0]["message"]


def test_zatca_invalid_otp_is_400_from_zatca_and_leaves_no_key(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    response = register(service, emulator, otp="000000")
    assert response.status_code == 400
    codes = {(item["code"], item["source"]) for item in response.json()["errorList"]}
    assert ("Invalid-OTP", "ZATCA") in codes
    assert_token_matches_registry(service, service_token)


@pytest.mark.parametrize(
    ("fault", "status"), [("error-500", 502), ("timeout", 504), ("malformed-json", 502), ("wrong-key", 502)]
)
def test_zatca_faults_leave_no_key_and_a_failed_row(
    service: RunningService, emulator: Any, service_token: Any, fault: str, status: int
) -> None:
    otp = emulator.mint_otp("Simulation", VAT)
    emulator.inject_fault(fault, count=1)
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    response = register(service, emulator, otp=otp, egs_serial=serial)
    assert response.status_code == status, response.text
    assert response.json()["status"] == "Failed"
    rows = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    assert [row["status"] for row in rows] == ["failed"]
    assert_token_matches_registry(service, service_token)
    # The device may register again once ZATCA is back.
    assert register(service, emulator, egs_serial=serial).status_code == 200


def test_an_unavailable_token_answers_503(service: RunningService, emulator: Any, service_token: Any) -> None:
    otp = emulator.mint_otp("Simulation", VAT)
    with service_token.vanished():
        response = register(service, emulator, otp=otp)
        assert response.status_code == 503, response.text
        assert response.json()["errorList"][0]["code"].startswith("HSM")
    # Back without a restart.
    assert register(service, emulator).status_code == 200
    assert_token_matches_registry(service, service_token)


def test_32_parallel_registrations_all_succeed(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    bodies = [registration_body(invoice_format=("Model", "Xml")[i % 2]) for i in range(32)]
    for body in bodies:
        body["OTP"] = emulator.mint_otp("Simulation", VAT)

    def post(body: dict[str, Any]) -> httpx.Response:
        with service.client() as client:
            return post_registration(service, client, body)

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(post, bodies))
    assert [r.status_code for r in responses] == [200] * 32, [
        r.text for r in responses if r.status_code != 200
    ]
    assert len({r.json()["deviceId"] for r in responses}) == 32
    assert_token_matches_registry(service, service_token)


def test_device_listing_is_paged_and_never_shows_secrets(service: RunningService, emulator: Any) -> None:
    assert register(service, emulator).status_code == 200
    with service.client() as client:
        first = client.get("/v1/Devices", params={"limit": 2}).json()
        second = client.get("/v1/Devices", params={"limit": 2, "offset": 2}).json()
        missing = client.get(f"/v1/Devices/{uuid.uuid4()}")
    assert first["total"] >= 1 and len(first["items"]) <= 2
    assert not {d["deviceId"] for d in first["items"]} & {d["deviceId"] for d in second["items"]}
    assert missing.status_code == 404 and missing.json()["status"] == "Failed"
    text = str(first)
    assert "secret" not in text.lower() and "BEGIN" not in text


def test_openapi_document_describes_the_api(service: RunningService) -> None:
    document = httpx.get(f"{service.base_url}/schema/openapi.json").json()
    assert "/v1/Devices/Register" in document["paths"]
    register_op = document["paths"]["/v1/Devices/Register"]["post"]
    body_schema = register_op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["required"]) == {"Device", "Organization", "Environment", "OTP", "InvoiceFormat"}
    assert "Vat" in body_schema["properties"]["Organization"]["properties"]
    assert set(register_op["responses"]) >= {"200", "400", "401", "409", "502", "503", "504"}
    assert httpx.get(f"{service.base_url}/schema/swagger").status_code == 200


def test_no_secret_reached_any_log(service: RunningService, emulator: Any) -> None:
    """Runs after the suite above: every OTP, secret, csid, CSR line and key line it handled is
    looked for in the service's and the emulator's complete log output."""
    assert len(service.secrets_seen) > 100, "the suite above should have handled many secrets"
    logs = service.log_path.read_text(encoding="utf-8") + emulator.log_text()
    assert '"msg": "request"' in logs, "the service log should hold the access log"
    leaked = [secret for secret in set(service.secrets_seen) if secret in logs]
    # OTPs are six digits: only a standalone six-digit run counts, not a piece of a timestamp.
    leaked += [
        otp for otp in set(service.otps_seen) if re.search(rf"(?<![0-9]){re.escape(otp)}(?![0-9])", logs)
    ]
    assert leaked == []
