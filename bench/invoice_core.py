"""`python -m bench.invoice_core [--count N]`: the invoice core against its reference.

One 5-line simplified invoice, from model to signed document, each step timed alone:

render    decode the model JSON + render_invoice (UBL tree, totals)
hash      invoice_hash of the rendered bytes
stamp     stamp_invoice with the signature made in a SoftHSM token (sealed key, cached handle)
verify    verify_invoice with the device certificate
token     one raw token signature alone (KeyStore.sign_digest), the floor under `stamp`

and, as the reference a user would otherwise pick, fatoora-rs signing the same unsigned document
in process with a software key (`Signer.sign_xml`). Goal (issue 9): render + hash + stamp p50 at
most 2 x (fatoora-rs sign p50 + token p50).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
)
from fatoora import Signer

from appliance.config import HsmSettings
from appliance.hsm import KeyPolicy, KeyStore
from appliance.hsm.provision import ensure_dev_token
from appliance.invoices import (
    INITIAL_PIH,
    SellerIdentity,
    decode_invoice_model,
    invoice_hash,
    render_invoice,
    stamp_invoice,
    verify_invoice,
)
from bench.stats import Summary, time_each

SELLER = SellerIdentity(vat="399999999900003", name="Maximum Speed Tech Supply LTD")
MODEL = {
    "InvoiceNumber": "INV-BENCH-1",
    "Type": "Simplified",
    "Kind": "Invoice",
    "IssueDate": "2026-12-06",
    "IssueTime": "14:03:22",
    "Seller": {
        "StreetName": "King Fahd Road",
        "BuildingNumber": "1234",
        "CitySubdivisionName": "Al Olaya",
        "CityName": "Riyadh",
        "PostalZone": "12345",
        "CountryCode": "SA",
        "Identification": {"Scheme": "CRN", "Id": "1010010000"},
    },
    "Lines": [
        {"Name": f"Item {n}", "Quantity": str(n), "UnitPrice": f"{n}.25", "VatCategory": "S", "VatRate": "15"}
        for n in range(1, 6)
    ],
}


@dataclass(frozen=True, slots=True)
class InvoiceCoreFigures:
    render: Summary
    hash: Summary
    stamp: Summary
    verify: Summary
    token_sign: Summary
    fatoora_sign: Summary
    pipeline: Summary  # render + stamp (which hashes), measured together

    @property
    def goal_ms(self) -> float:
        return 2 * (self.fatoora_sign.median_ms + self.token_sign.median_ms)


def _certificate_for(public_key_der: bytes) -> bytes:
    """A certificate for the token's key from a throwaway CA (stands in for ZATCA's CSID)."""
    ca_key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name.from_rfc4514_string("CN=Bench CA,DC=local")
    subject = x509.Name.from_rfc4514_string("CN=bench-device,O=Maximum Speed Tech Supply LTD,C=SA")
    now = datetime.now(UTC)
    public_key = load_der_public_key(public_key_der)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def _software_signer() -> Signer:
    key = ec.generate_private_key(ec.SECP256K1())
    certificate_der = _certificate_for(
        key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    key_der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return Signer.from_der(certificate_der, key_der)


@contextmanager
def token_signer(hsm: HsmSettings, label: str) -> Iterator[tuple[Callable[[bytes], bytes], bytes]]:
    """`(sign, certificate_der)` for a fresh sealed key in the token, its handle cache warm (as a
    running service has); the key is destroyed on exit."""
    store = KeyStore.open(hsm)
    device_id = uuid.uuid4()
    try:
        public_key_der = store.generate_device_key(device_id, KeyPolicy.SEALED, f"{label}-{device_id}")
        certificate_der = _certificate_for(public_key_der)

        def sign(digest: bytes) -> bytes:
            return store.sign_digest(device_id, digest)

        sign(b"\x01" * 32)
        yield sign, certificate_der
    finally:
        store.destroy_device_key(device_id)
        store.close()


def measure_invoice_core(count: int, work_dir: Path) -> InvoiceCoreFigures:
    with token_signer(ensure_dev_token(work_dir), "bench-invoice") as (sign, certificate_der):
        body = json.dumps(MODEL).encode()
        unsigned = render_invoice(decode_invoice_model(body), SELLER, icv=1, pih=INITIAL_PIH)
        signed = stamp_invoice(unsigned, certificate_der, sign).xml
        digest = b"\x01" * 32
        software = _software_signer()
        unsigned_text = unsigned.decode()

        def pipeline(_: int) -> None:
            # As the service runs it: the stamp computes the invoice hash it signs and returns it.
            document = render_invoice(decode_invoice_model(body), SELLER, icv=1, pih=INITIAL_PIH)
            stamp_invoice(document, certificate_der, sign)

        return InvoiceCoreFigures(
            render=Summary.of(
                time_each(
                    count,
                    lambda _: render_invoice(decode_invoice_model(body), SELLER, icv=1, pih=INITIAL_PIH),
                )
            ),
            hash=Summary.of(time_each(count, lambda _: invoice_hash(unsigned))),
            stamp=Summary.of(time_each(count, lambda _: stamp_invoice(unsigned, certificate_der, sign))),
            verify=Summary.of(time_each(count, lambda _: verify_invoice(signed, certificate_der))),
            token_sign=Summary.of(time_each(count, lambda _: sign(digest))),
            fatoora_sign=Summary.of(time_each(count, lambda _: software.sign_xml(unsigned_text))),
            pipeline=Summary.of(time_each(count, pipeline)),
        )


def render_table(figures: InvoiceCoreFigures) -> str:
    rows = [
        ("render (decode + render_invoice)", figures.render),
        ("hash", figures.hash),
        ("stamp (token signature included)", figures.stamp),
        ("verify", figures.verify),
        ("render + hash + stamp", figures.pipeline),
        ("raw token signature", figures.token_sign),
        ("fatoora-rs sign_xml (software key)", figures.fatoora_sign),
    ]
    lines = ["| step | p50 ms | p95 ms |", "|---|---:|---:|"]
    lines += [f"| {name} | {s.median_ms:.3f} | {s.p95_ms:.3f} |" for name, s in rows]
    verdict = "met" if figures.pipeline.median_ms <= figures.goal_ms else "NOT met"
    lines.append(
        f"\nGoal: render + hash + stamp p50 {figures.pipeline.median_ms:.3f} ms <= 2 x (fatoora-rs "
        f"{figures.fatoora_sign.median_ms:.3f} + token {figures.token_sign.median_ms:.3f}) = "
        f"{figures.goal_ms:.3f} ms: {verdict} (ratio {figures.pipeline.median_ms / figures.goal_ms * 2:.2f}x)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-invoice-") as directory:
        print(render_table(measure_invoice_core(args.count, Path(directory))))


if __name__ == "__main__":
    main()
