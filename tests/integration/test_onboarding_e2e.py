"""Registration runs the whole onboarding: compliance CSID, compliance documents, production CSID.

Real SoftHSM token, the emulator on loopback (which checks every document like ZATCA), the
service over HTTP. The emulator's store is the independent witness of what was sent.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.invoices import INITIAL_PIH
from tests.fixtures.service import RunningService, cli, prepare_service
from tests.fixtures.softhsm import create_token
from tests.integration.test_registration_e2e import (
    assert_token_matches_registry,
    certificate_of,
    register,
    spki,
)
from tests.support.pkcs11_tool import list_private_keys

KINDS = {
    "1100": {
        "standard-compliant",
        "standard-credit-note-compliant",
        "standard-debit-note-compliant",
        "simplified-compliant",
        "simplified-credit-note-compliant",
        "simplified-debit-note-compliant",
    },
    "1000": {"standard-compliant", "standard-credit-note-compliant", "standard-debit-note-compliant"},
    "0100": {"simplified-compliant", "simplified-credit-note-compliant", "simplified-debit-note-compliant"},
}


def device(service: RunningService, device_id: str) -> dict[str, Any]:
    with service.client() as client:
        response = client.get(f"/v1/Devices/{device_id}")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def step_name(kind: str | None) -> str:
    """The emulator names kinds `standard-credit-note`; ZATCA's steps end in `-compliant`."""
    assert kind is not None
    return kind if kind.endswith("-compliant") else f"{kind}-compliant"


