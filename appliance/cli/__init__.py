"""`zatca-appliance`: one entry point, one small module per command group.

Each command module exposes `register(subparsers)` and sets `handler` on its parser; a handler
takes the parsed arguments and returns the process exit code. ApplianceErrors become one clear
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.cli import apikey, audit, csr, devices, emulator, hsm, invoice, invoices, serve
from appliance.errors import ApplianceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zatca-appliance",
        description="ZATCA e-invoicing onboarding appliance with device keys in a PKCS#11 token.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, hsm, csr, emulator, devices, apikey, audit, invoice, invoices):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        exit_code: int = args.handler(args)
    except ApplianceError as exc:
        print(f"zatca-appliance: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
