"""`zatca-appliance csr`: create a device key in the token and print its ZATCA CSR.

Every field is checked before the token is touched, so a typo never leaves an orphan key behind.
stdout carries only the CSR (PEM, or the API's base64 value with `--output api`) so it can be piped
to `openssl req`; the device id that names the key in the token goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from appliance.cli.common import add_token_options, config_from_args, hsm_settings_from_args
from appliance.domain import Environment
from appliance.errors import ValidationFailed
from appliance.x509.csr import build_zatca_csr, csr_request_value, csr_to_pem
from appliance.x509.fields import CsrFields, build_csr_fields

EXIT_INVALID_INPUT = 2


CLI_KEY_LABEL_PREFIX = "zatca-csr-"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "csr",
        help="create a device key in the token and print its ZATCA CSR",
        description=(
            "Generate a secp256k1 device key inside the PKCS#11 token and print the ZATCA CSR signed by "
            "it. The CSR goes to stdout; the device id (the key's CKA_ID) goes to stderr."
        ),
    )
    parser.add_argument("--environment", required=True, type=Environment, choices=list(Environment))
    fields = parser.add_argument_group("registration fields")
    fields.add_argument("--vat", required=True, help="15-digit VAT number, starting and ending with 3")
    fields.add_argument("--organization-name", required=True, help="taxpayer name (Arabic allowed)")
    fields.add_argument(
        "--organization-unit", required=True, help="branch name; for a VAT group the member's 10-digit TIN"
    )
    fields.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. SA")
    fields.add_argument(
        "--egs-serial",
        required=True,
        help="the device's serial; the configured solution name and version are prepended "
        "unless it is already written as 1-<solution>|2-<version>|3-<serial>",
    )
    fields.add_argument("--location", required=True, help="branch address, e.g. the national short address")
    fields.add_argument("--industry", required=True, help="business category, e.g. 'Supply activities'")
    fields.add_argument(
        "--invoice-type",
        default="1100",
        help="1000/Standard, 0100/Simplified or 1100/Both (default: 1100)",
    )
    fields.add_argument("--common-name", help="unique name of the EGS unit (default: the EGS serial)")
    parser.add_argument(
        "--exportable",
        action="store_true",
        help="allow the private key to be exported later (Xml/Pdf clients); default: sealed in the token",
    )
    parser.add_argument(
        "--output",
        choices=["pem", "api"],
        default="pem",
        help="pem: the PEM text; api: base64 of the PEM, the value of ZATCA's {'csr': ...} (default: pem)",
    )
    add_token_options(parser)
    parser.set_defaults(handler=create_csr)


def create_csr(args: argparse.Namespace) -> int:
    try:
        fields = _fields_from_args(args)
    except ValidationFailed as exc:
        for problem in exc.problems:
            # Each flag is its logical field name (appliance.x509.fields) the way argparse spells it.
            flag = "--" + problem.field.replace("_", "-")
            print(f"zatca-appliance csr: {flag}: {problem.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT

    from appliance.hsm import KeyPolicy, KeyStore

    policy = KeyPolicy.EXPORTABLE if args.exportable else KeyPolicy.SEALED
    device_id = uuid.uuid4()
    store = KeyStore.open(hsm_settings_from_args(args))
    try:
        # Its own label: the service's reconciliation only manages `zatca-device-*` keys, so a key
        # an administrator made here is never mistaken for an orphan of the service and destroyed.
        public_key_der = store.generate_device_key(device_id, policy, f"{CLI_KEY_LABEL_PREFIX}{device_id}")
        try:
            der = build_zatca_csr(fields, public_key_der, lambda digest: store.sign_digest(device_id, digest))
        except BaseException:
            store.destroy_device_key(device_id)
            raise
        print(f"device-id: {device_id}", file=sys.stderr)
        key_kind = "exportable" if args.exportable else "sealed"
        print(f"key-id: {device_id.hex} (CKA_ID of the {key_kind} key in the token)", file=sys.stderr)
    finally:
        store.close()

    pem = csr_to_pem(der)
    sys.stdout.write(csr_request_value(pem) + "\n" if args.output == "api" else pem)
    return 0


def _fields_from_args(args: argparse.Namespace) -> CsrFields:
    solution = config_from_args(args).solution
    return build_csr_fields(
        args.environment,
        vat=args.vat,
        organization_name=args.organization_name,
        organization_unit=args.organization_unit,
        country=args.country,
        egs_serial=args.egs_serial,
        location=args.location,
        industry=args.industry,
        invoice_type=args.invoice_type,
        common_name=args.common_name,
        solution_name=solution.name,
        solution_version=solution.version,
    )
