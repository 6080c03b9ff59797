"""The same key and CSR work in process with `cryptography` and a software secp256k1 key.

`zatca_csr` uses the appliance's own builder (asn1crypto) with a software signer, so the
difference to the floor's `csr` is the token; `cryptography_csr` builds a comparable CSR with
cryptography's C builder (not byte-for-byte ZATCA's layout), so the difference between the two
is the cost of assembling the ASN.1 in Python.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from appliance.x509.csr import build_zatca_csr, csr_to_pem
from bench.floor import csr_fields
from bench.stats import Summary, time_each

_DIGEST = hashlib.sha256(b"benchmark invoice").digest()
_TEMPLATE = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2")
_TEMPLATE_VALUE = b"\x0c\x15TSTZATCA-Code-Signing"  # a bare UTF8String, as ZATCA's SDK writes it
_REGISTERED_ADDRESS = x509.ObjectIdentifier("2.5.4.26")


@dataclass(frozen=True, slots=True)
class Reference:
    keygen: Summary
    sign: Summary
    zatca_csr: Summary
    cryptography_csr: Summary


def measure_reference(count: int) -> Reference:
    keys: list[ec.EllipticCurvePrivateKey] = []
    keygen = time_each(count, lambda _: keys.append(ec.generate_private_key(ec.SECP256K1())))
    sign = time_each(count, lambda index: keys[index].sign(_DIGEST, ec.ECDSA(Prehashed(hashes.SHA256()))))

    def zatca_csr(index: int) -> None:
        key = keys[index]
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        der = build_zatca_csr(
            csr_fields(f"REF-{index:08d}"),
            spki,
            lambda digest: key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))),
        )
        csr_to_pem(der)

    def cryptography_csr(index: int) -> None:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "SA"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Riyadh Branch"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Benchmark Trading Co"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"REF-{index:08d}"),
            ]
        )
        directory_name = x509.Name(
            [
                x509.NameAttribute(NameOID.SURNAME, f"1-ZatcaAppliance|2-1.0|3-REF-{index:08d}"),
                x509.NameAttribute(NameOID.USER_ID, "399999999900003"),
                x509.NameAttribute(NameOID.TITLE, "1100"),
                x509.NameAttribute(_REGISTERED_ADDRESS, "Riyadh Olaya"),
                x509.NameAttribute(NameOID.BUSINESS_CATEGORY, "Retail"),
            ]
        )
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(subject)
            .add_extension(x509.UnrecognizedExtension(_TEMPLATE, _TEMPLATE_VALUE), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(directory_name)]), critical=False)
        )
        builder.sign(keys[index], hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    return Reference(
        keygen=Summary.of(keygen),
        sign=Summary.of(sign),
        zatca_csr=Summary.of(time_each(count, zatca_csr)),
        cryptography_csr=Summary.of(time_each(count, cryptography_csr)),
    )
