"""Invoices signed in the token with a sealed device key, judged by fatoora-rs and `invoice verify`.

The device is registered through the running service and the emulator (so its certificate is a
real CSID for the token's key); the documents are rendered from invoice models, stamped through a
second session on the same token (as the admin commands do beside a running service) and then
checked by an independent validator: fatoora-rs (ZATCA's XSD and rule set, signature, QR, PIH).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fatoora import Config, Environment, validate_zatca_invoice_from_str

from appliance.hsm import KeyStore
from appliance.invoices import (
    INITIAL_PIH,
    SellerIdentity,
    decode_invoice_model,
    invoice_hash,
    render_invoice,
    stamp_invoice,
    verify_invoice,
)
from appliance.zatca.token import decode_binary_security_token
from tests.fixtures.service import RunningService, cli
from tests.integration.test_registration_e2e import register
from tests.support.invoice_models import BUYER, ISSUE_DATE, model

EVALUATED_AT = f"{ISSUE_DATE}T12:00:00Z"
# What fatoora-rs says of our documents that is advice, not an error; each entry says why it is
# expected, and anything else it reports fails the test.
EXPECTED_WARNINGS: dict[str, str] = {}


def arabic() -> dict[str, Any]:
    buyer = dict(BUYER, Name="شركة المشتري المحدودة", StreetName="طريق الملك فهد", CityName="الرياض")
    return model(
        "Invoice",
        "Standard",
        Buyer=buyer,
        Lines=[
            {"Name": "قهوة عربية", "Quantity": "3", "UnitPrice": "12.50", "VatCategory": "S", "VatRate": "15"}
        ],
    )


def zero_rated_and_exempt() -> dict[str, Any]:
    return model(
        Lines=[
            {"Name": "Coffee", "Quantity": "2", "UnitPrice": "10.00", "VatCategory": "S", "VatRate": "15"},
            {
                "Name": "Bread",
                "Quantity": "1.5",
                "UnitPrice": "4",
                "VatCategory": "Z",
                "VatRate": "0",
                "ExemptionReasonCode": "VATEX-SA-32",
                "ExemptionReason": "Export of goods",
            },
            {
                "Name": "Tuition",
                "Quantity": "1",
                "UnitPrice": "100",
                "VatCategory": "E",
                "VatRate": "0",
                "ExemptionReasonCode": "VATEX-SA-29",
                "ExemptionReason": "Financial services",
            },
        ]
    )


def discounts() -> dict[str, Any]:
    return model(
        "Invoice",
        "Standard",
        Lines=[
            {
                "Name": "Coffee",
                "Quantity": "2",
                "UnitPrice": "10.00",
                "Discount": "1.50",
                "VatCategory": "S",
                "VatRate": "15",
            },
            {"Name": "Tea", "Quantity": "4", "UnitPrice": "3.25", "VatCategory": "S", "VatRate": "15"},
        ],
        Discount={"Amount": "1.00", "VatCategory": "S", "VatRate": "15", "Reason": "Loyalty"},
    )


def three_decimal_quantities() -> dict[str, Any]:
    return model(
        Lines=[
            {
                "Name": "Olives",
                "Quantity": "1.235",
                "UnitCode": "KGM",
                "UnitPrice": "33.10",
                "VatCategory": "S",
                "VatRate": "15",
            },
            {
                "Name": "Cheese",
                "Quantity": "0.455",
                "UnitCode": "KGM",
                "UnitPrice": "79.95",
                "VatCategory": "S",
                "VatRate": "15",
            },
        ]
    )


def two_hundred_lines() -> dict[str, Any]:
    lines = [
        {
            "Name": f"Item {n}",
            "Quantity": str(1 + n % 7),
            "UnitPrice": f"{1 + n % 13}.{n % 100:02d}",
            "VatCategory": "S",
            "VatRate": "15",
        }
        for n in range(200)
    ]
    return model(Lines=lines)


CASES: dict[str, Any] = {
    "simplified-invoice": lambda: model("Invoice", "Simplified"),
    "simplified-credit-note": lambda: model("CreditNote", "Simplified"),
    "simplified-debit-note": lambda: model("DebitNote", "Simplified"),
    "standard-invoice": lambda: model("Invoice", "Standard"),
    "standard-credit-note": lambda: model("CreditNote", "Standard"),
    "standard-debit-note": lambda: model("DebitNote", "Standard"),
    "arabic-names": arabic,
    "zero-rated-and-exempt": zero_rated_and_exempt,
    "line-and-document-discounts": discounts,
    "three-decimal-quantities": three_decimal_quantities,
    "two-hundred-lines": two_hundred_lines,
}


class SealedDevice:
    def __init__(self, record: dict[str, Any], store: KeyStore) -> None:
        self.device_id = record["device_id"]
        self.seller = SellerIdentity(vat=record["vat"], name=record["organization_name"])
        assert record["status"] == "active" and record["credential_kind"] == "production", record
        self.certificate_der = decode_binary_security_token(record["binary_security_token"])
        self._store = store
        self._key = uuid.UUID(hex=record["key_id_hex"])

    def sign(self, digest: bytes) -> bytes:
        return self._store.sign_digest(self._key, digest)


@pytest.fixture(scope="module")
def sealed_device(service: RunningService, emulator: Any, service_token: Any) -> Iterator[SealedDevice]:
    response = register(service, emulator, invoice_format="Model")
    assert response.status_code == 200, response.text
    assert response.json()["privateKey"] is None
    device_id = response.json()["deviceId"]
    record = service.registry_rows()[device_id]
    assert "never extractable" in service_token.access_line(record["key_id_hex"])
    store = KeyStore.open(service_token.settings())
    try:
        yield SealedDevice(record, store)
    finally:
        store.close()


def fatoora_findings(xml: bytes, pih: str) -> dict[str, list[dict[str, Any]]]:
    report = validate_zatca_invoice_from_str(
        Config(Environment.NON_PRODUCTION), xml.decode(), previous_invoice_hash=pih, evaluated_at=EVALUATED_AT
    )
    return {stage["stage"]: stage["findings"] for stage in report["stages"]} | {"_report": [report]}


def assert_fatoora_passes(xml: bytes, pih: str) -> None:
    findings = fatoora_findings(xml, pih)
    report = findings.pop("_report")[0]
    errors = [f for stage in findings.values() for f in stage if f["severity"].lower() == "error"]
    assert errors == [], errors
    warnings = {f["code"] for stage in findings.values() for f in stage if f["severity"].lower() == "warning"}
    assert warnings <= set(EXPECTED_WARNINGS), warnings - set(EXPECTED_WARNINGS)
    assert report["is_valid"] and report["is_complete"], report


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_and_token_signed_document_passes_fatoora_and_our_verifier(
    sealed_device: SealedDevice, case: str
) -> None:
    invoice_model = decode_invoice_model(json.dumps(CASES[case]()).encode())
    pih = (
        INITIAL_PIH if case.startswith("simplified-invoice") else base64.b64encode(bytes(range(32))).decode()
    )
    unsigned = render_invoice(invoice_model, sealed_device.seller, icv=7, pih=pih)
    signed = stamp_invoice(unsigned, sealed_device.certificate_der, sealed_device.sign)

    assert signed.invoice_hash == invoice_hash(unsigned) == invoice_hash(signed.xml)
    assert_fatoora_passes(signed.xml, pih)
    report = verify_invoice(signed.xml, sealed_device.certificate_der, previous_hash=pih)
    assert report.ok, [check for check in report.checks if not check.ok]


def test_admin_commands_render_sign_verify_beside_the_running_service(
    service: RunningService, sealed_device: SealedDevice, tmp_path: Path
) -> None:
    config = str(service.config_path)
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(model("CreditNote", "Simplified")), encoding="utf-8")
    pih = INITIAL_PIH

    rendered = cli(
        "invoice",
        "render",
        "--config",
        config,
        "--device-id",
        sealed_device.device_id,
        "--input",
        str(model_file),
        "--icv",
        "1",
        "--pih",
        pih,
    )
    unsigned = tmp_path / "unsigned.xml"
    unsigned.write_text(rendered.stdout, encoding="utf-8")
    signed_run = cli(
        "invoice",
        "sign",
        "--config",
        config,
        "--device-id",
        sealed_device.device_id,
        str(unsigned),
        "--signing-time",
        "2026-12-06T14:03:25",
    )
    signed = tmp_path / "signed.xml"
    signed.write_text(signed_run.stdout, encoding="utf-8")
    assert_fatoora_passes(signed.read_bytes(), pih)

    verified = cli(
        "invoice",
        "verify",
        str(signed),
        "--config",
        config,
        "--device-id",
        sealed_device.device_id,
        "--pih",
        pih,
    )
    assert verified.returncode == 0
    assert "FAIL" not in verified.stdout and "PASS signature" in verified.stdout

    printed_hash = cli("invoice", "hash", str(signed)).stdout.strip()
    assert printed_hash == invoice_hash(signed.read_bytes()) == invoice_hash(unsigned.read_bytes())

    tags = json.loads(cli("invoice", "qr", str(signed)).stdout)
    assert tags["2"] == sealed_device.seller.vat
    assert tags["6"] == printed_hash
    assert set(tags) == {str(tag) for tag in range(1, 10)}


def test_verify_command_names_the_failed_check_and_exits_1(
    sealed_device: SealedDevice, tmp_path: Path
) -> None:
    unsigned = render_invoice(
        decode_invoice_model(json.dumps(model()).encode()), sealed_device.seller, icv=1, pih=INITIAL_PIH
    )
    signed = stamp_invoice(unsigned, sealed_device.certificate_der, sealed_device.sign).xml
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.replace(b"<cbc:Name>Coffee</cbc:Name>", b"<cbc:Name>Coffea</cbc:Name>", 1))
    result = cli("invoice", "verify", str(tampered), check=False)
    assert result.returncode == 1
    assert "FAIL invoice-hash" in result.stdout


def test_render_refuses_a_bad_model_naming_the_field(
    service: RunningService, sealed_device: SealedDevice, tmp_path: Path
) -> None:
    bad = copy.deepcopy(model("CreditNote", "Simplified"))
    del bad["Reason"]
    bad["Lines"][0]["VatRate"] = "7"
    model_file = tmp_path / "bad.json"
    model_file.write_text(json.dumps(bad), encoding="utf-8")
    result = cli(
        "invoice",
        "render",
        "--config",
        str(service.config_path),
        "--device-id",
        sealed_device.device_id,
        "--input",
        str(model_file),
        "--icv",
        "1",
        "--pih",
        INITIAL_PIH,
        check=False,
    )
    assert result.returncode == 2
    assert "Reason" in result.stderr and "Lines[0].VatRate" in result.stderr
    assert result.stdout == ""
