"""The emulator judges invoices as ZATCA does: compliance checks, reporting, clearance, over real HTTP.

Documents are rendered from the invoice core's compliance samples and signed with a software key whose
certificate the emulator issued (a CSID obtained with a CSR, as a device would).
"""

from __future__ import annotations

import base64
import hashlib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from lxml import etree

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ZatcaRejected, ZatcaTimeout, ZatcaUnavailable
from appliance.invoices.model import InvoiceKind, InvoiceType, SellerIdentity
from appliance.invoices.namespaces import INITIAL_PIH, XPATH_NS
from appliance.invoices.qr import decode_qr, encode_tlv
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_model
from appliance.invoices.stamp import stamp_invoice
from appliance.invoices.verify import verify_invoice
from appliance.zatca import Credentials, InvoiceSubmission, ZatcaClient
from tests.fixtures.emulator import (
    SANDBOX_OTP,
    TEST_VAT,
    EmulatorProcess,
    basic_authorization,
    csr_request_value,
    new_device_key,
    project_csr,
    zatca_headers,
)

PORTAL = "Development"
SELLER_NAME = "Maximum Speed Tech Supply LTD"
ALL_KINDS: list[tuple[InvoiceType, InvoiceKind]] = [
    (doc_type, kind)
    for doc_type in ("Standard", "Simplified")
    for kind in ("Invoice", "CreditNote", "DebitNote")
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client(emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.environment_url(PORTAL), timeout=30.0) as http:
        yield http


@dataclass
class Device:
    """A key and the CSID the emulator issued for it."""

    key: ec.EllipticCurvePrivateKey
    request_id: int
    token: str
    secret: str

    @property
    def authorization(self) -> str:
        return basic_authorization(self.token, self.secret)

    @property
    def certificate_der(self) -> bytes:
        return base64.b64decode(base64.b64decode(self.token))

    def sign(self, digest: bytes) -> bytes:
        return self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


@dataclass
class Document:
    xml: bytes
    invoice_hash: str
    uuid: str

    def body(
        self, *, xml: bytes | None = None, invoice_hash: str | None = None, uuid: str | None = None
    ) -> Any:
        return {
            "invoiceHash": invoice_hash or self.invoice_hash,
            "uuid": uuid or self.uuid,
            "invoice": base64.b64encode(self.xml if xml is None else xml).decode(),
        }


def compliance_device(client: httpx.Client, *, invoice_type: str = "1100", vat: str = TEST_VAT) -> Device:
    key = new_device_key()
    csr = project_csr(Environment.DEVELOPMENT, key, vat=vat, invoice_type=invoice_type)
    response = client.post(
        "/compliance", json={"csr": csr_request_value(csr)}, headers=zatca_headers(otp=SANDBOX_OTP)
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return Device(key, answer["requestID"], answer["binarySecurityToken"], answer["secret"])


def production_device(
    client: httpx.Client, emulator: EmulatorProcess, *, invoice_type: str = "1100"
) -> Device:
    compliance = compliance_device(client, invoice_type=invoice_type)
    emulator.pass_compliance_steps(compliance.request_id)
    response = client.post(
        "/production/csids",
        json={"compliance_request_id": str(compliance.request_id)},
        headers=zatca_headers(authorization=compliance.authorization),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    return Device(compliance.key, answer["requestID"], answer["binarySecurityToken"], answer["secret"])


def document(
    device: Device,
    doc_type: InvoiceType = "Simplified",
    kind: InvoiceKind = "Invoice",
    *,
    seller_vat: str = TEST_VAT,
    pih: str = INITIAL_PIH,
    icv: int = 1,
) -> Document:
    model = sample_model(kind, doc_type, seller_vat=seller_vat)
    unsigned = render_invoice(model, SellerIdentity(seller_vat, SELLER_NAME), icv=icv, pih=pih)
    signed = stamp_invoice(unsigned, device.certificate_der, device.sign)
    return Document(signed.xml, signed.invoice_hash, model.uuid)


def submit(client: httpx.Client, path: str, device: Device, body: Any) -> httpx.Response:
    headers = zatca_headers(authorization=device.authorization)
    if path != "/compliance/invoices":
        headers["Clearance-Status"] = "1" if "clearance" in path else "0"
    return client.post(path, json=body, headers=headers)


def codes(response: httpx.Response, bucket: str = "errorMessages") -> set[tuple[str, str]]:
    return {(m["code"], m["category"]) for m in response.json()["validationResults"][bucket]}


def text_of(xml: bytes, path: str) -> str:
    found = etree.fromstring(xml).xpath(path, namespaces=XPATH_NS)
    assert isinstance(found, list) and found
    node = found[0]
    assert isinstance(node, etree._Element) and node.text is not None
    return node.text


def replace_once(xml: bytes, old: bytes, new: bytes) -> bytes:
    assert xml.count(old) == 1, old
    return xml.replace(old, new)


QR_PATH = "cac:AdditionalDocumentReference[cbc:ID='QR']/cac:Attachment/cbc:EmbeddedDocumentBinaryObject"
SIGNATURE_PATH = "ext:UBLExtensions//ds:SignatureValue"


# --- accepted documents --------------------------------------------------------------------------


@pytest.mark.parametrize(("doc_type", "kind"), ALL_KINDS)
def test_correctly_signed_compliance_document_passes(
    client: httpx.Client, doc_type: InvoiceType, kind: InvoiceKind
) -> None:
    device = compliance_device(client)
    response = submit(client, "/compliance/invoices", device, document(device, doc_type, kind).body())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["validationResults"]["status"] == "PASS"
    assert ("XSD_ZATCA_VALID", "XSD validation") in codes(response, "infoMessages")
    if doc_type == "Standard":
        assert (answer["clearanceStatus"], answer["reportingStatus"]) == ("CLEARED", None)
    else:
        assert (answer["reportingStatus"], answer["clearanceStatus"]) == ("REPORTED", None)


def test_reporting_accepts_then_answers_409_for_the_same_hash(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    sent = document(device, "Simplified")
    first = submit(client, "/invoices/reporting/single", device, sent.body())
    assert first.status_code == 200, first.text
    assert first.json()["reportingStatus"] == "REPORTED"
    again = submit(client, "/invoices/reporting/single", device, sent.body())
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["category"]) == ("Invoice-Errors", "Duplicate-Invoice")


def test_reporting_a_standard_document_answers_303(client: httpx.Client, emulator: EmulatorProcess) -> None:
    device = production_device(client, emulator)
    response = submit(client, "/invoices/reporting/single", device, document(device, "Standard").body())
    assert response.status_code == 303


def test_clearance_returns_the_document_stamped_by_the_emulator_ca_and_208_for_a_repeat(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    sent = document(device, "Standard")
    response = submit(client, "/invoices/clearance/single", device, sent.body())
    assert response.status_code == 200, response.text
    assert response.json()["clearanceStatus"] == "CLEARED"
    cleared = base64.b64decode(response.json()["clearedInvoice"])
    ca = x509.load_pem_x509_certificate(emulator.ca_certificate_pem())
    report = verify_invoice(cleared, ca)
    assert report.ok, report.failed
    assert report.invoice_hash == sent.invoice_hash  # ZATCA's stamp does not change the invoice hash
    assert decode_qr(text_of(cleared, QR_PATH))[6] == sent.invoice_hash.encode()
    again = submit(client, "/invoices/clearance/single", device, sent.body())
    assert again.status_code == 208
    assert verify_invoice(base64.b64decode(again.json()["clearedInvoice"]), ca).ok


def test_clearance_refuses_a_simplified_document(client: httpx.Client, emulator: EmulatorProcess) -> None:
    device = production_device(client, emulator)
    response = submit(client, "/invoices/clearance/single", device, document(device, "Simplified").body())
    assert response.status_code == 400
    assert response.json()["clearanceStatus"] == "NOT_CLEARED"


def test_reporting_warns_when_the_pih_does_not_follow_the_chain(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    first = document(device, icv=1)
    assert submit(client, "/invoices/reporting/single", device, first.body()).status_code == 200
    second = document(device, icv=2, pih=first.invoice_hash)
    assert submit(client, "/invoices/reporting/single", device, second.body()).status_code == 200
    stray = document(device, icv=3, pih=first.invoice_hash)
    response = submit(client, "/invoices/reporting/single", device, stray.body())
    assert response.status_code == 202
    assert codes(response, "warningMessages") == {("invalid-previous-invoice-hash", "INVOICE_HASHING_ERRORS")}
    assert response.json()["reportingStatus"] == "REPORTED"


# --- refusals ------------------------------------------------------------------------------------


def _hex_text_signature(device: Device, xml: bytes, invoice_hash: str) -> bytes:
    """Odoo's mistake: ECDSA over the hash's hex text, not its raw bytes; the QR repeats the new value."""
    hex_text = base64.b64decode(invoice_hash).hex().encode()
    wrong = base64.b64encode(device.key.sign(hex_text, ec.ECDSA(hashes.SHA256()))).decode()
    old = text_of(xml, SIGNATURE_PATH)
    tags = decode_qr(text_of(xml, QR_PATH))
    tags[7] = wrong.encode()
    xml = replace_once(xml, old.encode(), wrong.encode())
    return replace_once(xml, text_of(xml, QR_PATH).encode(), encode_tlv(tags).encode())


def _qr_tag_4_wrong(xml: bytes) -> bytes:
    qr = text_of(xml, QR_PATH)
    tags = decode_qr(qr)
    tags[4] = b"9999.99"
    return replace_once(xml, qr.encode(), encode_tlv(tags).encode())


def _signing_time_moved(xml: bytes) -> bytes:
    signing_time = text_of(xml, "ext:UBLExtensions//xades:SigningTime")
    moved = signing_time.replace(signing_time[:4], str(int(signing_time[:4]) - 1), 1)
    return replace_once(xml, signing_time.encode(), moved.encode())


def _payable_amount_edited(xml: bytes) -> bytes:
    amount = text_of(xml, "cac:LegalMonetaryTotal/cbc:PayableAmount")
    return replace_once(
        xml, f">{amount}</cbc:PayableAmount>".encode(), f">{amount}1</cbc:PayableAmount>".encode()
    )


Tampering = Callable[[Device, bytes, str], bytes]
TAMPERINGS: dict[str, tuple[Tampering, tuple[str, str]]] = {
    "whitespace-in-body": (
        lambda _device, xml, _hash: replace_once(
            xml, b"<cac:AccountingSupplierParty>", b"\n <cac:AccountingSupplierParty>"
        ),
        ("invalid-invoice-hash", "INVOICE_HASHING_ERRORS"),
    ),
    "payable-amount-edited": (
        lambda _device, xml, _hash: _payable_amount_edited(xml),
        ("invalid-invoice-hash", "INVOICE_HASHING_ERRORS"),
    ),
    "signed-properties-edited": (
        lambda _device, xml, _hash: _signing_time_moved(xml),
        ("signed-properties-hashing", "CERTIFICATE_ERRORS"),
    ),
    "qr-tag-4-wrong": (
        lambda _device, xml, _hash: _qr_tag_4_wrong(xml),
        ("QRCODE_INVALID", "QRCODE_VALIDATION"),
    ),
    "hex-text-signature": (_hex_text_signature, ("invalid-signature", "SIGNATURE_ERROR")),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_each_tampering_is_refused_with_zatca_category_and_code(client: httpx.Client, name: str) -> None:
    tamper, expected = TAMPERINGS[name]
    device = compliance_device(client)
    sent = document(device, "Simplified")
    tampered = tamper(device, sent.xml, sent.invoice_hash)
    # The client's request hash is the one it computed before the bytes changed.
    response = submit(client, "/compliance/invoices", device, sent.body(xml=tampered))
    assert response.status_code == 400, response.text
    assert expected in codes(response)
    answer = response.json()
    assert answer["validationResults"]["status"] == "ERROR"
    assert answer["reportingStatus"] == "NOT_REPORTED"


def test_signed_with_another_certificate_in_keyinfo_is_refused(client: httpx.Client) -> None:
    device, other = compliance_device(client), compliance_device(client)
    sent = document(device, "Simplified")
    mine = base64.b64encode(device.certificate_der)
    theirs = base64.b64encode(other.certificate_der)
    response = submit(
        client, "/compliance/invoices", device, sent.body(xml=replace_once(sent.xml, mine, theirs))
    )
    assert response.status_code == 400
    assert {
        ("certificate-permissions", "CERTIFICATE_ERRORS"),
        ("certificate-hashing", "CERTIFICATE_ERRORS"),
    } <= (codes(response))


def test_correct_document_sent_with_other_credentials_is_refused_certificate_permissions(
    client: httpx.Client,
) -> None:
    device, other = compliance_device(client), compliance_device(client)
    response = submit(client, "/compliance/invoices", other, document(device, "Standard").body())
    assert response.status_code == 400
    assert codes(response) == {("certificate-permissions", "CERTIFICATE_ERRORS")}


def test_seller_vat_other_than_the_certificate_uid_is_refused(client: httpx.Client) -> None:
    device = compliance_device(client)
    sent = document(device, "Standard", seller_vat="300000000000003")
    response = submit(client, "/compliance/invoices", device, sent.body())
    assert response.status_code == 400
    assert ("certificate-permissions", "CERTIFICATE_ERRORS") in codes(response)
    assert any("vat number" in m["message"] for m in response.json()["validationResults"]["errorMessages"])


def test_kind_not_covered_by_the_title_is_refused(client: httpx.Client) -> None:
    device = compliance_device(client, invoice_type="1000")
    response = submit(client, "/compliance/invoices", device, document(device, "Simplified").body())
    assert response.status_code == 400
    assert codes(response) == {("certificate-permissions", "CERTIFICATE_ERRORS")}


def test_request_uuid_and_hash_must_match_the_document(client: httpx.Client) -> None:
    device = compliance_device(client)
    sent = document(device, "Standard")
    wrong_uuid = submit(
        client, "/compliance/invoices", device, sent.body(uuid="00000000-0000-4000-8000-000000000000")
    )
    assert wrong_uuid.status_code == 400
    assert codes(wrong_uuid) == {("uuid-mismatch", "INVOICE_ERRORS")}
    other_hash = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    wrong_hash = submit(client, "/compliance/invoices", device, sent.body(invoice_hash=other_hash))
    assert codes(wrong_hash) == {("invalid-invoice-hash", "INVOICE_HASHING_ERRORS")}


def test_credentials_are_checked_per_endpoint(client: httpx.Client, emulator: EmulatorProcess) -> None:
    compliance = compliance_device(client)
    production = production_device(client, emulator)
    assert submit(client, "/invoices/reporting/single", compliance, {}).status_code == 401
    assert submit(client, "/compliance/invoices", production, {}).status_code == 401
    stranger = Device(compliance.key, 0, compliance.token, "not-the-secret")
    assert submit(client, "/compliance/invoices", stranger, {}).status_code == 401


# --- compliance steps ----------------------------------------------------------------------------


def _production_csid(client: httpx.Client, device: Device) -> httpx.Response:
    return client.post(
        "/production/csids",
        json={"compliance_request_id": str(device.request_id)},
        headers=zatca_headers(authorization=device.authorization),
    )


def test_production_csid_waits_until_every_kind_of_the_title_passed(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = compliance_device(client, invoice_type="0100")
    for kind in ("Invoice", "CreditNote"):
        assert submit(
            client, "/compliance/invoices", device, document(device, "Simplified", kind).body()
        ).is_success
    refused = _production_csid(client, device)
    assert refused.status_code == 400
    assert refused.json()["code"] == "Missing-ComplianceSteps"
    assert "[simplified-debit-note-compliant]" in refused.json()["message"]
    last = document(device, "Simplified", "DebitNote")
    assert submit(client, "/compliance/invoices", device, last.body()).status_code == 200
    assert _production_csid(client, device).status_code == 200
    kinds = [entry["kind"] for entry in emulator.invoices(device.request_id)]
    assert kinds == ["simplified", "simplified-credit-note", "simplified-debit-note"]


def test_refuse_kind_switch_refuses_that_kind_and_blocks_the_production_csid(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    emulator.set_behaviour(refuse_kind="simplified-credit-note")
    device = compliance_device(client, invoice_type="0100")
    for kind in ("Invoice", "CreditNote", "DebitNote"):
        response = submit(client, "/compliance/invoices", device, document(device, "Simplified", kind).body())
        assert response.status_code == (400 if kind == "CreditNote" else 200), response.text
    refused = _production_csid(client, device)
    assert "[simplified-credit-note-compliant]" in refused.json()["message"]


def test_refuse_kind_must_name_a_document_kind(emulator: EmulatorProcess) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        emulator.set_behaviour(refuse_kind="simplified-credit")


# --- what is kept --------------------------------------------------------------------------------


def test_every_received_document_is_kept_with_its_verdict_owner_only(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = compliance_device(client)
    sent = document(device, "Standard")
    submit(client, "/compliance/invoices", device, sent.body())
    submit(client, "/compliance/invoices", device, sent.body(xml=_payable_amount_edited(sent.xml)))
    entries = emulator.invoices(device.request_id)
    assert [(e["uuid"], e["http_status"], e["kind"]) for e in entries] == [
        (sent.uuid, 200, "standard"),
        (sent.uuid, 400, "standard"),
    ]
    xml_file, verdict_file = Path(entries[-1]["xml_file"]), Path(entries[-1]["verdict_file"])
    assert xml_file == emulator.data_dir / "invoices" / f"{sent.uuid}.xml"
    assert xml_file.read_bytes() == _payable_amount_edited(sent.xml)
    assert '"invalid-invoice-hash"' in verdict_file.read_text()
    for path in (xml_file, verdict_file, emulator.data_dir / "emulator.sqlite3"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# --- faults and the client ----------------------------------------------------------------------


def zatca_client(emulator: EmulatorProcess, read_timeout: float = 30.0) -> ZatcaClient:
    return ZatcaClient(ZatcaSettings(base_urls=emulator.base_urls(), read_timeout=read_timeout))


def submission(sent: Document) -> InvoiceSubmission:
    return InvoiceSubmission(invoice_hash=sent.invoice_hash, uuid=sent.uuid, invoice_xml=sent.xml)


@pytest.mark.anyio
async def test_client_reports_clears_and_sees_duplicates_through_the_emulator(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    credentials = Credentials(device.token, device.secret)
    simplified, standard = document(device, "Simplified"), document(device, "Standard", icv=2)
    async with zatca_client(emulator) as zatca:
        reported = await zatca.report_invoice(Environment.DEVELOPMENT, credentials, submission(simplified))
        assert reported.accepted and reported.reporting_status == "REPORTED"
        repeated = await zatca.report_invoice(Environment.DEVELOPMENT, credentials, submission(simplified))
        assert repeated.duplicate and repeated.http_status == 409
        cleared = await zatca.clear_invoice(Environment.DEVELOPMENT, credentials, submission(standard))
        assert cleared.accepted and cleared.cleared_invoice is not None
        with pytest.raises(ZatcaRejected) as raised:
            await zatca.report_invoice(Environment.DEVELOPMENT, credentials, submission(standard))
        assert raised.value.status_code == 303


@pytest.mark.anyio
async def test_client_gets_a_rejection_result_from_compliance(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = compliance_device(client)
    sent = document(device, "Simplified")
    bad = InvoiceSubmission(sent.invoice_hash, sent.uuid, _qr_tag_4_wrong(sent.xml))
    async with zatca_client(emulator) as zatca:
        result = await zatca.submit_compliance_invoice(
            Environment.DEVELOPMENT, Credentials(device.token, device.secret), bad
        )
    assert not result.accepted and result.http_status == 400 and result.status == "ERROR"
    assert ("QRCODE_INVALID", "QRCODE_VALIDATION") in {(m.code, m.category) for m in result.error_messages}


@pytest.mark.anyio
async def test_invoice_endpoint_faults_hit_only_the_invoice_endpoints(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    credentials = Credentials(device.token, device.secret)
    emulator.inject_fault("error-500", endpoint="invoices")
    emulator.inject_fault("connection-drop", endpoint="reporting")
    # An onboarding call passes untouched while the invoice faults wait for their endpoints.
    compliance_device(client)
    assert len(emulator.pending_faults()) == 2
    async with zatca_client(emulator) as zatca:
        with pytest.raises(ZatcaUnavailable) as server_error:
            await zatca.clear_invoice(
                Environment.DEVELOPMENT, credentials, submission(document(device, "Standard"))
            )
        assert server_error.value.reason == "server-error"
        with pytest.raises(ZatcaUnavailable) as dropped:
            await zatca.report_invoice(Environment.DEVELOPMENT, credentials, submission(document(device)))
        # Headers then EOF: httpx sees a broken exchange (or, by TCP timing, a read error).
        assert dropped.value.reason in {"bad-response", "connect"} and dropped.value.status_code is None
        assert emulator.pending_faults() == []
        result = await zatca.report_invoice(
            Environment.DEVELOPMENT, credentials, submission(document(device))
        )
    assert result.accepted


@pytest.mark.anyio
async def test_timeout_fault_on_reporting_is_a_client_timeout(
    client: httpx.Client, emulator: EmulatorProcess
) -> None:
    device = production_device(client, emulator)
    emulator.inject_fault("timeout", endpoint="reporting")
    async with zatca_client(emulator, read_timeout=0.5) as zatca:
        with pytest.raises(ZatcaTimeout):
            await zatca.report_invoice(
                Environment.DEVELOPMENT,
                Credentials(device.token, device.secret),
                submission(document(device)),
            )
