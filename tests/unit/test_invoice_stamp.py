"""Stamping with a software signer: fatoora-rs and our verifier accept the result, tampering is named.

The signer stands in for the token exactly as the HSM path does: it receives a 32-byte digest and signs it
as-is (`Prehashed`), as raw CKM_ECDSA does. The certificate is issued in the test by a throwaway CA whose
name has the ZATCA shape (DC components), so the Java-style issuer string is exercised.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.x509.oid import NameOID
from fatoora import Config, Environment, validate_zatca_invoice_from_str

from appliance.errors import InvoiceDocumentError
from appliance.invoices import INITIAL_PIH
from appliance.invoices.facts import parse_invoice_facts
from appliance.invoices.hashing import invoice_hash
from appliance.invoices.qr import QrTooLong, decode_qr, encode_tlv
from appliance.invoices.stamp import SignerCertificateMismatch, presign, stamp_invoice
from appliance.invoices.verify import verify_invoice

DATA = Path(__file__).resolve().parents[1] / "data" / "invoices" / "sdk348"
SAMPLES = sorted(p.name for p in DATA.glob("*.xml"))
# Warnings fatoora-rs gives on these documents, each with why it is expected.
EXPECTED_WARNINGS = {
    "BR-KSA-98": "simplified documents must be reported within 24 hours of issue",
}
# The three subtrees the stamp adds, exactly as serialized (no tail text: nothing else moves).
ADDED = re.compile(
    rb"<ext:UBLExtensions>.*?</ext:UBLExtensions>"
    rb"|<cac:AdditionalDocumentReference>\s*<cbc:ID>QR</cbc:ID>.*?</cac:AdditionalDocumentReference>"
    rb"|<cac:Signature>.*?</cac:Signature>",
    re.DOTALL,
)


class Identity:
    def __init__(self, ca_name: str = "TEST-ZATCA-SubCA") -> None:
        ca_key = ec.generate_private_key(ec.SECP256K1())
        self.key = ec.generate_private_key(ec.SECP256K1())
        issuer = x509.Name(
            [
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "local"),
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "gov"),
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "extgazt"),
                x509.NameAttribute(NameOID.COMMON_NAME, ca_name),
            ]
        )
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "SA"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Riyadh Branch"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Maximum Speed Tech Supply LTD"),
                x509.NameAttribute(NameOID.COMMON_NAME, "TST-886431145-399999999900003"),
            ]
        )
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
            .sign(ca_key, hashes.SHA256())
        )
        self.issuer_text = f"CN={ca_name}, DC=extgazt, DC=gov, DC=local"
        self.digests: list[bytes] = []

    def sign(self, digest: bytes) -> bytes:
        self.digests.append(digest)
        return self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    @property
    def der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity()


def unsigned(name: str) -> bytes:
    """An SDK sample without its stamp, QR and cac:Signature (their tails stay, as the hash wants)."""
    return ADDED.sub(b"", (DATA / name).read_bytes())


def fatoora_findings(xml: bytes) -> list[tuple[str, str, str]]:
    facts = parse_invoice_facts(xml)
    at = f"{facts.issue_date}T{(facts.issue_time or '').rstrip('Z')}Z"
    result: dict[str, Any] = validate_zatca_invoice_from_str(
        Config(Environment.NON_PRODUCTION),
        xml.decode("utf-8"),
        previous_invoice_hash=INITIAL_PIH,
        evaluated_at=at,
    )
    return [(s["stage"], f["code"], f["severity"]) for s in result["stages"] for f in s["findings"]]


def fatoora_errors(xml: bytes) -> set[tuple[str, str]]:
    return {(stage, code) for stage, code, severity in fatoora_findings(xml) if severity == "error"}


def failed(xml: bytes, certificate: x509.Certificate | bytes | None = None) -> set[str]:
    return {check.name for check in verify_invoice(xml, certificate, previous_hash=INITIAL_PIH).failed}


def signed(name: str, identity: Identity) -> bytes:
    return stamp_invoice(unsigned(name), identity.der, identity.sign).xml


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_passes_fatoora_and_the_verifier(name: str, identity: Identity) -> None:
    source = unsigned(name)
    assert invoice_hash(source) == invoice_hash((DATA / name).read_bytes())
    result = stamp_invoice(
        source, identity.der, identity.sign, signing_time=datetime(2025, 7, 22, 15, 51, 28)
    )

    findings = fatoora_findings(result.xml)
    assert [f for f in findings if f[2] == "error"] == []
    assert {code for _, code, _ in findings} <= set(EXPECTED_WARNINGS)
    report = verify_invoice(result.xml, identity.certificate, previous_hash=INITIAL_PIH)
    assert report.ok, report.failed

    assert ADDED.sub(b"", result.xml) == source  # every input byte stays, in order
    assert len(ADDED.findall(result.xml)) == 3
    assert result.invoice_hash == invoice_hash(source) == report.invoice_hash
    assert identity.digests[-1] == hashlib.sha256(base64.b64decode(result.invoice_hash)).digest()
    facts = parse_invoice_facts(result.xml)
    assert (facts.qr, facts.signature_value) == (result.qr, result.signature_value)
    assert sorted(decode_qr(result.qr)) == list(range(1, 10 if facts.is_simplified else 9))
    assert f"<ds:X509IssuerName>{identity.issuer_text}</ds:X509IssuerName>".encode() in result.xml
    assert b"<xades:SigningTime>2025-07-22T15:51:28</xades:SigningTime>" in result.xml
    decode_dss_signature(base64.b64decode(result.signature_value))  # DER, not raw r||s


def test_an_already_signed_document_is_re_signed_in_place(identity: Identity) -> None:
    original = (DATA / "Simplified_Invoice.xml").read_bytes()
    result = stamp_invoice(original, identity.der, identity.sign)
    assert ADDED.sub(b"", result.xml) == ADDED.sub(b"", original)
    assert len(ADDED.findall(result.xml)) == 3
    assert failed(result.xml, identity.certificate) == set()
    again = stamp_invoice(result.xml, identity.der, identity.sign)
    assert ADDED.sub(b"", again.xml) == ADDED.sub(b"", original)
    assert failed(again.xml, identity.certificate) == set()


def test_signing_time_is_riyadh_local_without_zone(identity: Identity) -> None:
    at_utc = datetime(2026, 12, 6, 21, 30, 5, tzinfo=UTC)
    xml = stamp_invoice(
        unsigned("Standard_Invoice.xml"), identity.der, identity.sign, signing_time=at_utc
    ).xml
    assert b"<xades:SigningTime>2026-12-07T00:30:05</xades:SigningTime>" in xml
    default = stamp_invoice(unsigned("Standard_Invoice.xml"), identity.der, identity.sign).xml
    stamped = re.search(rb"<xades:SigningTime>([^<]+)</xades:SigningTime>", default)
    assert stamped is not None
    moment = datetime.strptime(stamped.group(1).decode(), "%Y-%m-%dT%H:%M:%S")
    now_riyadh = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=3)
    assert abs(moment - now_riyadh) < timedelta(minutes=1)


def test_the_stamp_refuses_a_signer_that_does_not_match_the_certificate(identity: Identity) -> None:
    stranger = Identity()
    with pytest.raises(SignerCertificateMismatch, match="do not belong together"):
        stamp_invoice(unsigned("Simplified_Invoice.xml"), identity.der, stranger.sign)
    with pytest.raises(SignerCertificateMismatch, match="DER"):
        stamp_invoice(unsigned("Simplified_Invoice.xml"), identity.der, lambda digest: bytes(64))


def public_key_der(identity: Identity) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return identity.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_a_document_signed_before_its_certificate_is_stamped_like_any_other(identity: Identity) -> None:
    # Onboarding signs its first compliance document while ZATCA issues the certificate.
    source = unsigned("Simplified_Invoice.xml")
    presigned = presign(source, public_key_der(identity), identity.sign)
    at = datetime(2025, 7, 22, 15, 51, 28)
    late = stamp_invoice(source, identity.der, presigned, signing_time=at)
    at_once = stamp_invoice(source, identity.der, lambda _: presigned.signature, signing_time=at)
    assert late == at_once
    assert late.invoice_hash == invoice_hash(source)
    assert failed(late.xml, identity.certificate) == set()
    assert [f for f in fatoora_findings(late.xml) if f[2] == "error"] == []


def test_a_presigned_document_is_refused_with_a_certificate_for_another_key(identity: Identity) -> None:
    stranger = Identity()
    source = unsigned("Simplified_Invoice.xml")
    presigned = presign(source, public_key_der(stranger), stranger.sign)
    with pytest.raises(SignerCertificateMismatch, match="does not certify the key"):
        stamp_invoice(source, identity.der, presigned)


def test_presign_refuses_a_signature_its_public_key_does_not_verify(identity: Identity) -> None:
    stranger = Identity()
    source = unsigned("Simplified_Invoice.xml")
    with pytest.raises(SignerCertificateMismatch, match="do not belong together"):
        presign(source, public_key_der(identity), stranger.sign)


# Negative cases: each names the failed check, in our verifier and (where it checks it) in fatoora-rs.


def test_whitespace_change_in_the_body(identity: Identity) -> None:
    xml = signed("Simplified_Invoice.xml", identity)
    profile = b"<cbc:ProfileID>reporting:1.0</cbc:ProfileID>\n"
    tampered = xml.replace(profile, profile + b"\n", 1)
    assert tampered != xml
    # The signature and QR tag 6 are checked against the recomputed hash, so they fall with it.
    assert failed(tampered) == {"invoice-hash", "signature", "qr"}
    assert fatoora_errors(tampered) == {("signature", "SIGNATURE_DIGEST")}


def test_changed_payable_amount(identity: Identity) -> None:
    xml = signed("Simplified_Invoice.xml", identity)
    amount = re.search(rb'<cbc:PayableAmount currencyID="SAR">([^<]+)<', xml)
    assert amount is not None
    tampered = xml.replace(amount.group(0), amount.group(0).replace(amount.group(1), b"1.00"))
    assert failed(tampered) >= {"invoice-hash", "qr"}
    report = verify_invoice(tampered)
    qr = next(check for check in report.checks if check.name == "qr")
    assert "tag 4 (PayableAmount)" in qr.reason
    # fatoora-rs stops at the digest; it does not report the QR of a document whose hash is wrong.
    assert fatoora_errors(tampered) == {("signature", "SIGNATURE_DIGEST")}


def test_signed_properties_edit(identity: Identity) -> None:
    xml = signed("Simplified_Invoice.xml", identity)
    tampered = re.sub(rb"<xades:SigningTime>[^<]+<", b"<xades:SigningTime>2020-01-01T00:00:00<", xml)
    assert failed(tampered) == {"signed-properties"}
    assert fatoora_errors(tampered) == {("signature", "SIGNED_PROPERTIES_DIGEST")}


@pytest.mark.parametrize("type_name", [b"0100000", b"0200000"])
def test_qr_tag_4_as_tax_inclusive_amount(identity: Identity, type_name: bytes) -> None:
    name = "Standard_Invoice_with_Payable_Rounding_Adjustment.xml"
    source = unsigned(name).replace(b'name="0100000"', b'name="' + type_name + b'"')
    result = stamp_invoice(source, identity.der, identity.sign)
    assert fatoora_errors(result.xml) == set()
    tags = decode_qr(result.qr)
    assert tags[4] == b"1000.00"
    wrong = encode_tlv({**tags, 4: b"1000.01"})  # TaxInclusiveAmount
    tampered = result.xml.replace(result.qr.encode(), wrong.encode())
    assert failed(tampered, identity.certificate) == {"qr"}
    # fatoora-rs checks the QR of simplified documents only (the SDK likewise).
    expected = {("qr", "QR_VALUE")} if type_name == b"0200000" else set()
    assert fatoora_errors(tampered) == expected


def test_another_certificate(identity: Identity) -> None:
    xml = signed("Simplified_Invoice.xml", identity)
    other = Identity("OTHER-SubCA")
    # Verified against a certificate other than the signer's.
    assert failed(xml, other.certificate) == {"certificate", "issuer-serial", "signature", "qr"}
    # The embedded certificate swapped for another one: its digest no longer matches the signed one.
    swapped = xml.replace(base64.b64encode(identity.der), base64.b64encode(other.der))
    assert failed(swapped) == {"cert-digest", "issuer-serial", "signature", "qr"}
    assert fatoora_errors(swapped) == {("signature", "SIGNATURE_VALUE")}


def test_signature_over_the_hex_text_of_the_hash(identity: Identity) -> None:
    result = stamp_invoice(unsigned("Simplified_Invoice.xml"), identity.der, identity.sign)
    raw_hash = base64.b64decode(result.invoice_hash)
    odoo_style = identity.key.sign(raw_hash.hex().encode(), ec.ECDSA(hashes.SHA256()))
    wrong_value = base64.b64encode(odoo_style).decode()
    tags = decode_qr(result.qr)
    tampered = result.xml.replace(result.signature_value.encode(), wrong_value.encode()).replace(
        result.qr.encode(), encode_tlv({**tags, 7: wrong_value.encode()}).encode()
    )
    assert failed(tampered, identity.certificate) == {"signature"}
    assert fatoora_errors(tampered) == {("signature", "SIGNATURE_VALUE")}
    hex_signer: Callable[[bytes], bytes] = lambda digest: odoo_style  # noqa: E731
    with pytest.raises(SignerCertificateMismatch):
        stamp_invoice(unsigned("Simplified_Invoice.xml"), identity.der, hex_signer)


def test_a_seller_name_too_long_for_the_qr_is_refused(identity: Identity) -> None:
    source = re.sub(
        rb"<cbc:RegistrationName>[^<]*</cbc:RegistrationName>",
        ("<cbc:RegistrationName>" + "شركة" * 60 + "</cbc:RegistrationName>").encode(),
        unsigned("Simplified_Invoice.xml"),
        count=1,
    )
    with pytest.raises(QrTooLong, match="700") as refused:
        stamp_invoice(source, identity.der, identity.sign)
    assert isinstance(refused.value, ValueError)


def test_a_document_without_icv_and_pih_references_is_refused(identity: Identity) -> None:
    source = re.sub(
        rb"<cac:AdditionalDocumentReference>.*?</cac:AdditionalDocumentReference>",
        b"",
        unsigned("Simplified_Invoice.xml"),
        flags=re.DOTALL,
    )
    with pytest.raises(InvoiceDocumentError, match="AdditionalDocumentReference"):
        stamp_invoice(source, identity.der, identity.sign)
    with pytest.raises(InvoiceDocumentError, match="well-formed"):
        stamp_invoice(b"<Invoice>", identity.der, identity.sign)
