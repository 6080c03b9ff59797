"""POST /v1/Devices/{id}/Renew end to end: real token, the emulator, the service over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.hsm import KeyStore
from appliance.invoices import INITIAL_PIH
from appliance.invoices.model import SellerIdentity
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_model
from appliance.invoices.stamp import stamp_invoice
from appliance.zatca import Credentials, ZatcaClient
from appliance.zatca.invoices import InvoiceResult, InvoiceSubmission
from tests.fixtures.service import VAT, RunningService
from tests.integration.test_invoicing_api import invoicing_service, new_model_device, wait_until_delivered
from tests.integration.test_onboarding_e2e import KINDS, step_name
from tests.integration.test_registration_e2e import (
    assert_token_matches_registry,
    certificate_of,
    register,
    spki,
)
from tests.support.invoice_models import model
from tests.support.pkcs11_tool import list_private_keys

ORGANIZATION = "Tech Innovations Inc."  # registration_body's organisation

__all__ = ["invoicing_service"]  # the module fixture, shared


def renew(service: RunningService, emulator: Any, device_id: str, otp: str | None = None) -> httpx.Response:
    body = {"OTP": otp if otp is not None else emulator.mint_otp("Simulation", VAT)}
    with service.client() as client:
        response = client.post(f"/v1/Devices/{device_id}/Renew", json=body)
    service.remember_otp(body["OTP"])
    if response.status_code == 200:
        answer = response.json()
        key_lines = [
            line for line in (answer["privateKey"] or "").splitlines() if not line.startswith("-----")
        ]
        service.remember(answer["secret"], answer["csid"], *key_lines)
    return response


def registered(service: RunningService, emulator: Any, invoice_format: str = "Model") -> dict[str, Any]:
    response = register(service, emulator, invoice_format=invoice_format)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def report_a_signed_invoice(
    service_token: Any, emulator: Any, key_id_hex: str, csid: str, secret: str
) -> InvoiceResult:
    """Sign a simplified invoice with the device's key in the token and its certificate, and report
    it with its production credentials: what the device does with the credentials it holds."""
    store = KeyStore.open(service_token.settings())
    try:
        model = sample_model("Invoice", "Simplified", seller_vat=VAT)
        unsigned = render_invoice(model, SellerIdentity(vat=VAT, name=ORGANIZATION), icv=1, pih=INITIAL_PIH)
        key_id = uuid.UUID(hex=key_id_hex)
        signed = stamp_invoice(
            unsigned,
            certificate_of(csid).public_bytes(Encoding.DER),
            lambda digest: store.sign_digest(key_id, digest),
        )
    finally:
        store.close()

    async def report() -> InvoiceResult:
        async with ZatcaClient(ZatcaSettings(base_urls=emulator.base_urls())) as client:
            return await client.report_invoice(
                Environment.SIMULATION,
                Credentials(csid, secret),
                InvoiceSubmission(invoice_hash=signed.invoice_hash, uuid=model.uuid, invoice_xml=signed.xml),
            )

    return anyio.run(report)


@pytest.mark.parametrize("requires_compliance", [False, True], ids=["200-issued", "428-compliance"])
def test_renewal_gives_a_new_certificate_for_a_new_token_key_and_destroys_the_old_key(
    service: RunningService, emulator: Any, service_token: Any, requires_compliance: bool
) -> None:
    first = registered(service, emulator)
    before = service.registry_rows()[first["deviceId"]]
    emulator.set_behaviour(renewal_requires_compliance=requires_compliance)
    response = renew(service, emulator, first["deviceId"])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["deviceId"] == first["deviceId"] and answer["privateKey"] is None
    assert answer["csid"] != first["csid"] and answer["secret"] != first["secret"]
    new_key = spki(x509.load_pem_x509_csr(answer["CSR"].encode()).public_key())
    assert spki(certificate_of(answer["csid"]).public_key()) == new_key
    assert new_key != spki(certificate_of(first["csid"]).public_key())
    after = service.registry_rows()[first["deviceId"]]
    assert after["status"] == "active" and after["credential_kind"] == "production"
    assert after["binary_security_token"] == answer["csid"]
    assert after["key_id_hex"] != before["key_id_hex"] and after["renewal_key_id_hex"] is None
    token_keys = list_private_keys(service_token)
    assert before["key_id_hex"] not in token_keys and after["key_id_hex"] in token_keys
    assert token_keys[after["key_id_hex"]].label == after["key_label"]
    if requires_compliance:
        # The 428 path ran the checks with the renewed compliance credentials, then exchanged them.
        assert after["compliance_request_id"] != before["compliance_request_id"]
        accepted = emulator.invoices(request_id=after["compliance_request_id"])
        assert {step_name(entry["kind"]) for entry in accepted} == KINDS["1100"]
    else:
        assert after["compliance_request_id"] == before["compliance_request_id"]
    with service.client() as client:
        view = client.get(f"/v1/Devices/{first['deviceId']}").json()
    assert view["certificate"]["serialNumber"] == format(certificate_of(answer["csid"]).serial_number, "x")
    # The device works with what the renewal returned.
    result = report_a_signed_invoice(
        service_token, emulator, after["key_id_hex"], answer["csid"], answer["secret"]
    )
    assert result.accepted, result
    assert_token_matches_registry(service, service_token)


def test_an_xml_device_gets_its_new_key_once_in_the_renewal_answer(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    first = registered(service, emulator, invoice_format="Xml")
    response = renew(service, emulator, first["deviceId"])
    assert response.status_code == 200, response.text
    answer = response.json()
    new_private = load_pem_private_key(answer["privateKey"].encode(), password=None)
    assert spki(new_private.public_key()) == spki(certificate_of(answer["csid"]).public_key())
    assert answer["privateKey"] != first["privateKey"]
    with service.client() as client:
        view = client.get(f"/v1/Devices/{first['deviceId']}")
    assert "BEGIN EC PRIVATE KEY" not in view.text
    assert "BEGIN EC PRIVATE KEY" not in service.log_path.read_text()
    assert_token_matches_registry(service, service_token)


@pytest.mark.parametrize("refusal", ["invalid-otp", "compliance-document"])
def test_a_refused_renewal_leaves_the_device_on_its_old_credentials(
    service: RunningService, emulator: Any, service_token: Any, refusal: str
) -> None:
    first = registered(service, emulator)
    before = service.registry_rows()[first["deviceId"]]
    keys_before = set(list_private_keys(service_token))
    if refusal == "invalid-otp":
        response = renew(service, emulator, first["deviceId"], otp="000000")
        expected = "Invalid-OTP"
    else:
        emulator.set_behaviour(renewal_requires_compliance=True, refuse_kind="standard-debit-note")
        response = renew(service, emulator, first["deviceId"])
        expected = None
    assert response.status_code == 400, response.text
    items = response.json()["errorList"]
    assert all(item["source"] == "ZATCA" for item in items)
    if expected:
        assert items[0]["code"] == expected
    else:
        assert any("standard-debit-note" in item["message"] for item in items), items
    after = service.registry_rows()[first["deviceId"]]
    for column in (
        "status",
        "key_id_hex",
        "binary_security_token",
        "secret_ciphertext",
        "certificate_serial",
    ):
        assert after[column] == before[column], column
    assert after["renewal_key_id_hex"] is None
    assert set(list_private_keys(service_token)) == keys_before  # the new key is gone, the old one kept
    emulator.set_behaviour(refuse_kind="", renewal_requires_compliance=False)
    result = report_a_signed_invoice(
        service_token, emulator, before["key_id_hex"], first["csid"], first["secret"]
    )
    assert result.accepted, result
    assert_token_matches_registry(service, service_token)


def test_renewal_refuses_unknown_devices_bad_bodies_and_missing_otps(
    service: RunningService, emulator: Any
) -> None:
    first = registered(service, emulator)
    with service.client() as client:
        unknown = client.post(f"/v1/Devices/{uuid.uuid4()}/Renew", json={"OTP": "123456"})
        no_otp = client.post(f"/v1/Devices/{first['deviceId']}/Renew", json={})
        short = client.post(f"/v1/Devices/{first['deviceId']}/Renew", json={"otp": "12345"})
        extra = client.post(f"/v1/Devices/{first['deviceId']}/Renew", json={"OTP": "123456", "Csr": "x"})
    assert unknown.status_code == 404
    assert no_otp.status_code == 400 and no_otp.json()["errorList"][0]["field"] == "OTP"
    assert short.status_code == 400 and short.json()["errorList"][0]["field"] == "OTP"
    assert extra.status_code == 400 and extra.json()["errorList"][0]["field"] == "Csr"


def not_reporting(counts: dict[str, Any]) -> dict[str, int]:
    """The emulator's request counts per endpoint, but those of reporting (the outbox's retries)."""
    return {name: count for name, count in counts["by_endpoint"].items() if "reporting" not in name}


def test_renewal_is_refused_while_an_invoice_waits_for_zatca(
    invoicing_service: RunningService, emulator: Any
) -> None:
    """An invoice signed with the current certificate and not yet reported would go to ZATCA with
    the renewed CSID and be rejected for good: the renewal is refused (409) before any ZATCA call,
    and the device goes on invoicing with its old credentials."""
    service = invoicing_service
    device_id = new_model_device(service, emulator)
    before = service.registry_rows()[device_id]
    # Reporting fails until the faults are dropped: the invoice stays in the outbox.
    httpx.post(
        f"{emulator.base_url}/emulator/faults",
        json={"kind": "error-500", "count": 10_000, "endpoint": "reporting"},
        timeout=10,
    ).raise_for_status()
    try:
        with service.client() as client:
            waiting = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
            assert waiting.status_code == 201, waiting.text
            assert waiting.json()["status"] == "Pending"
            renewals_before = httpx.get(f"{emulator.base_url}/emulator/requests", timeout=10).json()
            refused = renew(service, emulator, device_id)
            renewals_after = httpx.get(f"{emulator.base_url}/emulator/requests", timeout=10).json()
    finally:
        httpx.delete(f"{emulator.base_url}/emulator/faults", timeout=10).raise_for_status()
    assert refused.status_code == 409, refused.text
    error = refused.json()["errorList"][0]
    assert error["code"] == "Invoices-Awaiting-Zatca"
    assert "waiting to be sent to ZATCA" in error["message"]
    assert not_reporting(renewals_after) == not_reporting(renewals_before), "a request reached ZATCA"
    after = service.registry_rows()[device_id]
    for column in ("key_id_hex", "binary_security_token", "secret_ciphertext", "certificate_serial"):
        assert after[column] == before[column], column
    assert after["renewal_key_id_hex"] is None

    with service.client() as client:
        wait_until_delivered(client, device_id)
        later = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
        assert later.status_code == 201, later.text
        wait_until_delivered(client, device_id)
        for answer in (waiting.json(), later.json()):
            stored = client.get(f"/v1/Invoices/{answer['invoiceId']}").json()
            assert stored["status"] in ("Reported", "ReportedWithWarnings"), stored
    assert service.registry_rows()[device_id]["key_id_hex"] == before["key_id_hex"]
    # Nothing waits any more: the renewal goes through.
    assert renew(service, emulator, device_id).status_code == 200
