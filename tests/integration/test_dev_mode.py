"""`zatca-appliance dev`, the README's first command: what a newcomer sees must work as printed."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.fixtures.service import free_port

BANNER_TIMEOUT = 60


def test_dev_mode_prints_a_curl_example_that_registers_a_device(tmp_path: Path) -> None:
    port, emulator_port = free_port(), free_port()
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance.cli",
                "dev",
                "--data-dir",
                str(tmp_path / "dev"),
                "--port",
                str(port),
                "--emulator-port",
                str(emulator_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + BANNER_TIMEOUT
        while "Register a device" not in (output := log_path.read_text(encoding="utf-8", errors="replace")):
            assert process.poll() is None, output
            assert time.monotonic() < deadline, output
            time.sleep(0.1)
        api_key = re.search(r"API key\s+(\S+)", output)
        assert api_key is not None
        snippet = output[output.index("OTP=$(curl") :]
        snippet = snippet[: snippet.index('"InvoiceFormat": "Xml"}\'') + len('"InvoiceFormat": "Xml"}\'')]

        result = subprocess.run(
            ["bash", "-c", snippet], capture_output=True, text=True, timeout=60, check=True
        )
        answer = json.loads(result.stdout)
        assert answer["status"] == "Success", answer
        csr = x509.load_pem_x509_csr(answer["CSR"].encode())
        inner = base64.b64decode(answer["csid"]).decode()
        certificate = x509.load_der_x509_certificate(base64.b64decode(inner))
        as_spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        assert certificate.public_key().public_bytes(*as_spki) == csr.public_key().public_bytes(*as_spki)
        # The same paste works again (a fresh EGS serial each time), with the same API key.
        again = json.loads(
            subprocess.run(
                ["bash", "-c", snippet], capture_output=True, text=True, timeout=60, check=True
            ).stdout
        )
        assert again["status"] == "Success" and again["deviceId"] != answer["deviceId"]
        # The admin commands reach the running instance through the configuration it printed.
        config_path = re.search(r"config\s+(\S+config\.yaml)", output)
        assert config_path is not None, output
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "appliance.cli",
                "devices",
                "show",
                answer["deviceId"],
                "--config",
                config_path.group(1),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert answer["deviceId"] in shown.stdout and "active" in shown.stdout
    finally:
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=30)
    assert exit_code in (0, 130)
    # The emulator child went with it: its port is free again.
    probe = subprocess.run(
        ["curl", "-s", f"http://127.0.0.1:{emulator_port}/emulator/health"],
        check=False,
        capture_output=True,
        timeout=10,
    )
    assert probe.returncode != 0
