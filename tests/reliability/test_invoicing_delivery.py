"""Delivery through faults: 500s, dropped connections, timeouts; documents ZATCA already accepted
(409 on reporting, 208 on clearance). Invoices stay `Pending`, then arrive
with identical bytes: the emulator holds, per UUID, exactly one accepted document, byte-identical to
the appliance's."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx

from appliance.invoices import INITIAL_PIH
from appliance.invoices.hashing import invoice_hash
from tests.fixtures.service import RunningService
from tests.integration.test_invoicing_api import (
    chain_of,
    invoicing_service,
    new_model_device,
    wait_until_delivered,
)
from tests.integration.test_invoicing_submit import XmlDevice, submission
from tests.support.invoice_models import model

__all__ = ["invoicing_service"]  # the module fixture, shared


def inject(emulator: Any, kind: str, endpoint: str, count: int = 1, seconds: float | None = None) -> None:
    body: dict[str, Any] = {"kind": kind, "count": count, "endpoint": endpoint}
    if seconds is not None:
        body["seconds"] = seconds
    httpx.post(f"{emulator.base_url}/emulator/faults", json=body, timeout=10).raise_for_status()


def test_faults_then_identical_bytes_delivered_once(invoicing_service: RunningService, emulator: Any) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    # The service's ZATCA read timeout is 2 s: a 3 s latency means ZATCA accepted but the answer
    # was lost, so the retry of the identical document is a duplicate.
    inject(emulator, "error-500", "reporting", count=2)
    inject(emulator, "connection-drop", "reporting")
    inject(emulator, "timeout", "reporting")
    with invoicing_service.client() as client:
        answers = []
        for _ in range(4):
            response = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "Pending"
            answers.append(response.json())

        wait_until_delivered(client, device_id)
        chain = {item["invoiceId"]: item for item in chain_of(client, device_id)}
        assert sorted(item["icv"] for item in chain.values()) == [1, 2, 3, 4]
        for answer in answers:
            assert chain[answer["invoiceId"]]["status"] in ("Reported", "ReportedWithWarnings")
    assert emulator.pending_faults() == []

    held = httpx.get(f"{emulator.base_url}/emulator/invoices").json()
    for answer in answers:
        entries = [entry for entry in held if entry["uuid"] == answer["uuid"]]
        accepted = [entry for entry in entries if entry["http_status"] in (200, 202)]
        assert len(accepted) == 1, (answer["icv"], entries)
        signed = base64.b64decode(answer["signedXml"])
        for entry in entries:
            assert Path(entry["xml_file"]).read_bytes() == signed


def test_already_accepted_documents_count_as_delivered(
    invoicing_service: RunningService, emulator: Any
) -> None:
    """ZATCA already holds the document (as after an answer lost on the way back): 409 on reporting
    and 208 on clearance mean delivered, and 208's cleared invoice is kept."""
    device = XmlDevice(invoicing_service, emulator)
    url = f"/v1/Devices/{device.device_id}/Invoices/Submit"
    environment_url = emulator.environment_url("Simulation")
    credentials = base64.b64encode(f"{device.csid}:{device.secret}".encode()).decode()

    def accepted_directly(path: str, body: dict[str, Any], document: bytes) -> None:
        direct = httpx.post(
            f"{environment_url}/invoices/{path}/single",
            json={
                "invoiceHash": invoice_hash(document),
                "uuid": body["Uuid"],
                "invoice": base64.b64encode(document).decode(),
            },
            headers={
                "Accept-Version": "V2",
                "Authorization": f"Basic {credentials}",
                "Clearance-Status": "1" if path == "clearance" else "0",
            },
            timeout=30,
        )
        assert direct.status_code in (200, 202), direct.text

    simplified_body, standard_body = model(), model(invoice_type="Standard")
    simplified = device.document(1, INITIAL_PIH, simplified_body)
    accepted_directly("reporting", simplified_body, simplified)
    standard = device.document(2, invoice_hash(simplified), standard_body)
    accepted_directly("clearance", standard_body, standard)
    with invoicing_service.client() as client:
        first = client.post(url, json=submission(simplified_body, simplified))
        assert first.status_code == 201, first.text
        second = client.post(url, json=submission(standard_body, standard))
        assert second.status_code == 201, second.text
        cleared = second.json()
        assert cleared["status"] in ("Cleared", "ClearedWithWarnings"), cleared
        assert cleared["zatca"]["httpStatus"] == 208 and cleared["clearedXml"]
        wait_until_delivered(client, device.device_id)
        reported = client.get(f"/v1/Invoices/{first.json()['invoiceId']}").json()
        assert reported["status"] in ("Reported", "ReportedWithWarnings"), reported
        assert reported["zatca"]["httpStatus"] == 409


def test_a_document_in_backoff_holds_back_its_device_only(
    invoicing_service: RunningService, emulator: Any
) -> None:
    """Each device's documents reach ZATCA in ICV order: while the first waits out its backoff,
    the device's later ones wait too, and another device's documents do not."""
    held_back = new_model_device(invoicing_service, emulator)
    other = new_model_device(invoicing_service, emulator)
    inject(emulator, "error-500", "reporting", count=2)
    with invoicing_service.client() as client:
        first = client.post(f"/v1/Devices/{held_back}/Invoices", json=model())
        assert first.status_code == 201, first.text
        later = [client.post(f"/v1/Devices/{held_back}/Invoices", json=model()) for _ in range(3)]
        assert all(response.status_code == 201 for response in later)
        # Another device is not held back by this one's backoff: reported while the first waits.
        other_answer = client.post(f"/v1/Devices/{other}/Invoices", json=model())
        assert other_answer.status_code == 201, other_answer.text
        wait_until_delivered(client, other)
        first_now = client.get(f"/v1/Invoices/{first.json()['invoiceId']}").json()
        wait_until_delivered(client, held_back)
    assert emulator.pending_faults() == []

    held = httpx.get(f"{emulator.base_url}/emulator/invoices").json()
    accepted = {entry["uuid"]: entry["received_at"] for entry in held if entry["http_status"] in (200, 202)}
    answers = [first.json(), *(response.json() for response in later)]
    assert [answer["icv"] for answer in answers] == [1, 2, 3, 4]
    received = [accepted[answer["uuid"]] for answer in answers]
    assert received == sorted(received), "documents reached ZATCA out of ICV order"
    if first_now["status"] == "Pending":
        # The other device's document went while this device's first was in backoff.
        assert accepted[other_answer.json()["uuid"]] < received[0]
