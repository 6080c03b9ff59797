"""The emulator's certificate authority: a secp256k1 key and self-signed certificate in data_dir.

Created on first start and reused afterwards, so certificates issued before a restart still chain
to the same CA. Certificates look like the developer portal's (zatca-protocol.md 4.2): the CSR's
subject in the CSR's own order, its SAN byte for byte, basicConstraints CA:FALSE (critical), a
millisecond-timestamp serial, and five years of validity ending at 21:00 UTC (midnight in Riyadh).
Production certificates re-order the subject to C, O, OU, CN as ZATCA's production CAs do, and
add keyUsage digitalSignature and key identifiers.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtensionOID, NameOID

from appliance.emulator.csr_policy import SUBJECT_ALT_NAME_OID, AcceptedCsr
from appliance.errors import ConfigError

CA_KEY_FILE = "ca-key.pem"
CA_CERTIFICATE_FILE = "ca-certificate.pem"
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eInvoicing Emulator CA")])
CA_VALIDITY_YEARS = 20
CERTIFICATE_VALIDITY_YEARS = 5
RIYADH = dt.timezone(dt.timedelta(hours=3))
PRODUCTION_SUBJECT_ORDER = (
    NameOID.COUNTRY_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
)


def not_after_for(not_before: dt.datetime) -> dt.datetime:
    """Midnight in Riyadh, five years after the issuing day there: 21:00 UTC the day before."""
    issuing_day = not_before.astimezone(RIYADH).date()
    try:
        expiry_day = issuing_day.replace(year=issuing_day.year + CERTIFICATE_VALIDITY_YEARS)
    except ValueError:  # 29 February in a year whose fifth successor is not a leap year
        expiry_day = issuing_day.replace(year=issuing_day.year + CERTIFICATE_VALIDITY_YEARS, day=28)
    midnight = dt.datetime.combine(expiry_day, dt.time(), tzinfo=RIYADH)
    return midnight.astimezone(dt.UTC)


class EmulatorAuthority:
    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.certificate = certificate
        self._clock = clock
        self._last_serial = 0

    @classmethod
    def load_or_create(cls, directory: Path, clock: Callable[[], float] = time.time) -> EmulatorAuthority:
        key_path, certificate_path = directory / CA_KEY_FILE, directory / CA_CERTIFICATE_FILE
        if not (key_path.exists() and certificate_path.exists()):
            return cls._create(key_path, certificate_path, clock)
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"emulator CA in {directory} cannot be read: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
            raise ConfigError(
                f"emulator CA in {directory}: {CA_KEY_FILE} does not match {CA_CERTIFICATE_FILE}"
            )
        return cls(key, certificate, clock)

    @classmethod
    def _create(cls, key_path: Path, certificate_path: Path, clock: Callable[[], float]) -> EmulatorAuthority:
        key = ec.generate_private_key(ec.SECP256K1())
        now = dt.datetime.fromtimestamp(int(clock()), dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(CA_NAME)
            .issuer_name(CA_NAME)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now.replace(year=now.year + CA_VALIDITY_YEARS, day=min(now.day, 28)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_atomically(key_path, key_pem, mode=0o600)
        _write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return cls(key, certificate, clock)

    def sign_digest(self, digest: bytes) -> bytes:
        """DER ECDSA over a SHA-256 digest with the CA key: ZATCA's own stamp on cleared invoices."""
        return self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, content: CertificateContent, *, production: bool, wrong_key: bool = False) -> bytes:
        """A DER certificate for `content`; `wrong_key` (a fault) certifies a throwaway key instead."""
        public_key = _throwaway_public_key() if wrong_key else content.public_key
        subject = _production_subject(content.subject) if production else content.subject
        builder = self._builder(subject, content.subject_alt_name_der, public_key)
        if production:
            builder = (
                builder.add_extension(_key_usage(digital_signature=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
                )
            )
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _builder(
        self, subject: x509.Name, subject_alt_name_der: bytes, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = self._clock()
        not_before = dt.datetime.fromtimestamp(int(now), dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(self._next_serial(now))
            .not_valid_before(not_before)
            .not_valid_after(not_after_for(not_before))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Copied as raw bytes: a parse and re-encode could change string types or order.
            .add_extension(
                x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, subject_alt_name_der),
                critical=False,
            )
        )

    def _next_serial(self, now: float) -> int:
        # ZATCA's sandbox uses the issuing millisecond; two issues in one millisecond must still differ.
        self._last_serial = max(int(now * 1000), self._last_serial + 1)
        return self._last_serial


@dataclass(frozen=True, slots=True)
class CertificateContent:
    """What a certificate says about its holder: names and key, taken from a CSR or a certificate."""

    subject: x509.Name
    subject_alt_name_der: bytes  # the extnValue, copied byte for byte
    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def from_csr(cls, csr: AcceptedCsr) -> CertificateContent:
        return cls(csr.request.subject, csr.subject_alt_name_der, _ec_public_key(csr.request.public_key()))

    @classmethod
    def from_certificate(cls, certificate_der: bytes) -> CertificateContent:
        certificate = x509.load_der_x509_certificate(certificate_der)
        return cls(
            certificate.subject,
            _subject_alt_name_der(certificate_der),
            _ec_public_key(certificate.public_key()),
        )


def _production_subject(subject: x509.Name) -> x509.Name:
    attributes = {attribute.oid: attribute for attribute in subject}
    return x509.Name([attributes[oid] for oid in PRODUCTION_SUBJECT_ORDER if oid in attributes])


def _subject_alt_name_der(certificate_der: bytes) -> bytes:
    extensions = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]["extensions"]
    for extension in extensions:
        if extension["extn_id"].dotted == SUBJECT_ALT_NAME_OID:
            value: bytes = extension["extn_value"].contents
            return value
    raise ValueError("the compliance certificate has no subjectAltName")


def _ec_public_key(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TypeError(f"expected an EC public key, got {type(key).__name__}")
    return key


def _throwaway_public_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256K1()).public_key()


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
