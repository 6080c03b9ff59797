"""The ZATCA CSR from a software secp256k1 key, judged by openssl, cryptography and ZATCA's own bytes."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from appliance.domain import CERTIFICATE_TEMPLATE, Environment
from appliance.x509.csr import build_zatca_csr, csr_request_value, csr_to_pem
from appliance.x509.fields import CsrFields, build_csr_fields

VECTORS = Path("/work/shared/docs/vectors")
TEMPLATE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")
REGISTERED_ADDRESS_OID = x509.ObjectIdentifier("2.5.4.26")
BUSINESS_CATEGORY_OID = x509.ObjectIdentifier("2.5.4.15")

# zatca-protocol.md 5.3: the SAN extnValue of ZATCA's Swagger example CSR.
REFERENCE_SAN_EXTN_VALUE = bytes.fromhex(
    "3081A2A4819F30819C"
    "313B303906035504040C32" + b"1-TST|2-TST|3-ed22f1d8-e6a2-1118-9b58-d9a8f11e445f".hex()
    + "311F301D060A0992268993F22C6401010C0F" + b"399999999900003".hex()
    + "310D300B060355040C0C04" + b"1100".hex()
    + "3111300F060355041A0C08" + b"RRRD2929".hex()
    + "311A3018060355040F0C11" + b"Supply activities".hex()
)  # fmt: skip

SWAGGER_INPUTS = {
    "vat": "399999999900003",
    "organization_name": "Maximum Speed Tech Supply LTD",
    "organization_unit": "Riyadh Branch",
    "country": "SA",
    "egs_serial": "1-TST|2-TST|3-ed22f1d8-e6a2-1118-9b58-d9a8f11e445f",
    "location": "RRRD2929",
    "industry": "Supply activities",
    "invoice_type": "1100",
    "common_name": "TST-886431145-399999999900003",
}


class SoftwareSigner:
    """Stands in for the token: signs the digest it is given, and remembers it."""

    def __init__(self, curve: ec.EllipticCurve | None = None) -> None:
        self.private_key = ec.generate_private_key(curve or ec.SECP256K1())
        self.digests: list[bytes] = []

    @property
    def public_key_der(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, digest: bytes) -> bytes:
        self.digests.append(digest)
        return self.private_key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def swagger_fields(environment: Environment = Environment.PRODUCTION, **overrides: str) -> CsrFields:
    return build_csr_fields(environment, **(SWAGGER_INPUTS | overrides))


def load_vector(name: str) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(base64.b64decode((VECTORS / name).read_text()))


def openssl_verify(pem: str, tmp_path: Path) -> str:
    path = tmp_path / "request.csr"
    path.write_text(pem)
    result = subprocess.run(
        ["openssl", "req", "-in", str(path), "-verify", "-noout", "-text"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "self-signature verify OK" in result.stdout + result.stderr
    return result.stdout


def extension_value_der(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> bytes:
    value = csr.extensions.get_extension_for_oid(oid).value
    assert isinstance(value, x509.UnrecognizedExtension | x509.SubjectAlternativeName)
    return value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()


@pytest.mark.parametrize("environment", list(Environment))
def test_csr_verifies_and_carries_the_environment_template(environment: Environment, tmp_path: Path) -> None:
    signer = SoftwareSigner()
    der = build_zatca_csr(swagger_fields(environment), signer.public_key_der, signer.sign)
    pem = csr_to_pem(der)

    text = openssl_verify(pem, tmp_path)
    assert "ASN1 OID: secp256k1" in text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text

    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert csr.public_key() == signer.private_key.public_key()
    template = CERTIFICATE_TEMPLATE[environment].encode()
    assert extension_value_der(csr, TEMPLATE_OID) == bytes([0x0C, len(template)]) + template
    assert [extension.oid.dotted_string for extension in csr.extensions] == [
        "1.3.6.1.4.1.311.20.2",
        "2.5.29.17",
    ]
    assert not any(extension.critical for extension in csr.extensions)


def test_the_token_signs_the_sha256_digest_of_the_request_info() -> None:
    signer = SoftwareSigner()
    csr = x509.load_der_x509_csr(build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign))
    assert signer.digests == [hashlib.sha256(csr.tbs_certrequest_bytes).digest()]


def utf8_string_der(text: str) -> bytes:
    encoded = text.encode("utf-8")
    assert len(encoded) < 128
    return bytes([0x0C, len(encoded)]) + encoded


def test_subject_is_c_ou_o_cn_one_attribute_each_with_printable_country() -> None:
    signer = SoftwareSigner()
    csr = x509.load_der_x509_csr(build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign))
    rdns = list(csr.subject.rdns)
    assert all(len(rdn) == 1 for rdn in rdns)
    assert [(next(iter(rdn)).oid, next(iter(rdn)).value) for rdn in rdns] == [
        (NameOID.COUNTRY_NAME, "SA"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Riyadh Branch"),
        (NameOID.ORGANIZATION_NAME, "Maximum Speed Tech Supply LTD"),
        (NameOID.COMMON_NAME, "TST-886431145-399999999900003"),
    ]
    subject_der = csr.subject.public_bytes()
    assert bytes.fromhex("0603550406") + b"\x13\x02SA" in subject_der  # PrintableString
    assert bytes.fromhex("060355040B") + utf8_string_der("Riyadh Branch") in subject_der
    assert bytes.fromhex("060355040A") + utf8_string_der("Maximum Speed Tech Supply LTD") in subject_der
    assert bytes.fromhex("0603550403") + utf8_string_der("TST-886431145-399999999900003") in subject_der


def test_san_extn_value_reproduces_zatca_reference_bytes() -> None:
    signer = SoftwareSigner()
    csr = x509.load_der_x509_csr(
        build_zatca_csr(swagger_fields(Environment.DEVELOPMENT), signer.public_key_der, signer.sign)
    )
    assert extension_value_der(csr, x509.SubjectAlternativeName.oid) == REFERENCE_SAN_EXTN_VALUE


def test_swagger_example_csr_is_reproduced_byte_for_byte() -> None:
    """Same inputs, same key, same template: the whole request info matches ZATCA's example."""
    reference = load_vector("swagger-example-csr.b64")
    reference_key = reference.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digests: list[bytes] = []

    def replay_reference_signature(digest: bytes) -> bytes:
        digests.append(digest)
        return reference.signature

    der = build_zatca_csr(swagger_fields(Environment.PRODUCTION), reference_key, replay_reference_signature)

    assert digests == [hashlib.sha256(reference.tbs_certrequest_bytes).digest()]
    assert der == reference.public_bytes(serialization.Encoding.DER)
    assert csr_request_value(csr_to_pem(der)) == (VECTORS / "swagger-example-csr.b64").read_text().strip()


