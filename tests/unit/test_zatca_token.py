"""decode_binary_security_token: base64(base64(DER)), decoded leniently, refusing non-certificates."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from appliance.zatca import decode_binary_security_token


def self_signed_der(common_name: str = "TST-unit") -> bytes:
    key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def padded_der() -> bytes:
    """A certificate whose base64 needs `=` padding (ECDSA signature lengths vary per key)."""
    while True:
        der = self_signed_der()
        if len(der) % 3:
            return der


def token_for(inner_text: str) -> str:
    return base64.b64encode(inner_text.encode("ascii")).decode("ascii")


def test_token_as_zatca_sends_it_yields_the_certificate() -> None:
    der = self_signed_der("TST-886431145-399999999900003")
    token = token_for(base64.b64encode(der).decode())

    decoded = decode_binary_security_token(token)

    assert decoded == der
    certificate = x509.load_der_x509_certificate(decoded)
    assert certificate.subject.rfc4514_string() == "CN=TST-886431145-399999999900003"


def test_inner_text_with_crlf_and_without_padding_is_accepted() -> None:
    der = padded_der()
    inner = base64.b64encode(der).decode()
    assert inner.endswith("=")

    token = token_for(inner.rstrip("=") + "\r\n")

    assert decode_binary_security_token(token) == der


def test_folded_inner_text_and_wrapped_outer_token_are_accepted() -> None:
    der = self_signed_der()
    inner = base64.b64encode(der).decode()
    folded_inner = "\n".join(inner[i : i + 64] for i in range(0, len(inner), 64)) + "\n"
    token = token_for(folded_inner)
    wrapped_token = "\r\n".join(token[i : i + 76] for i in range(0, len(token), 76)) + "\n"

    assert decode_binary_security_token(wrapped_token) == der


def test_pem_armoured_inner_text_is_accepted() -> None:
    der = self_signed_der()
    body = base64.b64encode(der).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"

    assert decode_binary_security_token(token_for(pem)) == der


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("   \r\n", id="only-whitespace"),
        pytest.param("not*base64!", id="outer-not-base64"),
        pytest.param("QUJDR", id="impossible-base64-length"),
        pytest.param(base64.b64encode(b"\xff\xfe\x00binary").decode(), id="inner-not-text"),
        pytest.param(token_for("hello world, not base64!"), id="inner-not-base64"),
        pytest.param(
            token_for(base64.b64encode(b"just some bytes, no certificate").decode()), id="not-a-certificate"
        ),
    ],
)
def test_tokens_without_a_certificate_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="binarySecurityToken"):
        decode_binary_security_token(token)


def test_singly_encoded_certificate_is_refused() -> None:
    """A token that is base64(DER) skipped ZATCA's second layer; Basic auth built on it would fail."""
    der = self_signed_der()

    with pytest.raises(ValueError, match="binarySecurityToken"):
        decode_binary_security_token(base64.b64encode(der).decode())


def test_error_messages_do_not_echo_the_token() -> None:
    token = token_for(base64.b64encode(b"secret-looking material").decode())

    with pytest.raises(ValueError, match="binarySecurityToken") as caught:
        decode_binary_security_token(token)

    assert token not in str(caught.value)
    assert "secret-looking" not in str(caught.value)
