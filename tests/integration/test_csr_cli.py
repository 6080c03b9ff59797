"""`zatca-appliance csr` as an administrator runs it, against a real SoftHSM token.

Judges: openssl (the CSR verifies), cryptography (its content), pkcs11-tool (the key in the token).
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.softhsm import SoftHsmToken

CLI = Path(sys.executable).with_name("zatca-appliance")
TEMPLATE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")
SURNAME_OID = x509.ObjectIdentifier("2.5.4.4")
BUSINESS_CATEGORY_OID = x509.ObjectIdentifier("2.5.4.15")

REGISTRATION = {
    "--vat": "399999999900003",
    "--organization-name": "ABCD المحدودة",
    "--organization-unit": "Riyadh Branch",
    "--country": "SA",
    "--egs-serial": "POS-0042",
    "--location": "RRRD2929",
    "--industry": "الأنشطة العقارية",
}


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def device_id(self) -> uuid.UUID:
        match = re.search(r"^device-id: ([0-9a-f-]{36})$", self.stderr, re.MULTILINE)
        assert match, self.stderr
        return uuid.UUID(match.group(1))


@pytest.fixture
def config_file(softhsm: SoftHsmToken, tmp_path: Path) -> Path:
    """The token settings and the solution name as an administrator would write them."""
    path = tmp_path / "config.yaml"
    document = {
        "hsm": msgspec.to_builtins(softhsm.settings()),
        "solution": {"name": "Acme POS", "version": "3.1"},
    }
    path.write_bytes(msgspec.yaml.encode(document))
    return path


def run_csr(config_file: Path, *options: str, registration: dict[str, str] = REGISTRATION) -> CliResult:
    fields = [part for flag, value in registration.items() for part in (flag, value)]
    result = subprocess.run(
        [str(CLI), "csr", "--config", str(config_file), *fields, *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


def pkcs11_tool(softhsm: SoftHsmToken, *options: str, login: bool = False) -> str:
    result = softhsm.pkcs11_tool(*options, login=login)
    assert result.returncode == 0, f"pkcs11-tool {options[0]} failed: {result.stderr}"
    return result.stdout


def token_objects(softhsm: SoftHsmToken) -> list[str]:
    """One text block per object, private keys included (hence the login)."""
    listing = pkcs11_tool(softhsm, "--list-objects", login=True)
    return re.split(r"\n(?=\S)", listing.strip()) if listing.strip() else []


def private_key_access(softhsm: SoftHsmToken, device_id: uuid.UUID) -> str:
    for block in token_objects(softhsm):
        if block.startswith("Private Key Object") and re.search(rf"ID:\s+{device_id.hex}\b", block):
            match = re.search(r"Access:\s+(.*)", block)
            assert match, block
            return match.group(1)
    raise AssertionError(f"no private key with ID {device_id.hex} in the token")


def token_public_key_der(softhsm: SoftHsmToken, device_id: uuid.UUID, tmp_path: Path) -> bytes:
    out = tmp_path / f"{device_id.hex}.pub.der"
    pkcs11_tool(
        softhsm, "--read-object", "--type", "pubkey", "--id", device_id.hex, "--output-file", str(out)
    )
    return serialization.load_der_public_key(out.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def template_extension_value(csr: x509.CertificateSigningRequest) -> bytes:
    extension = csr.extensions.get_extension_for_oid(TEMPLATE_OID).value
    assert isinstance(extension, x509.UnrecognizedExtension)
    return extension.value


def openssl_verify(pem: str, tmp_path: Path) -> None:
    path = tmp_path / "device.csr"
    path.write_text(pem, encoding="ascii")
    result = subprocess.run(
        ["openssl", "req", "-in", str(path), "-verify", "-noout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr


def test_csr_is_signed_by_a_new_sealed_key_in_the_token(
    softhsm: SoftHsmToken, config_file: Path, tmp_path: Path
) -> None:
    result = run_csr(config_file, "--environment", "Development")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")

    openssl_verify(result.stdout, tmp_path)
    csr = x509.load_pem_x509_csr(result.stdout.encode("ascii"))
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256k1"
    csr_spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert csr_spki == token_public_key_der(softhsm, result.device_id, tmp_path)
    assert "never extractable" in private_key_access(softhsm, result.device_id)

    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ABCD المحدودة"
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "POS-0042"
    assert template_extension_value(csr) == b"\x0c\x15TSTZATCA-Code-Signing"
    (directory,) = csr.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DirectoryName)
    assert directory.get_attributes_for_oid(SURNAME_OID)[0].value == "1-Acme POS|2-3.1|3-POS-0042"
    assert directory.get_attributes_for_oid(BUSINESS_CATEGORY_OID)[0].value == "الأنشطة العقارية"


def test_api_output_is_the_request_value_of_an_exportable_key(
    softhsm: SoftHsmToken, config_file: Path, tmp_path: Path
) -> None:
    result = run_csr(config_file, "--environment", "Simulation", "--exportable", "--output", "api")
    assert result.exit_code == 0, result.stderr
    value = result.stdout.strip()
    assert value.startswith("LS0tLS1CRUdJTi")
    pem = base64.b64decode(value, validate=True).decode("ascii")

    openssl_verify(pem, tmp_path)
    csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    assert template_extension_value(csr) == b"\x0c\x15PREZATCA-Code-Signing"
    csr_spki = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert csr_spki == token_public_key_der(softhsm, result.device_id, tmp_path)
    assert "never extractable" not in private_key_access(softhsm, result.device_id)


def test_invalid_input_is_refused_before_any_key_is_created(softhsm: SoftHsmToken, config_file: Path) -> None:
    objects_before = token_objects(softhsm)
    bad = REGISTRATION | {"--vat": "399999999900002", "--country": "Saudi Arabia", "--location": " "}

    result = run_csr(config_file, "--environment", "Production", registration=bad)

    assert result.exit_code == 2
    assert result.stdout == ""
    flags = [line.split(": ")[1] for line in result.stderr.splitlines()]
    assert flags == ["--vat", "--country", "--location"]
    assert "device-id" not in result.stderr
    assert sorted(token_objects(softhsm)) == sorted(objects_before)


def test_a_csr_from_the_command_is_certified_by_the_emulator_for_the_token_key(
    softhsm: SoftHsmToken, config_file: Path, tmp_path: Path, emulator: Any
) -> None:
    """The administrator's path: `zatca-appliance csr`, then ZATCA (here its emulator) with an OTP."""
    result = run_csr(config_file, "--environment", "Simulation", "--output", "api")
    assert result.exit_code == 0, result.stderr
    otp = emulator.mint_otp("Simulation", REGISTRATION["--vat"])
    answer = httpx.post(
        f"{emulator.base_urls().simulation}/compliance",
        headers={"Accept-Version": "V2", "OTP": otp},
        json={"csr": result.stdout.strip()},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    inner = base64.b64decode(answer.json()["binarySecurityToken"]).decode()
    certificate = x509.load_der_x509_certificate(base64.b64decode(inner))
    issued_for = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert issued_for == token_public_key_der(softhsm, result.device_id, tmp_path)
