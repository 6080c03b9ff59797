"""`zatca-appliance dev`: a SoftHSM token, a registry, the ZATCA emulator and the service, in one go.

Like a secrets server's development mode: everything lives under `--data-dir`, is reused on the
next start, and talks only to 127.0.0.1. The emulator runs as a child process so that each
server keeps its own signal handling; it stops with the service.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from appliance.config import (
    AppConfig,
    LoggingSettings,
    ServerSettings,
    StorageSettings,
    ZatcaBaseUrls,
    ZatcaSettings,
)

DEV_API_KEY_NAME = "dev"
EMULATOR_START_TIMEOUT = 15.0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    dev = commands.add_parser("dev", help="development mode: token, emulator and service on 127.0.0.1")
    dev.add_argument(
        "--data-dir", type=Path, default=Path(".appliance-dev"), help="(default ./.appliance-dev)"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--emulator-port", type=int, default=8081)
    dev.add_argument("--api-key", help="use this API key instead of the generated one")
    dev.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a self-signed certificate kept in --data-dir"
    )
    dev.set_defaults(handler=run_dev)


def run_dev(args: argparse.Namespace) -> int:
    from appliance.cli.apikey import ensure_api_key
    from appliance.cli.serve import serve_forever
    from appliance.daemon.tls import ensure_self_signed
    from appliance.hsm.provision import ensure_dev_token

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    hsm = ensure_dev_token(data_dir)
    emulator_url = f"http://127.0.0.1:{args.emulator_port}"
    tls = (
        ensure_self_signed(data_dir / "tls", sorted({args.host, "127.0.0.1", "localhost"}))
        if args.tls
        else None
    )
    config = AppConfig(
        server=ServerSettings(host=args.host, port=args.port, tls=tls),
        hsm=hsm,
        zatca=ZatcaSettings(
            base_urls=ZatcaBaseUrls(
                development=f"{emulator_url}/e-invoicing/developer-portal",
                simulation=f"{emulator_url}/e-invoicing/simulation",
                production=f"{emulator_url}/e-invoicing/core",
            )
        ),
        storage=StorageSettings(data_dir=str(data_dir)),
        logging=LoggingSettings(format="text"),
    )
    config_path = write_config(config, data_dir / "config.yaml")
    api_key = ensure_api_key(config, DEV_API_KEY_NAME, args.api_key, data_dir / "dev-api-key")
    emulator = _start_emulator(args.emulator_port, data_dir / "emulator")
    try:
        service_url = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
        curl = f"curl --cacert {tls.certificate_file}" if tls else "curl"
        return serve_forever(
            config,
            on_started=lambda: print(
                _banner(service_url, emulator_url, api_key, config_path, curl), flush=True
            ),
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def write_config(config: AppConfig, path: Path) -> Path:
    """Write the configuration dev runs with, so that the admin commands (`invoice`, `devices`,
    `audit`, `hsm`) can be pointed at the running instance with `--config`."""
    import yaml

    text = yaml.safe_dump(msgspec.to_builtins(config), sort_keys=False, allow_unicode=True)
    path.write_text("# Written by `zatca-appliance dev` on every start; edits are overwritten.\n" + text)
    path.chmod(0o600)
    return path


def _start_emulator(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    # Our own interpreter and module with fixed arguments: nothing here comes from a user.
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "appliance.cli",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
    )
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"zatca-appliance: error: the emulator exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/emulator/health", timeout=0.5).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.terminate()
    raise SystemExit(f"zatca-appliance: error: the emulator did not answer on port {port}")


def _banner(service_url: str, emulator_url: str, api_key: str, config_path: Path, curl: str = "curl") -> str:
    example = {
        "Device": {
            "EgsSerialNumber": "SN-@SERIAL@",
            "Location": "Headquarters",
            "Industry": "Retail",
            "InvoiceType": "1100",
        },
        "Organization": {
            "Vat": "399999999900003",
            "OrganizationName": "Tech Innovations Inc.",
            "OrganizationUnitName": "Riyadh Branch 2814",
            "CountryCode": "SA",
        },
        "Environment": "Simulation",
        "OTP": "@OTP@",
        "InvoiceFormat": "Xml",
    }
    # Inside single quotes for the shell; the OTP and a fresh serial are spliced in by the shell.
    body = json.dumps(example).replace("@SERIAL@", "'\"$(date +%s%N)\"'").replace("@OTP@", "'\"$OTP\"'")
    return f"""
ZATCA appliance (development mode) is running.
  service    {service_url}   (API docs: {service_url}/schema/swagger)
  emulator   {emulator_url}   (stands in for ZATCA in all three environments)
  API key    {api_key}
  config     {config_path}   (for the admin commands: --config {config_path})

Register a device (paste into a shell):

OTP=$(curl -s -X POST {emulator_url}/emulator/otps -H 'Content-Type: application/json' \\
  -d '{{"environment": "Simulation", "vat": "399999999900003"}}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["otp"])')
{curl} -s -X POST {service_url}/v1/Devices/Register \\
  -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\
  -d '{body}'
"""
