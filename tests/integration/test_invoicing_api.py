"""Invoicing over real HTTP: the service (own process), a SoftHSM token and the emulator as ZATCA.

A Model device is registered through the service; its invoices are signed in the token, chained,
stored and delivered by the outbox to the emulator's reporting and clearance endpoints.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest
from fatoora import Config, Environment, validate_zatca_invoice_from_str

from appliance.config import InvoicingSettings
from appliance.invoices import INITIAL_PIH
from tests.fixtures.service import RunningService, cli, prepare_service, write_config
from tests.fixtures.softhsm import create_token
from tests.integration.test_registration_e2e import register
from tests.support.invoice_models import ISSUE_DATE, SELLER, SIX_KINDS, model

DELIVERY_DEADLINE_SECONDS = 120.0


@pytest.fixture(scope="module")
def invoicing_service(emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    # Its own token: a second service on the session's token would reconcile the other's keys away.
    home = tmp_path_factory.mktemp("invoicing")
    token = create_token(home / "token", "zatca-invoicing")
    running = prepare_service(token, emulator, home)
    running.config = msgspec.structs.replace(
        running.config,
        invoicing=InvoicingSettings(
            clearance_timeout_seconds=5.0,
            outbox_poll_seconds=0.2,
            retry_base_seconds=0.2,
            retry_max_seconds=1.0,
        ),
    )
    write_config(running.config_path, running.config)
    running.start()
    yield running
    running.stop()


def new_model_device(service: RunningService, emulator: Any) -> str:
    response = register(service, emulator, invoice_format="Model")
    assert response.status_code == 200, response.text
    device_id: str = response.json()["deviceId"]
    return device_id


def chain_of(client: httpx.Client, device_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.get(f"/v1/Devices/{device_id}/Invoices", params={"offset": offset, "limit": 500})
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        offset += 500
        if offset >= page.json()["total"]:
            return sorted(items, key=lambda item: item["icv"])


def wait_until_delivered(client: httpx.Client, device_id: str) -> None:
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        page = client.get(f"/v1/Devices/{device_id}/Invoices", params={"status": "Pending", "limit": 1})
        if page.json()["total"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"invoices of {device_id} still pending after {DELIVERY_DEADLINE_SECONDS}s")


def test_simplified_answered_at_once_and_standard_cleared(
    invoicing_service: RunningService, emulator: Any
) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    with invoicing_service.client() as client:
        simplified = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
        assert simplified.status_code == 201, simplified.text
        answer = simplified.json()
        assert answer["icv"] == 1 and answer["previousInvoiceHash"] == INITIAL_PIH
        assert answer["deviceId"] == device_id and answer["clearedXml"] is None
        assert answer["qrCode"] and base64.b64decode(answer["signedXml"]).startswith(b"<?xml")
        assert answer["status"] in ("Pending", "Reported", "ReportedWithWarnings")

        standard = client.post(f"/v1/Devices/{device_id}/Invoices", json=model(invoice_type="Standard"))
        assert standard.status_code == 201, standard.text
        cleared = standard.json()
        assert cleared["icv"] == 2 and cleared["previousInvoiceHash"] == answer["invoiceHash"]
        assert cleared["status"] in ("Cleared", "ClearedWithWarnings"), cleared
        assert cleared["clearedXml"] and cleared["zatca"]["httpStatus"] in (200, 202)

        document = client.get(f"/v1/Invoices/{cleared['invoiceId']}", headers={"Accept": "application/xml"})
        assert document.status_code == 200
        assert document.headers["content-type"].startswith("application/xml")
        assert document.content == base64.b64decode(cleared["clearedXml"])

        wait_until_delivered(client, device_id)
        reported = client.get(f"/v1/Invoices/{answer['invoiceId']}").json()
        assert reported["status"] in ("Reported", "ReportedWithWarnings")


def test_idempotent_retries(invoicing_service: RunningService, emulator: Any) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    body = model()
    with invoicing_service.client() as client:
        first = client.post(f"/v1/Devices/{device_id}/Invoices", json=body)
        assert first.status_code == 201, first.text
        again = client.post(f"/v1/Devices/{device_id}/Invoices", json=body)
        assert again.status_code == 200, again.text
        for name in ("invoiceId", "icv", "invoiceHash", "signedXml", "qrCode"):
            assert again.json()[name] == first.json()[name]
        changed = client.post(f"/v1/Devices/{device_id}/Invoices", json={**body, "Note": "changed"})
        assert changed.status_code == 409, changed.text
        assert first.json()["invoiceId"] in changed.json()["errorList"][0]["message"]
        assert chain_of(client, device_id)[-1]["icv"] == 1
        nxt = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
        assert nxt.json()["icv"] == 2


def test_bad_input_consumes_no_icv(invoicing_service: RunningService, emulator: Any) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    with invoicing_service.client() as client:
        bad = client.post(
            f"/v1/Devices/{device_id}/Invoices", json=model(Lines=[{"Name": "X", "Quantity": "-1"}])
        )
        assert bad.status_code == 400
        fields = {item.get("field") for item in bad.json()["errorList"]}
        assert any(field and field.startswith("Lines[0]") for field in fields), bad.json()
        note = client.post(f"/v1/Devices/{device_id}/Invoices", json=model(kind="CreditNote", Reason=None))
        assert note.status_code == 400
        missing = client.post(f"/v1/Devices/{uuid.uuid4()}/Invoices", json=model())
        assert missing.status_code == 404
        too_big = client.post(
            f"/v1/Devices/{device_id}/Invoices",
            content=b'{"Note": "' + b"x" * (invoicing_service.config.server.max_body_bytes + 10) + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert too_big.status_code == 413
        submit = client.post(
            f"/v1/Devices/{device_id}/Invoices/Submit",
            json={"Uuid": str(uuid.uuid4()), "InvoiceNumber": "X", "SignedXml": "PGE+"},
        )
        assert submit.status_code == 409 and "Model" in submit.json()["errorList"][0]["message"]
        first = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
        assert first.status_code == 201 and first.json()["icv"] == 1


def test_seller_stored_per_device(invoicing_service: RunningService, emulator: Any) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    with invoicing_service.client() as client:
        bad = client.put(f"/v1/Devices/{device_id}/Seller", json={**SELLER, "PostalZone": "12"})
        assert bad.status_code == 400 and bad.json()["errorList"][0]["field"] == "PostalZone"
        assert client.put(f"/v1/Devices/{device_id}/Seller", json=SELLER).status_code == 204
        body = model()
        del body["Seller"]
        issued = client.post(f"/v1/Devices/{device_id}/Invoices", json=body)
        assert issued.status_code == 201, issued.text
        assert b"King Fahd Road" in base64.b64decode(issued.json()["signedXml"])


def test_eight_clients_two_hundred_mixed_documents(invoicing_service: RunningService, emulator: Any) -> None:
    device_id = new_model_device(invoicing_service, emulator)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client_run(index: int) -> None:
        with invoicing_service.client() as client:
            for n in range(25):
                invoice_type, kind = SIX_KINDS[(index * 25 + n) % 6]
                response = client.post(f"/v1/Devices/{device_id}/Invoices", json=model(kind, invoice_type))
                assert response.status_code == 201, response.text
                with lock:
                    answers.append(response.json())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client_run, range(8)))

    assert sorted(answer["icv"] for answer in answers) == list(range(1, 201))
    with invoicing_service.client() as client:
        wait_until_delivered(client, device_id)
        chain = chain_of(client, device_id)
    by_icv = {answer["icv"]: answer for answer in answers}
    previous = INITIAL_PIH
    for icv in range(1, 201):
        answer = by_icv[icv]
        assert answer["previousInvoiceHash"] == previous, f"PIH of ICV {icv}"
        xml = base64.b64decode(answer["signedXml"]).decode("utf-8")
        report = validate_zatca_invoice_from_str(
            Config(Environment.NON_PRODUCTION),
            xml,
            previous_invoice_hash=previous,
            evaluated_at=f"{ISSUE_DATE}T12:00:00Z",
        )
        errors = [f for stage in report["stages"] for f in stage["findings"] if f["severity"] == "error"]
        assert report["is_valid"] and not errors, (icv, errors)
        previous = answer["invoiceHash"]
    assert [item["status"] for item in chain if item["status"] in ("Pending", "Rejected")] == []

    verified = cli(
        "invoices",
        "verify-chain",
        "--config",
        str(invoicing_service.config_path),
        "--device-id",
        device_id,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    held = httpx.get(f"{emulator.base_url}/emulator/invoices").json()
    hashes = {entry["invoice_hash"] for entry in held}
    assert {answer["invoiceHash"] for answer in answers} <= hashes


def test_thirty_two_clients_over_thirty_two_devices(invoicing_service: RunningService, emulator: Any) -> None:
    devices = [new_model_device(invoicing_service, emulator) for _ in range(32)]
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client_run(index: int) -> None:
        with invoicing_service.client() as client:
            for n in range(8):
                device_id = devices[(index + n * 5) % 32]
                response = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
                assert response.status_code == 201, response.text
                with lock:
                    answers.append(response.json())

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(client_run, range(32)))

    for device_id in devices:
        own = sorted((a for a in answers if a["deviceId"] == device_id), key=lambda a: a["icv"])
        assert [a["icv"] for a in own] == list(range(1, len(own) + 1)), device_id
        previous = INITIAL_PIH
        for answer in own:
            assert answer["previousInvoiceHash"] == previous
            previous = answer["invoiceHash"]
    assert len(answers) == 256
