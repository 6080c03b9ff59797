"""Hostile request bodies and headers: refused by name with the error body, or stored verbatim.

A private service (own token and registry) takes them; after the module the registry and the
token must still agree and the registry must still be a sound SQLite database.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import RunningService, registration_body
from tests.reliability.fleet import Fleet, PrivateService
from tests.reliability.support import (
    assert_error_body,
    check_invariants,
    compliance_requests,
    wait_until_idle,
)

REGISTER = "/v1/Devices/Register"
MAX_BODY_BYTES = 64 * 1024
REGISTERED_ADDRESS = ObjectIdentifier("2.5.4.26")
TEXT_FIELDS = (
    ("Device", "EgsSerialNumber"),
    ("Device", "Location"),
    ("Device", "Industry"),
    ("Organization", "OrganizationName"),
    ("Organization", "OrganizationUnitName"),
)
ALL_FIELDS = (
    *TEXT_FIELDS,
    ("Device", "InvoiceType"),
    ("Organization", "Vat"),
    ("Organization", "CountryCode"),
    (None, "Environment"),
    (None, "OTP"),
    (None, "InvoiceFormat"),
)


@pytest.fixture(scope="module")
def hostile(module_fleet: Fleet) -> Iterator[PrivateService]:
    private = module_fleet.start("hostile")
    yield private
    wait_until_idle(private.service)
    check_invariants(private.service, private.token)
    with sqlite3.connect(f"file:{private.service.registry_path}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def post(service: RunningService, content: bytes | None = None, **kwargs: Any) -> httpx.Response:
    with service.client() as client:
        if content is not None:
            return client.post(
                REGISTER, content=content, headers={"Content-Type": "application/json"}, **kwargs
            )
        return client.post(REGISTER, **kwargs)


def with_value(body: dict[str, Any], section: str | None, name: str, value: Any) -> dict[str, Any]:
    return {**body, **({section: {**body[section], name: value}} if section else {name: value})}


def field_name(section: str | None, name: str) -> str:
    return f"{section}.{name}" if section else name


def refused_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 400, (response.status_code, response.text)
    assert_error_body(response)
    return {item.get("field") for item in response.json()["errorList"]}


# Size and shape of the body ------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_with_the_error_body(hostile: PrivateService) -> None:
    body = registration_body()
    body["Device"]["Location"] = "x" * (MAX_BODY_BYTES + 1)
    response = post(hostile.service, json=body)
    assert response.status_code == 413, response.text
    assert_error_body(response)


def test_a_chunked_body_over_the_limit_is_413_with_the_error_body(hostile: PrivateService) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"Device": {"Location": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    # A generator body goes out with Transfer-Encoding: chunked, so no Content-Length warns the server.
    with hostile.service.client() as client:
        response = client.post(REGISTER, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert_error_body(response)


def test_a_body_just_under_the_limit_is_judged_on_its_fields(hostile: PrivateService) -> None:
    body = registration_body(environment="Development")
    filler = MAX_BODY_BYTES - len(
        httpx.Request("POST", "/", json=with_value(body, "Device", "Location", "")).content
    )
    response = post(hostile.service, json=with_value(body, "Device", "Location", "x" * (filler - 16)))
    assert "Device.Location" in refused_fields(response)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"null", id="null"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"Device"', id="string"),
        pytest.param(b"1e999999", id="number"),
        pytest.param(b'{"Device": {"EgsSerialNumber": "SN-1"', id="truncated"),
        pytest.param(b'\xef\xbb\xbf{"OTP": "123456"}', id="byte order mark"),
        pytest.param(b'{"OTP": NaN}', id="NaN literal"),
        pytest.param(b"{'OTP': '123456'}", id="single quotes"),
        pytest.param(b'{"OTP": "123456"} x', id="trailing garbage"),
        pytest.param(b'{"OTP": "12\x003456"}', id="nul byte"),
        pytest.param(b'{"Device": {"Location": "\xff\xfe Riyadh"}}', id="invalid UTF-8 in a value"),
        pytest.param(b'{"Dev\xc3\x28ice": {}}', id="invalid UTF-8 in a key"),
        pytest.param(b'{"OTP": "\xc0\xb1\xc0\xb2"}', id="overlong UTF-8"),
        pytest.param(b'{"Device": {"Location": "\\ud800"}}', id="lone surrogate escape"),
        pytest.param(b"[" * 30000 + b"]" * 30000, id="deeply nested arrays"),
        pytest.param(b'{"a":' * 10000 + b"1" + b"}" * 10000, id="deeply nested objects"),
        pytest.param(
            b'{"Device": {"Location": ' + b"[" * 20000 + b"]" * 20000 + b"}}", id="deeply nested field value"
        ),
    ],
)
def test_malformed_bodies_are_400_with_the_error_body(hostile: PrivateService, payload: bytes) -> None:
    assert len(payload) <= MAX_BODY_BYTES
    response = post(hostile.service, content=payload)
    assert response.status_code == 400, (response.status_code, response.text[:500])
    assert_error_body(response)


def test_duplicate_keys_in_any_casing_are_refused_by_name(hostile: PrivateService) -> None:
    payload = b'{"OTP": "123456", "otp": "654321", "Environment": "Simulation"}'
    assert "OTP" in refused_fields(post(hostile.service, content=payload))


# Types and characters in every field ---------------------------------------------------------


@pytest.mark.parametrize(("section", "name"), ALL_FIELDS, ids=[field_name(*field) for field in ALL_FIELDS])
@pytest.mark.parametrize("value", [12345, 3.5, True, [], {}, ["SN-1"]], ids=repr)
def test_a_non_string_in_any_field_is_refused_by_name(
    hostile: PrivateService, section: str | None, name: str, value: Any
) -> None:
    body = with_value(registration_body(environment="Development"), section, name, value)
    assert field_name(section, name) in refused_fields(post(hostile.service, json=body))


@pytest.mark.parametrize(("section", "name"), TEXT_FIELDS, ids=[field_name(*field) for field in TEXT_FIELDS])
@pytest.mark.parametrize("emoji", ["🧾", "☕", "👍🏽", "1️⃣", "🇸🇦"])
def test_emoji_in_a_text_field_are_refused_by_name(
    hostile: PrivateService, section: str, name: str, emoji: str
) -> None:
    body = with_value(registration_body(environment="Development"), section, name, f"Riyadh {emoji}")
    response = post(hostile.service, json=body)
    assert field_name(section, name) in refused_fields(response)
    assert "emoji" in response.text


def test_arabic_in_every_text_field_round_trips_into_the_csr(hostile: PrivateService) -> None:
    serial = f"جهاز-{uuid.uuid4().hex[:8]}"
    values = {
        "EgsSerialNumber": serial,
        "Location": "الرياض، حي العليا",
        "Industry": "تجارة التجزئة",
        "OrganizationName": "شركة التقنية المحدودة",
        "OrganizationUnitName": "فرع الرياض ٢٨١٤",
    }
    body = registration_body(environment="Development", egs_serial=serial)
    for section, name in TEXT_FIELDS:
        body = with_value(body, section, name, values[name])
    response = post(hostile.service, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    csr = x509.load_pem_x509_csr(answer["CSR"].encode())
    assert csr.is_signature_valid
    subject = {attribute.oid: attribute.value for attribute in csr.subject}
    assert subject[NameOID.COMMON_NAME] == serial
    assert subject[NameOID.ORGANIZATION_NAME] == values["OrganizationName"]
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == values["OrganizationUnitName"]
    (directory,) = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert isinstance(directory, x509.DirectoryName)
    alternative = {attribute.oid: attribute.value for attribute in directory.value}
    assert str(alternative[NameOID.SURNAME]).endswith(f"|3-{serial}")
    assert alternative[REGISTERED_ADDRESS] == values["Location"]
    assert alternative[NameOID.BUSINESS_CATEGORY] == values["Industry"]
    with hostile.service.client() as client:
        device = client.get(f"/v1/Devices/{answer['deviceId']}").json()
    assert device["egsSerialNumber"] == serial and device["location"] == values["Location"]
    assert device["organizationName"] == values["OrganizationName"]


# The OTP travels to ZATCA as a header ----------------------------------------------------------


@pytest.mark.parametrize(
    "otp",
    [
        "123456\r\nX-Injected: 1",
        "123456\nX-Injected: 1",
        "\r\n123456",
        "123456\r",
        "12345\n",
        "123 456",
        " 123456",
        "١٢٣٤٥٦",  # Arabic-Indic digits are digits to Unicode, not to ZATCA
        "1" * 60_000,
    ],
    ids=[
        "crlf-header",
        "lf-header",
        "leading-crlf",
        "trailing-cr",
        "five-and-lf",
        "space",
        "leading-space",
        "arabic-digits",
        "very-long",
    ],
)
@pytest.mark.parametrize("environment", ["Simulation", "Production"])
def test_an_otp_that_is_not_six_ascii_digits_never_reaches_zatca(
    hostile: PrivateService, emulator: EmulatorProcess, otp: str, environment: str
) -> None:
    compliance_before = compliance_requests(emulator)
    response = post(hostile.service, json=registration_body(environment=environment, otp=otp))
    assert refused_fields(response) == {"OTP"}
    assert otp not in response.text
    assert compliance_requests(emulator) == compliance_before


def test_a_development_otp_with_crlf_is_replaced_by_the_sandbox_otp(hostile: PrivateService) -> None:
    body = registration_body(environment="Development", otp="123345\r\nX-Injected: 1")
    response = post(hostile.service, json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer \xff\xfe\xfd",
        b"Bearer " + b"A" * 6000,
        b"Bearer zak_x' OR '1'='1",
        b"Basic dXNlcjpwYXNz",
    ],
    ids=["latin-1 bytes", "very long", "sql", "basic scheme"],
)
def test_hostile_authorization_headers_are_401_with_the_error_body(
    hostile: PrivateService, authorization: bytes
) -> None:
    with httpx.Client(base_url=hostile.service.base_url, timeout=30) as client:
        response = client.get("/v1/Devices", headers={b"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert_error_body(response)


# SQL metacharacters ----------------------------------------------------------------------------

# Allowed by the field rules, so they must be stored and shown exactly as sent.
SQL_STORED = (
    "O'Brien' OR '1' LIKE '1",
    "x' -- comment",
    "%_ LIKE '%'",
    "Robert') DROP TABLE devices --",
    "' UNION SELECT * FROM api_keys --",
    "*/ /* ? ?1 :name @p $1",
)
# `;` `"` `\` `=` are DN-special characters: the field rules refuse them by name.
SQL_REFUSED = ("Robert'); DROP TABLE devices;--", '" OR ""="', "x\\'; --", "a=1")


@pytest.mark.parametrize("text", SQL_STORED)
def test_sql_metacharacters_are_stored_verbatim(hostile: PrivateService, text: str) -> None:
    # The serial also becomes the CSR's SN (`1-<solution>|2-<version>|3-<serial>`, at most 64).
    serial = f"{uuid.uuid4().hex[:6]} {text}"[:38].strip()
    body = registration_body(environment="Development", egs_serial=serial)
    for section, name in TEXT_FIELDS[1:]:
        body = with_value(body, section, name, text)
    response = post(hostile.service, json=body)
    assert response.status_code == 200, response.text
    device_id = response.json()["deviceId"]
    row = hostile.service.registry_rows()[device_id]
    stored = (row["location"], row["industry"], row["organization_name"], row["organization_unit"])
    assert stored == (text,) * 4 and row["egs_serial"] == serial
    with hostile.service.client() as client:
        device = client.get(f"/v1/Devices/{device_id}").json()
    assert (device["location"], device["industry"], device["organizationName"]) == (text,) * 3
    assert device["egsSerialNumber"] == serial


CODE_FIELDS = (
    ("Organization", "Vat"),
    ("Organization", "CountryCode"),
    ("Device", "InvoiceType"),
    (None, "Environment"),
    (None, "InvoiceFormat"),
    (None, "OTP"),
)


@pytest.mark.parametrize(("section", "name"), CODE_FIELDS, ids=[field_name(*field) for field in CODE_FIELDS])
@pytest.mark.parametrize("text", ["' OR '1'='1", "1; DROP TABLE devices", "%"])
def test_sql_in_a_code_field_is_refused_by_name(
    hostile: PrivateService, section: str | None, name: str, text: str
) -> None:
    rows_before = len(hostile.service.registry_rows())
    # Simulation: the OTP rule applies there (the developer portal takes any OTP).
    body = with_value(registration_body(environment="Simulation", otp="123456"), section, name, text)
    assert field_name(section, name) in refused_fields(post(hostile.service, json=body))
    assert len(hostile.service.registry_rows()) == rows_before


@pytest.mark.parametrize(("section", "name"), TEXT_FIELDS, ids=[field_name(*field) for field in TEXT_FIELDS])
@pytest.mark.parametrize("text", SQL_REFUSED)
def test_sql_with_dn_special_characters_is_refused_by_name(
    hostile: PrivateService, section: str, name: str, text: str
) -> None:
    rows_before = len(hostile.service.registry_rows())
    body = with_value(registration_body(environment="Development"), section, name, text)
    assert field_name(section, name) in refused_fields(post(hostile.service, json=body))
    assert len(hostile.service.registry_rows()) == rows_before


@pytest.mark.parametrize(
    "params",
    [
        {"status": "active' OR '1'='1"},
        {"environment": "Simulation; DROP TABLE devices"},
        {"limit": "1 OR 1=1"},
        {"offset": "0; DELETE FROM devices"},
    ],
    ids=["status", "environment", "limit", "offset"],
)
def test_sql_in_query_parameters_is_400(hostile: PrivateService, params: dict[str, str]) -> None:
    with hostile.service.client() as client:
        response = client.get("/v1/Devices", params=params)
    assert response.status_code == 400, response.text
    assert_error_body(response)


@pytest.mark.parametrize("device_id", ["' OR '1'='1", "1; DROP TABLE devices", "%", "_", "..%2F..%2Fetc"])
def test_sql_in_a_device_id_is_404(hostile: PrivateService, device_id: str) -> None:
    with hostile.service.client() as client:
        response = client.get(f"/v1/Devices/{device_id}")
    assert response.status_code == 404, response.text
    assert_error_body(response)


def test_a_huge_offset_is_refused_not_a_500(hostile: PrivateService) -> None:
    with hostile.service.client() as client:
        response = client.get("/v1/Devices", params={"offset": str(2**64)})
    assert response.status_code == 400, response.text
    assert_error_body(response)
