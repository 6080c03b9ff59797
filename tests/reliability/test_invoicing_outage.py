"""ZATCA unreachable (connection refused): invoices wait, the late-delivery warning fires once, and
when ZATCA is back the identical bytes are delivered.

A private emulator is stopped outright (its port refuses connections), then a new emulator
process starts on the same port and data directory, as after a gateway restart. The warning
threshold is set tiny so the "oldest undelivered invoice" gauge crosses it during the outage.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from appliance.config import InvoicingSettings
from tests.fixtures.emulator import EmulatorProcess, start_emulator
from tests.fixtures.service import RunningService, prepare_service, write_config
from tests.fixtures.softhsm import create_token
from tests.integration.test_registration_e2e import register
from tests.reliability.support import wait_until
from tests.support.invoice_models import model

WARNING_SECONDS = 0.5
WARNING_TEXT = "an invoice has waited for ZATCA longer than the warning threshold"


@pytest.fixture
def own_emulator(tmp_path: Path) -> Iterator[list[EmulatorProcess]]:
    # A list: the test replaces the process; teardown stops whichever runs last.
    processes = [start_emulator(tmp_path / "emulator")]
    yield processes
    processes[-1].stop()


def gauge(service: RunningService, name: str) -> float:
    text = httpx.get(f"{service.base_url}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


def late_warnings(service: RunningService) -> list[dict[str, Any]]:
    lines = service.log_path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r.get("msg") == WARNING_TEXT]


def test_connection_refused_then_identical_bytes_and_one_late_warning(
    own_emulator: list[EmulatorProcess], tmp_path: Path
) -> None:
    emulator = own_emulator[0]
    # Its own token: a second service on the session's token would reconcile the other's keys away.
    token = create_token(tmp_path / "token", "zatca-outage")
    service = prepare_service(token, emulator, tmp_path / "home")
    service.config = msgspec.structs.replace(
        service.config,
        invoicing=InvoicingSettings(
            outbox_poll_seconds=0.1,
            retry_base_seconds=0.1,
            retry_max_seconds=0.5,
            undelivered_warning_seconds=WARNING_SECONDS,
            clearance_timeout_seconds=1.0,
        ),
    )
    write_config(service.config_path, service.config)
    service.start()
    try:
        response = register(service, emulator, invoice_format="Model")
        assert response.status_code == 200, response.text
        device_id = response.json()["deviceId"]
        port = int(emulator.base_url.rsplit(":", 1)[1])
        assert emulator.stop() is not None

        with service.client() as client:
            answers = [
                client.post(f"/v1/Devices/{device_id}/Invoices", json=model()).json(),
                client.post(f"/v1/Devices/{device_id}/Invoices", json=model(invoice_type="Standard")).json(),
                client.post(f"/v1/Devices/{device_id}/Invoices", json=model(kind="CreditNote")).json(),
            ]
        assert [a["status"] for a in answers] == ["Pending"] * 3, answers
        assert [a["icv"] for a in answers] == [1, 2, 3]

        # The gauge passes the threshold, the warning is logged, and only once while it stays late.
        wait_until(
            lambda: gauge(service, "zatca_appliance_outbox_oldest_age_seconds") > 4 * WARNING_SECONDS,
            "the oldest-undelivered gauge past the threshold",
        )
        assert gauge(service, "zatca_appliance_outbox_depth") == 3
        wait_until(lambda: bool(late_warnings(service)), "the late-delivery warning")
        wait_until(
            lambda: gauge(service, "zatca_appliance_outbox_oldest_age_seconds") > 8 * WARNING_SECONDS,
            "more outbox rounds while still late",
        )
        (warning,) = late_warnings(service)
        assert warning["level"] == "WARNING" and warning["depth"] == 3

        back = start_emulator(emulator.data_dir, port=port)
        own_emulator.append(back)
        with service.client() as client:

            def all_delivered() -> bool:
                page = client.get(f"/v1/Devices/{device_id}/Invoices", params={"status": "Pending"})
                total: int = page.json()["total"]
                return total == 0

            wait_until(all_delivered, "delivery once ZATCA is back", timeout=60)
            statuses = [client.get(f"/v1/Invoices/{a['invoiceId']}").json()["status"] for a in answers]
        assert statuses[0] in ("Reported", "ReportedWithWarnings") and statuses[2] in (
            "Reported",
            "ReportedWithWarnings",
        )
        assert statuses[1] in ("Cleared", "ClearedWithWarnings")
        wait_until(
            lambda: gauge(service, "zatca_appliance_outbox_oldest_age_seconds") == 0.0,
            "the gauge back to 0",
        )
        assert gauge(service, "zatca_appliance_outbox_depth") == 0

        held = back.invoices()
        for answer in answers:
            entries = [entry for entry in held if entry["uuid"] == answer["uuid"]]
            assert len(entries) == 1, entries
            assert Path(entries[0]["xml_file"]).read_bytes() == base64.b64decode(answer["signedXml"])
    finally:
        service.stop()
