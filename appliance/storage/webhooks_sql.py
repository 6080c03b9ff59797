"""SQL for `webhook_outbox`: status-change events waiting for the webhook receiver.

Blocking functions, run in a worker thread by `Database`; `enqueue` runs inside the invoice
store's write transaction, so an event exists exactly when its status change does.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime

import msgspec

from appliance.storage.invoices_models import InvoiceRecord
from appliance.storage.sql import timestamp_from_text, timestamp_text
from appliance.storage.webhooks_models import WebhookEvent, WebhookPayload


def enqueue(connection: sqlite3.Connection, record: InvoiceRecord, previous: str, now: datetime) -> None:
    event_id = str(uuid.uuid4())
    stamp = timestamp_text(now)
    payload = WebhookPayload(
        event="invoice.status",
        eventId=event_id,
        invoiceId=record.invoice_id,
        deviceId=record.device_id,
        uuid=record.uuid,
        invoiceNumber=record.invoice_number,
        icv=record.icv,
        invoiceHash=record.invoice_hash,
        previousStatus=previous,
        status=record.status.value,
        httpStatus=record.http_status,
        occurredAt=stamp,
    )
    connection.execute(
        "INSERT INTO webhook_outbox (event_id, invoice_id, payload, enqueued_at, next_attempt_at, attempts)"
        " VALUES (?, ?, ?, ?, ?, 0)",
        (event_id, record.invoice_id, msgspec.json.encode(payload), stamp, stamp),
    )


def due(connection: sqlite3.Connection, now: datetime, limit: int) -> list[WebhookEvent]:
    rows = connection.execute(
        "SELECT seq, event_id, payload, attempts, enqueued_at FROM webhook_outbox"
        " WHERE next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
        (timestamp_text(now), limit),
    ).fetchall()
    events = []
    for row in rows:
        enqueued_at = timestamp_from_text(row["enqueued_at"])
        assert enqueued_at is not None  # NOT NULL column
        events.append(
            WebhookEvent(row["seq"], row["event_id"], bytes(row["payload"]), row["attempts"], enqueued_at)
        )
    return events


def delivered(connection: sqlite3.Connection, seq: int) -> None:
    connection.execute("DELETE FROM webhook_outbox WHERE seq = ?", (seq,))


def retry(connection: sqlite3.Connection, seq: int, error: str, next_attempt_at: datetime) -> None:
    connection.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
        " WHERE seq = ?",
        (error[:500], timestamp_text(next_attempt_at), seq),
    )


def depth(connection: sqlite3.Connection) -> int:
    (count,) = connection.execute("SELECT count(*) FROM webhook_outbox").fetchone()
    return int(count)
