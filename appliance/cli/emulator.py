"""`zatca-appliance emulator`: a ZATCA gateway look-alike on loopback, for trials without an OTP."""

from __future__ import annotations

import argparse
from typing import Any

FAULT_HELP = (
    "misbehave on the next COUNT requests to ZATCA endpoints (repeatable, applied in order): "
    "latency[:COUNT[:SECONDS]], error-500[:COUNT], timeout[:COUNT], malformed-json[:COUNT], "
    "wrong-key[:COUNT], connection-drop[:COUNT]; KIND@ENDPOINT limits a fault to compliance, "
    "production-csids, renewal, compliance-invoices, reporting, clearance or invoices "
    "(e.g. timeout@reporting:2)"
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "emulator",
        help="run the built-in ZATCA emulator",
        description=(
            "Serve a look-alike of ZATCA's onboarding gateway under /e-invoicing/developer-portal, "
            "/e-invoicing/simulation and /e-invoicing/core. The developer portal takes OTP 123345; "
            "simulation and core take OTPs minted with POST /emulator/otps "
            '{"environment": "Simulation"|"Production", "vat": "<15 digits>"}.'
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    parser.add_argument(
        "--data-dir", required=True, metavar="DIR", help="where the emulator keeps its CA and issued CSIDs"
    )
    parser.add_argument(
        "--pass-compliance-steps",
        action="store_true",
        help="mark every compliance step passed at issuance, so production CSIDs are issued at once",
    )
    parser.add_argument(
        "--renewal-requires-compliance",
        action="store_true",
        help="answer CSID renewals with 428 and new compliance credentials instead of 200",
    )
    parser.add_argument("--fault", action="append", default=[], metavar="KIND:COUNT", help=FAULT_HELP)
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a timeout fault holds a request (default 120)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default info"
    )
    parser.set_defaults(handler=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    # Imported here so that other commands do not pay for the web stack at start-up.
    from appliance.emulator import EmulatorSettings, parse_fault_argument, serve_emulator
    from appliance.errors import ConfigError

    faults = []
    for text in args.fault:
        try:
            faults.append(parse_fault_argument(text))
        except ValueError as exc:
            raise ConfigError(f"--fault {text}: {exc}") from exc
    settings = EmulatorSettings(
        data_dir=args.data_dir,
        auto_pass_compliance_steps=args.pass_compliance_steps,
        renewal_requires_compliance=args.renewal_requires_compliance,
        faults=tuple(faults),
        hang_seconds=args.hang_seconds,
    )
    serve_emulator(settings, args.host, args.port, log_level=args.log_level)
    return 0
