"""Webhooks: each invoice status change POSTed to a real receiver on 127.0.0.1, signed with HMAC.

The receiver (a small HTTP server in this test) checks every signature with the shared secret.
It first refuses (503), then goes away entirely (connection refused) while an invoice is
delivered, and the service is killed with SIGKILL before it could tell anyone: after the restart
and the receiver's return, the stored event still arrives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from appliance.config import InvoicingSettings, WebhookSettings
from tests.fixtures.service import RunningService, free_port, prepare_service, write_config
from tests.fixtures.softhsm import create_token
from tests.integration.test_invoicing_api import new_model_device
from tests.reliability.support import wait_until
from tests.support.invoice_models import model

SECRET = b"webhook-test-secret-0123456789abcdef"
FINAL = {"Reported", "ReportedWithWarnings", "Cleared", "ClearedWithWarnings", "Rejected"}


class Receiver:
    """A webhook receiver: verifies each request's HMAC, refuses the first `refuse` with 503."""

    def __init__(self, port: int, refuse: int = 0) -> None:
        self.port = port
        self.refuse = refuse
        self.events: list[dict[str, Any]] = []
        self.refused = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Appliance-Timestamp"]
                expected = (
                    "sha256=" + hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
                )
                status = receiver.take(body, self.headers["X-Appliance-Signature"] == expected)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def take(self, body: bytes, signed: bool) -> int:
        with self._lock:
            if not signed:
                self.bad_signatures += 1
                return 401
            if self.refused < self.refuse:
                self.refused += 1
                return 503
            self.events.append(json.loads(body))
            return 204

    def final_status(self, invoice_id: str) -> str | None:
        with self._lock:
            statuses = [e["status"] for e in self.events if e["invoiceId"] == invoice_id]
        return statuses[-1] if statuses else None

    def delivered(self, invoice_id: str) -> bool:
        return self.final_status(invoice_id) in FINAL

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def webhook_service(emulator: Any, tmp_path: Path) -> Iterator[tuple[RunningService, int]]:
    port = free_port()
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    # Its own token: a second service on the session's token would reconcile the other's keys away.
    token = create_token(tmp_path / "token", "zatca-webhooks")
    running = prepare_service(token, emulator, tmp_path / "home")
    running.config = msgspec.structs.replace(
        running.config,
        invoicing=InvoicingSettings(outbox_poll_seconds=0.2, retry_base_seconds=0.2, retry_max_seconds=1.0),
        webhooks=WebhookSettings(
            url=f"http://127.0.0.1:{port}/hooks/zatca",
            secret_file=str(secret_file),
            timeout_seconds=2.0,
            retry_base_seconds=0.1,
            retry_max_seconds=0.5,
        ),
    )
    write_config(running.config_path, running.config)
    running.start()
    yield running, port
    if running.process is not None:
        running.stop()


def waiting_events(service: RunningService) -> int:
    with sqlite3.connect(f"file:{service.registry_path}?mode=ro", uri=True) as connection:
        (count,) = connection.execute("SELECT count(*) FROM webhook_outbox").fetchone()
    return int(count)


def test_status_changes_signed_retried_and_kept_across_kill_nine(
    webhook_service: tuple[RunningService, int], emulator: Any
) -> None:
    service, port = webhook_service
    receiver = Receiver(port, refuse=2)
    try:
        device_id = new_model_device(service, emulator)
        with service.client() as client:
            simplified = client.post(f"/v1/Devices/{device_id}/Invoices", json=model()).json()
            standard = client.post(
                f"/v1/Devices/{device_id}/Invoices", json=model(invoice_type="Standard")
            ).json()
        assert standard["status"] in ("Cleared", "ClearedWithWarnings"), standard
        for invoice_id in (simplified["invoiceId"], standard["invoiceId"]):
            wait_until(partial(receiver.delivered, invoice_id), f"the webhook event of {invoice_id}")
        assert receiver.refused == 2 and receiver.bad_signatures == 0
        event = next(e for e in receiver.events if e["invoiceId"] == simplified["invoiceId"])
        assert event["event"] == "invoice.status" and event["previousStatus"] == "Pending"
        assert event["deviceId"] == device_id and event["icv"] == 1
        assert event["invoiceHash"] == simplified["invoiceHash"] and event["uuid"] == simplified["uuid"]
    finally:
        receiver.close()

    # Receiver gone (connection refused): invoicing is not held up, the event waits in the registry.
    with service.client() as client:
        third = client.post(f"/v1/Devices/{device_id}/Invoices", json=model())
        assert third.status_code == 201, third.text
        invoice_id = third.json()["invoiceId"]
        wait_until(
            lambda: client.get(f"/v1/Invoices/{invoice_id}").json()["status"] in FINAL,
            "the third invoice reported to ZATCA",
        )
    wait_until(lambda: waiting_events(service) == 1, "the event stored for the absent receiver")
    assert service.process is not None
    os.kill(service.process.pid, signal.SIGKILL)
    service.process.wait(timeout=30)
    service.process = None

    back = Receiver(port)
    try:
        service.start()
        wait_until(lambda: back.final_status(invoice_id) in FINAL, "the stored event after the restart")
        assert back.bad_signatures == 0
        assert [e["invoiceId"] for e in back.events] == [invoice_id]
        wait_until(lambda: waiting_events(service) == 0, "the webhook outbox to empty")
    finally:
        back.close()