@pytest.mark.parametrize(
    ("environment", "invoice_format"),
    [
        ("Development", "Model"),
        ("Simulation", "Model"),
        ("Production", "Model"),
        ("Simulation", "Xml"),
        ("Production", "Pdf"),
    ],
)
def test_registration_ends_active_with_a_production_csid_for_the_token_key(
    service: RunningService, emulator: Any, service_token: Any, environment: str, invoice_format: str
) -> None:
    response = register(service, emulator, environment=environment, invoice_format=invoice_format)
    assert response.status_code == 200, response.text
    answer = response.json()
    csr_key = spki(x509.load_pem_x509_csr(answer["CSR"].encode()).public_key())
    production = certificate_of(answer["csid"])
    assert spki(production.public_key()) == csr_key
    row = service.registry_rows()[answer["deviceId"]]
    assert row["status"] == "active" and row["credential_kind"] == "production"
    assert row["binary_security_token"] == answer["csid"]
    # Both credentials are kept; the compliance certificate is another one, for the same key.
    compliance = certificate_of(row["compliance_token"])
    assert compliance.serial_number != production.serial_number
    assert spki(compliance.public_key()) == csr_key
    view = device(service, answer["deviceId"])
    assert view["status"] == "active"
    assert view["certificate"]["kind"] == "production"
    assert view["certificate"]["serialNumber"] == format(production.serial_number, "x")
    assert view["certificate"]["notAfter"].startswith(production.not_valid_after_utc.date().isoformat())
    accepted = emulator.invoices(request_id=row["compliance_request_id"])
    assert {step_name(entry["kind"]) for entry in accepted} == KINDS["1100"]
    assert all(entry["http_status"] in (200, 202) for entry in accepted), accepted
    if invoice_format == "Model":
        assert answer["privateKey"] is None
    else:
        assert answer["privateKey"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert uuid.UUID(answer["deviceId"]).bytes.hex() in list_private_keys(service_token)
    assert_token_matches_registry(service, service_token)
    with service.client() as client:
        metrics = client.get("/metrics").text
    gauge = f'zatca_appliance_certificate_earliest_expiry_timestamp_seconds{{environment="{environment}"}}'
    (line,) = [line for line in metrics.splitlines() if line.startswith(gauge)]
    assert float(line.split()[-1]) <= production.not_valid_after_utc.timestamp()


@pytest.mark.parametrize("invoice_type", ["1100", "1000", "0100"])
def test_the_compliance_documents_are_the_kinds_of_the_invoice_type_and_pass_independent_checks(
    service: RunningService, emulator: Any, tmp_path: Path, invoice_type: str
) -> None:
    from fatoora import Config, Environment, validate_zatca_invoice_from_str

    response = register(service, emulator, InvoiceType=invoice_type)
    assert response.status_code == 200, response.text
    row = service.registry_rows()[response.json()["deviceId"]]
    entries = emulator.invoices(request_id=row["compliance_request_id"])
    assert sorted(step_name(entry["kind"]) for entry in entries) == sorted(KINDS[invoice_type])
    certificate = certificate_of(row["compliance_token"])
    certificate_path = tmp_path / "compliance.pem"
    certificate_path.write_bytes(certificate.public_bytes(Encoding.PEM))
    first_pihs = []
    for entry in entries:
        xml = Path(entry["xml_file"]).read_bytes()
        report = validate_zatca_invoice_from_str(Config(Environment.NON_PRODUCTION), xml.decode())
        errors = [
            finding
            for stage in report.get("stages", [])
            for finding in stage.get("findings", [])
            if str(finding.get("severity", "")).lower() in ("error", "fatal")
        ]
        assert not errors, (entry["kind"], errors)
        verified = cli(
            "invoice", "verify", entry["xml_file"], "--certificate", str(certificate_path), check=False
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        if b"<cbc:UUID>1</cbc:UUID>" in xml:
            first_pihs.append(xml)
    # The compliance documents have their own chain from the initial PIH (they start no device chain).
    assert len(first_pihs) == 1 and INITIAL_PIH.encode() in first_pihs[0]


def test_a_refused_compliance_document_fails_the_registration_with_zatca_codes(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    emulator.set_behaviour(refuse_kind="simplified-credit-note")
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    response = register(service, emulator, egs_serial=serial)
    assert response.status_code == 400, response.text
    items = response.json()["errorList"]
    assert all(item["source"] == "ZATCA" for item in items)
    assert any("simplified-credit-note" in item["message"] for item in items), items
    rows = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    assert [row["status"] for row in rows] == ["failed"]
    assert rows[0]["failure_code"] == items[0]["code"]
    assert rows[0]["key_id_hex"] not in list_private_keys(service_token)
    assert_token_matches_registry(service, service_token)
    emulator.set_behaviour(refuse_kind="")
    again = register(service, emulator, egs_serial=serial)
    assert again.status_code == 200, again.text


def test_missing_compliance_steps_fails_the_registration_with_zatcas_code(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    # ZATCA accepts the document but keeps no record of that step: the production CSID is refused.
    emulator.set_behaviour(forget_kind="standard-debit-note")
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    response = register(service, emulator, egs_serial=serial)
    assert response.status_code == 400, response.text
    items = response.json()["errorList"]
    assert [item["code"] for item in items] == ["Missing-ComplianceSteps"], items
    assert all(item["source"] == "ZATCA" for item in items)
    (row,) = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    assert row["status"] == "failed" and row["failure_code"] == "Missing-ComplianceSteps"
    assert row["key_id_hex"] not in list_private_keys(service_token)
    assert_token_matches_registry(service, service_token)
    emulator.set_behaviour(forget_kind="")
    again = register(service, emulator, egs_serial=serial)
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("timeout", 504, "ZATCA-Timeout"), ("error-500", 502, "ZATCA-Unavailable")],
)
def test_a_production_csid_timeout_or_500_fails_the_registration_and_destroys_the_key(
    service: RunningService, emulator: Any, service_token: Any, fault: str, status: int, code: str
) -> None:
    emulator.inject_fault(fault, endpoint="production-csids")
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    response = register(service, emulator, egs_serial=serial)
    assert response.status_code == status, response.text
    assert response.json()["errorList"][0]["code"] == code
    assert "production-csid" in response.json()["errorList"][0]["message"]
    (row,) = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    assert row["status"] == "failed" and row["failure_code"] == code
    assert row["compliance_request_id"]  # it got as far as the compliance CSID and its checks
    assert row["key_id_hex"] not in list_private_keys(service_token)
    assert_token_matches_registry(service, service_token)
    again = register(service, emulator, egs_serial=serial)
    assert again.status_code == 200, again.text


def test_compliance_onboarding_mode_keeps_the_compliance_csid(emulator: Any, tmp_path: Path) -> None:
    # Its own token: a second service on the session's token would reconcile its keys away.
    token = create_token(tmp_path / "token", "zatca-compliance-mode")
    compliance_only = prepare_service(token, emulator, tmp_path / "svc", onboarding="compliance")
    compliance_only.start()
    try:
        requests_before = emulator.request_counts()
        response = register(compliance_only, emulator)
        assert response.status_code == 200, response.text
        row = compliance_only.registry_rows()[response.json()["deviceId"]]
        assert row["credential_kind"] == "compliance" and row["compliance_token"] == response.json()["csid"]
        requests_after = emulator.request_counts()
        assert {name for name in requests_after if requests_after[name] != requests_before.get(name)} == {
            "POST /e-invoicing/simulation/compliance"
        }
        assert device(compliance_only, response.json()["deviceId"])["certificate"]["kind"] == "compliance"
    finally:
        compliance_only.stop()
