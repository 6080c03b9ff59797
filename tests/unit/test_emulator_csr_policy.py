"""The emulator's CSR checks: what ZATCA's gateway and CA refuse, and what they accept."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from appliance.domain import Environment
from appliance.emulator.csr_policy import (
    CsrRefused,
    Refusal,
    check_csr,
    csr_der_from_request_value,
)
from tests.fixtures.emulator import (
    TEMPLATES,
    csr_request_value,
    new_device_key,
    project_csr,
    variant_csr,
)

DEVELOPMENT_TEMPLATE = TEMPLATES["Development"]


def der_of(csr: x509.CertificateSigningRequest | str) -> bytes:
    if isinstance(csr, str):
        csr = x509.load_pem_x509_csr(csr.encode("ascii"))
    return csr.public_bytes(serialization.Encoding.DER)


def refusal_of(der: bytes, template: str = DEVELOPMENT_TEMPLATE) -> CsrRefused:
    with pytest.raises(CsrRefused) as refused:
        check_csr(der, template)
    return refused.value


@pytest.mark.parametrize("environment", list(Environment))
def test_the_appliances_own_csr_is_accepted_in_its_environment(environment: Environment) -> None:
    accepted = check_csr(der_of(project_csr(environment, new_device_key())), TEMPLATES[environment.value])
    assert accepted.vat == "399999999900003"
    assert accepted.invoice_type == "1100"


def test_the_test_builders_baseline_csr_is_accepted() -> None:
    """Each malformed variant below differs from this accepted CSR in one way only."""
    accepted = check_csr(der_of(variant_csr()), DEVELOPMENT_TEMPLATE)
    assert accepted.invoice_type == "1100"


@pytest.mark.parametrize(
    ("variant", "detail"),
    [
        ({"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)}, "RSA-2048"),
        ({"key": ec.generate_private_key(ec.SECP256R1())}, "secp256r1"),
        ({"serial_number_oid": NameOID.SERIAL_NUMBER}, "not serialNumber (2.5.4.5)"),
        ({"subject_order": ("C", "O", "OU", "CN")}, "C, OU, O, CN in that DER order"),
        ({"subject_order": ("C", "OU", "O")}, "C, OU, O, CN in that DER order"),
        ({"vat": "399999999900004"}, "15 digits starting and ending with 3"),
        ({"vat": "3999999999003"}, "15 digits starting and ending with 3"),
    ],
    ids=[
        "rsa",
        "p256",
        "sn-as-serialNumber",
        "subject-reordered",
        "no-cn",
        "vat-not-ending-3",
        "vat-13-digits",
    ],
)
def test_malformed_csrs_are_invalid_csr_naming_the_problem(variant: dict[str, object], detail: str) -> None:
    refusal = refusal_of(der_of(variant_csr(**variant)))  # type: ignore[arg-type]
    assert refusal.refusal is Refusal.INVALID_CSR
    assert detail in refusal.detail


def test_a_group_vat_needs_the_members_tin_as_organization_unit() -> None:
    group_vat = "311111111111113"
    refusal = refusal_of(der_of(project_csr(Environment.DEVELOPMENT, new_device_key(), vat=group_vat)))
    assert "10-digit TIN" in refusal.detail
    accepted = check_csr(
        der_of(
            project_csr(
                Environment.DEVELOPMENT, new_device_key(), vat=group_vat, organization_unit="3111111111"
            )
        ),
        DEVELOPMENT_TEMPLATE,
    )
    assert accepted.vat == group_vat


@pytest.mark.parametrize("invoice_type", ["0000", "1111", "0010", "100"])
def test_an_unknown_invoice_type_is_refused_by_the_ca_layer(invoice_type: str) -> None:
    refusal = refusal_of(der_of(variant_csr(invoice_type=invoice_type)))
    assert refusal.refusal is Refusal.INVOICE_TYPE
    assert refusal.detail == invoice_type


@pytest.mark.parametrize(
    ("csr_environment", "path_environment"),
    [("Simulation", "Production"), ("Production", "Simulation"), ("Development", "Simulation")],
)
def test_a_template_for_another_environment_is_denied_by_policy(
    csr_environment: str, path_environment: str
) -> None:
    refusal = refusal_of(
        der_of(variant_csr(template=TEMPLATES[csr_environment])), TEMPLATES[path_environment]
    )
    assert refusal.refusal is Refusal.TEMPLATE_DENIED
    assert refusal.detail == TEMPLATES[csr_environment]


def test_a_signature_that_does_not_match_the_request_is_refused() -> None:
    der = der_of(variant_csr())
    # Same length, still well-formed DER; only the signed bytes differ from what was signed.
    tampered = der.replace(b"Riyadh Branch", b"Riyadh Brancx")
    assert tampered != der
    refusal = refusal_of(tampered)
    assert refusal.refusal is Refusal.INVALID_CSR
    assert "proof of possession" in refusal.detail


def test_trailing_garbage_after_the_request_is_refused() -> None:
    assert refusal_of(der_of(variant_csr()) + b"\x00").refusal is Refusal.INVALID_CSR


def test_the_request_value_must_be_base64_of_the_pem_text() -> None:
    csr = variant_csr()
    assert csr_der_from_request_value(csr_request_value(csr)) == der_of(csr)
    with pytest.raises(CsrRefused) as refused:
        csr_der_from_request_value(csr_request_value(csr, armour=False))
    assert "base64 of the DER" in refused.value.detail


def test_pem_with_crlf_line_endings_is_accepted_as_the_sdk_writes_it() -> None:
    csr = variant_csr()
    pem = csr.public_bytes(serialization.Encoding.PEM).replace(b"\n", b"\r\n")
    assert csr_der_from_request_value(base64.b64encode(pem).decode()) == der_of(csr)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"hello").decode(), ""])
def test_request_values_that_are_no_pem_request_are_refused(value: str) -> None:
    with pytest.raises(CsrRefused) as refused:
        csr_der_from_request_value(value)
    assert refused.value.refusal is Refusal.INVALID_CSR


def test_a_printable_string_template_is_accepted_as_openssl_integrations_send_it() -> None:
    name = DEVELOPMENT_TEMPLATE.encode()
    printable = bytes([0x13, len(name)]) + name
    assert (
        check_csr(der_of(variant_csr(template_value=printable)), DEVELOPMENT_TEMPLATE).invoice_type == "1100"
    )


def test_a_template_wrapped_in_a_sequence_is_invalid() -> None:
    name = DEVELOPMENT_TEMPLATE.encode()
    utf8 = bytes([0x0C, len(name)]) + name
    refusal = refusal_of(der_of(variant_csr(template_value=bytes([0x30, len(utf8)]) + utf8)))
    assert refusal.refusal is Refusal.INVALID_CSR
    assert "bare UTF8String or PrintableString" in refusal.detail


def test_a_csr_without_the_template_extension_is_invalid() -> None:
    csr = variant_csr()
    without_template = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(csr.subject)
        .add_extension(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False
        )
        .sign(new_device_key(), hashes.SHA256())
    )
    refusal = refusal_of(der_of(without_template))
    assert "template name" in refusal.detail and "missing" in refusal.detail
