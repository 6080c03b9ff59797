"""The official SDK's signed samples reproduce under our hash, SignedProperties digest, QR and verifier.

Data: tests/data/invoices/ (copies of ../shared/docs/vectors/invoices, see its SOURCE.md). Expected
values are the ones zatca-invoice-signing.md section 7 lists, computed there with the SDK's own
libraries; fatoora-rs is the independent judge.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from cryptography import x509
from fatoora import Config, Environment, invoice_hash_base64_from_xml_str, validate_zatca_invoice_from_str
from lxml import etree

from appliance.invoices import INITIAL_PIH
from appliance.invoices.certificate import cert_digest_of_text, issuer_name, public_key_info
from appliance.invoices.facts import parse_invoice_facts
from appliance.invoices.hashing import invoice_hash, parse_invoice
from appliance.invoices.namespaces import XPATH_NS
from appliance.invoices.qr import MAX_QR_CHARACTERS, QrTooLong, decode_qr, encode_tlv
from appliance.invoices.verify import CHECK_NAMES, verify_invoice
from appliance.invoices.xades import signed_properties_digest, signed_properties_text

DATA = Path(__file__).resolve().parents[1] / "data" / "invoices"

ROUNDING = "sdk348/Standard_Invoice_with_Payable_Rounding_Adjustment.xml"
# Section 7: the hash each sample computes to (sdk327 Standard_Invoice carries a stale DigestValue).
HASHES = {
    "sdk327/Simplified_Invoice.xml": "r/2si60BEew0NQCHNHNejowLDLjVNV/VTT/P8QSLxMk=",
    "sdk327/Standard_Invoice.xml": "Vd5KMat2ZJtZqrDyoghblSlteouIS/r3/ORNw7OZ/2s=",
    "sdk348/Simplified_Invoice.xml": "z5F9qsS6oWyDhehD8u8S0DaxV+2CUiUz9Y+UsR61JgQ=",
    "sdk348/Simplified_Credit_Note.xml": "2kBYLvmDlvKUxK/0ma+P8jFkKoiPh5VKBWjXERwUfxk=",
    "sdk348/Simplified_Debit_Note.xml": "dfjtLDke0UXB4HBHzHKazFkI7X4v9xuC0IqhSEo1q4s=",
    "sdk348/Standard_Invoice.xml": "V4U5qlZ3yXQ/Si1AC/R8SLc3F+iNy27wdVe8IWRqFAQ=",
    "sdk348/Standard_Credit_Note.xml": "5Xlh01O838SAab0AS6EGBMdBKI0ySC0ORnrCmnU1Zyc=",
    "sdk348/Standard_Debit_Note.xml": "111hQXj+6NtfV62H0ITiDNgOJvcatTi3l41yDEE04F8=",
    ROUNDING: "zKThBQhq2W1tg4aF5W9eVrdDGdbDLsttg+PdYwWcDBk=",
}
SAMPLES = sorted(str(p.relative_to(DATA)) for p in DATA.glob("sdk*/*.xml"))
SDK348 = [name for name in SAMPLES if name.startswith("sdk348/")]
STALE = "sdk327/Standard_Invoice.xml"
PCSID_CERT_DIGEST = "ZDMwMmI0MTE1NzVjOTU2NTk4YzVlODhhYmI0ODU2NDUyNTU2YTVhYjhhMDFmN2FjYjk1YTA2OWQ0NjY2MjQ4NQ=="
# The SDK 3.2.7 samples write QR tag 3 with a literal Z their IssueTime lacks (section 7.1); tag 3 must be
# IssueDate T IssueTime verbatim (section 5), so our qr check fails them on tag 3 and on nothing else.
SDK327_EXPECTED_FAILURES = {
    "sdk327/Simplified_Invoice.xml": {"qr"},
    "sdk327/Simplified_Invoice_USD.xml": {"qr"},
    STALE: {"invoice-hash", "qr"},
}


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def stamp_text(xml: bytes, path: str) -> str:
    found = parse_invoice(xml).xpath(f"ext:UBLExtensions//{path}", namespaces=XPATH_NS)
    assert isinstance(found, list) and found
    node = found[0]
    assert isinstance(node, etree._Element)
    return node.text or ""


def embedded_certificate(xml: bytes) -> x509.Certificate:
    text = stamp_text(xml, "ds:X509Certificate")
    return x509.load_der_x509_certificate(base64.b64decode(text))


@pytest.mark.parametrize("name", SAMPLES)
def test_hash_matches_the_sdk_and_fatoora(name: str) -> None:
    xml = read(name)
    ours = invoice_hash(xml)
    assert ours == invoice_hash_base64_from_xml_str(xml.decode("utf-8"))
    if name in HASHES:
        assert ours == HASHES[name]
    embedded = stamp_text(xml, "ds:Reference[@Id='invoiceSignedData']/ds:DigestValue")
    assert (ours == embedded) is (name != STALE)


@pytest.mark.parametrize("name", SAMPLES)
def test_signed_properties_and_cert_digest_match_the_embedded_values(name: str) -> None:
    xml = read(name)
    root = parse_invoice(xml)
    properties = root.xpath("//xades:SignedProperties", namespaces=XPATH_NS)
    assert isinstance(properties, list) and isinstance(properties[0], etree._Element)
    stated = stamp_text(xml, "ds:Reference[@URI='#xadesSignedProperties']/ds:DigestValue")
    assert signed_properties_digest(properties[0]) == stated
    certificate_text = stamp_text(xml, "ds:X509Certificate")
    assert cert_digest_of_text(certificate_text) == stamp_text(xml, "xades:CertDigest/ds:DigestValue")
    certificate = embedded_certificate(xml)
    assert issuer_name(certificate) == stamp_text(xml, "ds:X509IssuerName")
    assert str(certificate.serial_number) == stamp_text(xml, "ds:X509SerialNumber")


def test_signed_properties_text_is_dom4j_shaped() -> None:
    root = parse_invoice(read("sdk348/Simplified_Invoice.xml"))
    properties = root.xpath("//xades:SignedProperties", namespaces=XPATH_NS)
    assert isinstance(properties, list) and isinstance(properties[0], etree._Element)
    text = signed_properties_text(properties[0])
    assert len(text.encode()) == 1686
    assert text.startswith(
        '<xades:SignedProperties xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Id="xadesSignedProperties">'
    )
    assert text.count('xmlns:ds="http://www.w3.org/2000/09/xmldsig#"') == 4
    assert '<ds:DigestMethod xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Algorithm=' in text
    assert [len(line) - len(line.lstrip(" ")) for line in text.split("\n")] == [
        0, 36, 40, 40, 44, 48, 52, 52, 48, 48, 52, 52, 48, 44, 40, 36, 32,
    ]  # fmt: skip


def test_a_local_ds_declaration_on_signed_properties_changes_the_digest() -> None:
    xml = read("sdk348/Simplified_Invoice.xml").replace(
        b'<xades:SignedProperties Id="xadesSignedProperties">',
        b'<xades:SignedProperties xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="xadesSignedProperties">',
    )
    report = verify_invoice(xml)
    assert [check.name for check in report.failed] == ["signed-properties"]


def test_a_redundant_xades_declaration_after_id_keeps_the_digest() -> None:
    xml = read("sdk348/Simplified_Invoice.xml").replace(
        b'<xades:SignedProperties Id="xadesSignedProperties">',
        b'<xades:SignedProperties Id="xadesSignedProperties" xmlns:xades="http://uri.etsi.org/01903/v1.3.2#">',
    )
    assert verify_invoice(xml).ok


@pytest.mark.parametrize("name", SDK348)
def test_sdk348_samples_pass_the_verifier_with_their_own_certificate(name: str) -> None:
    xml = read(name)
    for certificate in (None, embedded_certificate(xml)):
        report = verify_invoice(xml, certificate, previous_hash=INITIAL_PIH)
        assert report.ok, report.failed
        assert [check.name for check in report.checks] == list(CHECK_NAMES)
    assert cert_digest_of_text(stamp_text(xml, "ds:X509Certificate")) == PCSID_CERT_DIGEST


@pytest.mark.parametrize("name", sorted(SDK327_EXPECTED_FAILURES))
def test_sdk327_samples_fail_exactly_the_known_checks(name: str) -> None:
    report = verify_invoice(read(name), previous_hash=INITIAL_PIH)
    assert {check.name for check in report.failed} == SDK327_EXPECTED_FAILURES[name]
    qr = next(check for check in report.failed if check.name == "qr")
    assert qr.reason.startswith("tag 3 (IssueDate T IssueTime) is '2022-")
    assert "Z', expected '" in qr.reason and ";" not in qr.reason  # tag 3 alone


def test_stale_sample_names_the_hash_mismatch() -> None:
    report = verify_invoice(read(STALE))
    check = next(check for check in report.checks if check.name == "invoice-hash")
    assert "O/vEnAxjLAlw8kQUy8nq/5n8IEZ0YeIyBFvdQA8+iFM=" in check.reason
    assert HASHES[STALE] in check.reason
    assert next(c for c in report.checks if c.name == "signature").ok  # signed over the real hash


def test_sdk327_simplified_fails_fatoora_only_on_the_price_level_charge_rule() -> None:
    result = validate_zatca_invoice_from_str(
        Config(Environment.NON_PRODUCTION),
        read("sdk327/Simplified_Invoice.xml").decode(),
        previous_invoice_hash=INITIAL_PIH,
        evaluated_at="2022-08-17T18:00:00Z",
    )
    errors = {f["code"] for stage in result["stages"] for f in stage["findings"] if f["severity"] == "error"}
    assert errors == {"BR-KSA-EN16931-06"}


def test_sdk327_against_the_sdk_configured_certificate() -> None:
    # cert.pem holds the same key as the KeyInfo certificate, but it is another certificate.
    configured = x509.load_pem_x509_certificate((DATA / "sdk327_cert.pem").read_bytes())
    report = verify_invoice(read("sdk327/Simplified_Invoice.xml"), configured)
    failed = {check.name: check.reason for check in report.failed}
    assert set(failed) == {"certificate", "issuer-serial", "qr"}
    assert "X509SerialNumber" in failed["issuer-serial"]
    assert "tag 9 (certificate signature)" in failed["qr"]
    assert next(check for check in report.checks if check.name == "signature").ok


def test_qr_tags_of_the_samples() -> None:
    simplified = read("sdk348/Simplified_Invoice.xml")
    facts = parse_invoice_facts(simplified)
    assert facts.qr is not None
    tags = decode_qr(facts.qr)
    certificate = embedded_certificate(simplified)
    assert sorted(tags) == list(range(1, 10))
    assert tags[3] == b"2022-08-17T17:41:08"
    assert tags[6] == facts.invoice_hash.encode()
    assert tags[8] == public_key_info(certificate) and len(tags[8]) == 88
    assert tags[9] == certificate.signature
    rounding = parse_invoice_facts(read(ROUNDING))
    assert rounding.qr is not None
    standard_tags = decode_qr(rounding.qr)
    assert sorted(standard_tags) == list(range(1, 9))
    assert standard_tags[4] == b"1000.00"


def test_facts_of_a_signed_sample() -> None:
    facts = parse_invoice_facts(read("sdk348/Simplified_Invoice.xml"))
    assert facts.uuid == "8e6000cf-1a98-4174-b3e7-b5d5954bc10d"
    assert facts.invoice_number == "SME00010"
    assert facts.icv == 10
    assert facts.pih == INITIAL_PIH
    assert (facts.type_code, facts.type_name, facts.is_simplified) == ("388", "0200000", True)
    assert facts.seller_vat == "399999999900003"
    assert facts.invoice_hash == facts.embedded_hash == HASHES["sdk348/Simplified_Invoice.xml"]
    certificate = facts.certificate()
    assert certificate is not None
    assert issuer_name(certificate) == "CN=PRZEINVOICESCA4-CA, DC=extgazt, DC=gov, DC=local"


def test_ber_lengths_and_the_700_character_limit() -> None:
    long_name = "م" * 100  # 200 UTF-8 bytes: BER 81 C8
    encoded = base64.b64decode(encode_tlv({1: long_name.encode()}))
    assert encoded[:3] == b"\x01\x81\xc8"
    assert decode_qr(encode_tlv({1: long_name.encode(), 2: b"399999999900003"}))[2] == b"399999999900003"
    with pytest.raises(QrTooLong, match="700") as refused:
        encode_tlv({1: ("م" * 300).encode()})
    assert isinstance(refused.value, ValueError)
    assert len(encode_tlv({1: b"x" * 500})) <= MAX_QR_CHARACTERS


def test_malformed_documents_fail_the_xml_check() -> None:
    report = verify_invoice(b"<Invoice><unclosed></Invoice>")
    assert [(check.name, check.ok) for check in report.checks] == [("xml", False)]
    assert not report.ok and report.invoice_hash == ""


def test_pih_mismatch_is_named() -> None:
    report = verify_invoice(read("sdk348/Simplified_Invoice.xml"), previous_hash=HASHES[STALE])
    assert [check.name for check in report.failed] == ["pih"]
    without = verify_invoice(read("sdk348/Simplified_Invoice.xml"))
    pih = next(check for check in without.checks if check.name == "pih")
    assert pih.ok and pih.reason.startswith("not checked:")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", without.invoice_hash)
