"""The listener's TLS: one server context built from `server.tls`, reloadable in place.

TLS 1.2 is the floor (POS stacks that lack 1.3 still exist); Python's defaults then leave only
AEAD cipher suites with forward secrecy. With `client_ca_file` a POS must present a certificate
issued by that CA (mutual TLS). Reloading loads the files again into the *same* context, so
connections accepted afterwards use the new certificate and established ones keep theirs.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import TlsSettings
from appliance.errors import ConfigError

SELF_SIGNED_DAYS = 365


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context for `settings`; ConfigError naming the file that is missing or wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    load_files(context, settings)
    return context


def load_files(context: ssl.SSLContext, settings: TlsSettings) -> None:
    """(Re)load certificate, key and client CA into `context`."""
    _check_key_is_private(Path(settings.key_file))
    try:
        context.load_cert_chain(settings.certificate_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"server.tls: cannot load the certificate {settings.certificate_file} "
            f"with the key {settings.key_file}: {exc}"
        ) from exc
    if settings.client_ca_file is None:
        context.verify_mode = ssl.CERT_NONE
        return
    try:
        context.load_verify_locations(cafile=settings.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls.client_ca_file: cannot load {settings.client_ca_file}: {exc}") from exc
    context.verify_mode = ssl.CERT_REQUIRED


def _check_key_is_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"server.tls.key_file: cannot read {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"server.tls.key_file: {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            "make it 0600 and owned by the service user, or pass it as a systemd credential"
        )


def ensure_self_signed(directory: Path, hosts: list[str]) -> TlsSettings:
    """A self-signed certificate for `hosts` in `directory` (reused while it is valid): for `dev --tls`."""
    certificate_path, key_path = directory / "tls-certificate.pem", directory / "tls-key.pem"
    if certificate_path.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        if existing.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
            return TlsSettings(certificate_file=str(certificate_path), key_file=str(key_path))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zatca-appliance development")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # A CA:TRUE self-signed certificate can itself be the trust anchor (`curl --cacert`).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return TlsSettings(certificate_file=str(certificate_path), key_file=str(key_path))