def test_sdk_generated_csr_request_info_is_reproduced() -> None:
    reference = load_vector("sdk-generated-csr-crlf.b64")
    reference_key = reference.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fields = swagger_fields(
        Environment.PRODUCTION,
        organization_unit="IT Department",
        organization_name="Global Tech Solutions LTD",
        common_name="TST-311456789-399999999900003",
        location="Riyadh",
        industry="Software Development",
    )
    der = build_zatca_csr(fields, reference_key, lambda _digest: reference.signature)
    assert der == reference.public_bytes(serialization.Encoding.DER)
    assert x509.load_der_x509_csr(der).is_signature_valid


def test_arabic_round_trips_as_utf8(tmp_path: Path) -> None:
    organization = "ABCD المحدودة"
    industry = "الأنشطة العقارية"
    location = "الرياض حي العليا"
    signer = SoftwareSigner()
    der = build_zatca_csr(
        swagger_fields(organization_name=organization, industry=industry, location=location),
        signer.public_key_der,
        signer.sign,
    )
    openssl_verify(csr_to_pem(der), tmp_path)

    csr = x509.load_der_x509_csr(der)
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == organization
    directory = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DirectoryName
    )
    assert len(directory) == 1
    san = {attribute.oid: attribute for attribute in directory[0]}
    assert san[BUSINESS_CATEGORY_OID].value == industry
    assert san[REGISTERED_ADDRESS_OID].value == location
    # Real UTF-8 in a UTF8String, not the double-encoded text an OpenSSL config produces.
    assert bytes.fromhex("060355040F") + utf8_string_der(industry) in der
    assert bytes.fromhex("060355041A") + utf8_string_der(location) in der
    assert industry.encode("utf-8").decode("latin-1").encode("utf-8") not in der


def test_san_order_is_sn_uid_title_registered_address_business_category() -> None:
    signer = SoftwareSigner()
    csr = x509.load_der_x509_csr(build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign))
    (directory,) = csr.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DirectoryName)
    assert [(rdn_attribute.oid.dotted_string, rdn_attribute.value) for rdn_attribute in directory] == [
        ("2.5.4.4", "1-TST|2-TST|3-ed22f1d8-e6a2-1118-9b58-d9a8f11e445f"),
        ("0.9.2342.19200300.100.1.1", "399999999900003"),
        ("2.5.4.12", "1100"),
        ("2.5.4.26", "RRRD2929"),
        ("2.5.4.15", "Supply activities"),
    ]
    assert all(len(rdn) == 1 for rdn in directory.rdns)


def test_invoice_type_keeps_its_leading_zero() -> None:
    signer = SoftwareSigner()
    csr = x509.load_der_x509_csr(
        build_zatca_csr(swagger_fields(invoice_type="Simplified"), signer.public_key_der, signer.sign)
    )
    (directory,) = csr.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DirectoryName)
    assert directory.get_attributes_for_oid(x509.ObjectIdentifier("2.5.4.12"))[0].value == "0100"


def test_other_ec_curves_are_encoded_so_a_ca_can_refuse_them() -> None:
    signer = SoftwareSigner(ec.SECP256R1())
    csr = x509.load_der_x509_csr(build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign))
    assert csr.is_signature_valid
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"


def test_rsa_public_key_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = rsa_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="EC public key"):
        build_zatca_csr(swagger_fields(), spki, SoftwareSigner().sign)


def test_raw_r_s_signature_is_refused() -> None:
    signer = SoftwareSigner()
    with pytest.raises(ValueError, match="DER ECDSA signature"):
        build_zatca_csr(swagger_fields(), signer.public_key_der, lambda _digest: bytes(64))


def test_pem_has_lf_64_column_lines_and_a_trailing_newline() -> None:
    signer = SoftwareSigner()
    der = build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign)
    pem = csr_to_pem(der)
    assert "\r" not in pem
    assert pem.endswith("-----END CERTIFICATE REQUEST-----\n")
    lines = pem.splitlines()
    assert lines[0] == "-----BEGIN CERTIFICATE REQUEST-----"
    assert all(len(line) == 64 for line in lines[1:-2])
    assert 0 < len(lines[-2]) <= 64
    assert x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER) == der


def test_api_value_is_base64_of_the_pem_text_on_one_line() -> None:
    signer = SoftwareSigner()
    pem = csr_to_pem(build_zatca_csr(swagger_fields(), signer.public_key_der, signer.sign))
    value = csr_request_value(pem)
    assert value.startswith("LS0tLS1CRUdJTi")
    assert "\n" not in value
    assert base64.b64decode(value, validate=True).decode("ascii") == pem
