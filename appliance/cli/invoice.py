"""`zatca-appliance invoice render|sign|verify|hash|qr`: the invoice core, for administrators.

These commands work beside a running service against the same configuration: they read the
registry (SQLite in WAL mode allows concurrent readers) and open their own session on the token.
stdout carries only the document (or the report), so the commands pipe into each other:

    zatca-appliance invoice render ... | zatca-appliance invoice sign ... /dev/stdin > signed.xml
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.errors import ApplianceError, NotFound, ValidationFailed

if TYPE_CHECKING:
    from appliance.invoices import SellerIdentity
    from appliance.storage import DeviceRecord

EXIT_CHECK_FAILED = 1
EXIT_INVALID_INPUT = 2


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("invoice", help="render, sign, verify and inspect ZATCA invoices")
    actions = parser.add_subparsers(dest="invoice_command", required=True, metavar="ACTION")

    render = actions.add_parser("render", help="print the unsigned UBL document for an invoice model")
    _add_device_options(render)
    render.add_argument("--input", required=True, type=Path, help="the invoice model (JSON)")
    render.add_argument("--icv", required=True, type=int, help="the invoice counter value to render")
    render.add_argument("--pih", required=True, help="previous invoice hash (base64)")
    render.set_defaults(handler=render_command)

    sign = actions.add_parser("sign", help="stamp a document through the token with the device's key")
    _add_device_options(sign)
    sign.add_argument("file", type=Path, help="the unsigned (or previously signed) UBL document")
    sign.add_argument(
        "--signing-time",
        type=datetime.fromisoformat,
        help="xades:SigningTime (ISO 8601; default: now, Riyadh time)",
    )
    sign.set_defaults(handler=sign_command)

    verify = actions.add_parser("verify", help="check hash, stamp, QR (and PIH); exit 1 if any fails")
    verify.add_argument("file", type=Path)
    source = verify.add_mutually_exclusive_group()
    source.add_argument("--certificate", type=Path, help="PEM or DER certificate expected to have signed")
    source.add_argument("--device-id", help="use this device's current certificate (needs --config)")
    add_config_option(verify)
    verify.add_argument("--pih", help="expected previous invoice hash (base64)")
    verify.set_defaults(handler=verify_command)

    hash_parser = actions.add_parser("hash", help="print the invoice hash (base64)")
    hash_parser.add_argument("file", type=Path)
    hash_parser.set_defaults(handler=hash_command)

    qr = actions.add_parser("qr", help="print the QR code's TLV tags as JSON")
    qr.add_argument("file", type=Path)
    qr.set_defaults(handler=qr_command)


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--device-id", required=True, help="the registered device (its deviceId)")


def render_command(args: argparse.Namespace) -> int:
    from appliance.invoices import decode_invoice_model, render_invoice

    record = _device(args)
    try:
        model = decode_invoice_model(_read(args.input))
        document = render_invoice(model, _seller(record), icv=args.icv, pih=args.pih)
    except ValidationFailed as exc:
        for problem in exc.problems:
            print(f"zatca-appliance invoice render: {problem.field}: {problem.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    sys.stdout.buffer.write(document)
    return 0


def sign_command(args: argparse.Namespace) -> int:
    from appliance.hsm import KeyStore
    from appliance.invoices import stamp_invoice

    config = config_from_args(args)
    record = _device(args)
    certificate_der = _device_certificate_der(record)
    # The key's CKA_ID, not the device id: a renewal gives the device a new key.
    key_id = uuid.UUID(hex=record.key_id_hex)
    unsigned = _read(args.file)
    store = KeyStore.open(config.hsm)
    try:
        signed = stamp_invoice(
            unsigned,
            certificate_der,
            lambda digest: store.sign_digest(key_id, digest),
            signing_time=args.signing_time,
        )
    finally:
        store.close()
    sys.stdout.buffer.write(signed.xml)
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from appliance.invoices import verify_invoice

    certificate: bytes | None = None
    if args.certificate is not None:
        certificate = _certificate_file(args.certificate)
    elif args.device_id is not None:
        certificate = _device_certificate_der(_device(args))
    report = verify_invoice(_read(args.file), certificate, previous_hash=args.pih)
    for check in report.checks:
        print(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {check.reason}")
    return 0 if report.ok else EXIT_CHECK_FAILED


def hash_command(args: argparse.Namespace) -> int:
    from appliance.invoices import invoice_hash

    print(invoice_hash(_read(args.file)))
    return 0


def qr_command(args: argparse.Namespace) -> int:
    from appliance.invoices import decode_qr, parse_invoice_facts

    facts = parse_invoice_facts(_read(args.file))
    if not facts.qr:
        raise ApplianceError(f"{args.file} has no QR code (AdditionalDocumentReference ID=QR)")
    tags = decode_qr(facts.qr)
    print(json.dumps({str(tag): _tag_value(tag, value) for tag, value in sorted(tags.items())}, indent=2))
    return 0


def _tag_value(tag: int, value: bytes) -> str:
    # Tags 8 and 9 are DER (public key, CA signature): hex, as `openssl asn1parse` users read them.
    if tag in (8, 9):
        return value.hex()
    return value.decode("utf-8", errors="replace")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ApplianceError(f"cannot read {path}: {exc.strerror}") from exc


def _certificate_file(path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError as exc:
        raise ApplianceError(f"{path} does not hold an X.509 certificate (PEM or DER)") from exc


def _device(args: argparse.Namespace) -> DeviceRecord:
    if getattr(args, "config", None) is None:
        raise ApplianceError("--device-id needs --config (the registry it is in)")
    config = config_from_args(args)
    device_id = args.device_id
    return with_registry(config, lambda registry: registry.get(device_id))


def _seller(record: DeviceRecord) -> SellerIdentity:
    from appliance.invoices import SellerIdentity

    return SellerIdentity(vat=record.vat, name=record.organization_name)


def _device_certificate_der(record: DeviceRecord) -> bytes:
    """The certificate the device signs with now (its production CSID's once onboarding is done)."""
    from appliance.zatca.token import decode_binary_security_token

    token = record.binary_security_token
    if token is None:
        raise NotFound(f"device {record.device_id} has no certificate yet (status {record.status})")
    return decode_binary_security_token(token)
