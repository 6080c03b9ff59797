"""SQL for `invoices`, `invoice_chain_heads`, `invoice_outbox` and `device_sellers`.

Blocking functions, run in a worker thread by `Database` (writes inside the transaction
`Database.write` holds, so the reads they make are under the write lock).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from appliance.errors import NotFound
from appliance.storage import webhooks_sql
from appliance.storage.invoices_models import (
    AppendOutcome,
    ChainHead,
    ChainMoved,
    DeliveryResult,
    InvoiceConflict,
    InvoicePage,
    InvoiceRecord,
    InvoiceStatus,
    NewInvoice,
    StoredMessage,
)
from appliance.storage.sql import timestamp_from_text, timestamp_text, transaction

_MESSAGES = msgspec.json.Decoder(tuple[StoredMessage, ...])
_INVOICE_COLUMNS = (
    "seq, invoice_id, device_id, position, icv, uuid, invoice_number, invoice_hash, pih, kind, simplified,"
    " signed_xml, qr, body_digest, source, status, http_status, info_messages, warning_messages,"
    " error_messages, cleared_xml, attempts, created_at, updated_at, delivered_at"
)


def _messages_text(messages: tuple[StoredMessage, ...]) -> str:
    return msgspec.json.encode(messages).decode("utf-8")


def _record(row: sqlite3.Row) -> InvoiceRecord:
    created_at = timestamp_from_text(row["created_at"])
    updated_at = timestamp_from_text(row["updated_at"])
    assert created_at is not None and updated_at is not None  # NOT NULL columns
    return InvoiceRecord(
        seq=row["seq"],
        invoice_id=row["invoice_id"],
        device_id=row["device_id"],
        position=row["position"],
        icv=row["icv"],
        uuid=row["uuid"],
        invoice_number=row["invoice_number"],
        invoice_hash=row["invoice_hash"],
        pih=row["pih"],
        kind=row["kind"],
        simplified=bool(row["simplified"]),
        signed_xml=bytes(row["signed_xml"]),
        qr=row["qr"],
        body_digest=row["body_digest"],
        source=row["source"],
        status=InvoiceStatus(row["status"]),
        http_status=row["http_status"],
        info_messages=_MESSAGES.decode(row["info_messages"]),
        warning_messages=_MESSAGES.decode(row["warning_messages"]),
        error_messages=_MESSAGES.decode(row["error_messages"]),
        cleared_xml=None if row["cleared_xml"] is None else bytes(row["cleared_xml"]),
        attempts=row["attempts"],
        created_at=created_at,
        updated_at=updated_at,
        delivered_at=timestamp_from_text(row["delivered_at"]),
    )


def _one(connection: sqlite3.Connection, where: str, parameters: tuple[Any, ...]) -> InvoiceRecord | None:
    row = connection.execute(
        f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE {where}",  # noqa: S608 - fixed text, bound values
        parameters,
    ).fetchone()
    return None if row is None else _record(row)


def head(connection: sqlite3.Connection, device_id: str, initial_hash: str) -> ChainHead:
    row = connection.execute(
        "SELECT position, icv, invoice_hash FROM invoice_chain_heads WHERE device_id = ?", (device_id,)
    ).fetchone()
    if row is None:
        return ChainHead(0, 0, initial_hash)
    return ChainHead(row["position"], row["icv"], row["invoice_hash"])


def _existing(connection: sqlite3.Connection, new: NewInvoice) -> InvoiceRecord | None:
    stored = _one(connection, "device_id = ? AND uuid = ?", (new.device_id, new.uuid))
    if stored is None:
        return None
    if stored.body_digest != new.body_digest:
        raise InvoiceConflict(
            f"invoice {stored.invoice_id} (ICV {stored.icv}, number {stored.invoice_number}) already has"
            f" Uuid {new.uuid} on device {new.device_id} with a different body; send a new Uuid",
            stored.invoice_id,
        )
    return stored


def append(
    connection: sqlite3.Connection, new: NewInvoice, expected_position: int, now: datetime
) -> AppendOutcome:
    stored = _existing(connection, new)
    if stored is not None:
        return AppendOutcome(stored, created=False)
    current = connection.execute(
        "SELECT position FROM invoice_chain_heads WHERE device_id = ?", (new.device_id,)
    ).fetchone()
    position = 0 if current is None else current["position"]
    if position != expected_position:
        raise ChainMoved(
            f"device {new.device_id}: chain head is at {position}, expected {expected_position};"
            " nothing stored"
        )
    position += 1
    created = timestamp_text(now)
    cursor = connection.execute(
        "INSERT INTO invoices (invoice_id, device_id, position, icv, uuid, invoice_number, invoice_hash,"
        " pih, kind, simplified, signed_xml, qr, body_digest, source, status, http_status, info_messages,"
        " warning_messages, error_messages, cleared_xml, attempts, created_at, updated_at, delivered_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " 'Pending', NULL, '[]', ?, '[]', NULL, 0, ?, ?, NULL)",
        (
            new.invoice_id,
            new.device_id,
            position,
            new.icv,
            new.uuid,
            new.invoice_number,
            new.invoice_hash,
            new.pih,
            new.kind,
            int(new.simplified),
            new.signed_xml,
            new.qr,
            new.body_digest,
            new.source,
            _messages_text(new.warnings),
            created,
            created,
        ),
    )
    seq = cursor.lastrowid
    connection.execute(
        "INSERT INTO invoice_chain_heads (device_id, position, icv, invoice_hash, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET position = excluded.position,"
        " icv = excluded.icv, invoice_hash = excluded.invoice_hash, updated_at = excluded.updated_at",
        (new.device_id, position, new.icv, new.invoice_hash, created),
    )
    connection.execute(
        "INSERT INTO invoice_outbox (invoice_seq, device_id, enqueued_at, next_attempt_at, attempts)"
        " VALUES (?, ?, ?, ?, 0)",
        (seq, new.device_id, created, created),
    )
    # Built from what was just inserted rather than read back: the row holds exactly these values.
    stored_at = timestamp_from_text(created)
    assert seq is not None and stored_at is not None
    record = InvoiceRecord(
        seq=seq,
        invoice_id=new.invoice_id,
        device_id=new.device_id,
        position=position,
        icv=new.icv,
        uuid=new.uuid,
        invoice_number=new.invoice_number,
        invoice_hash=new.invoice_hash,
        pih=new.pih,
        kind=new.kind,
        simplified=new.simplified,
        signed_xml=new.signed_xml,
        qr=new.qr,
        body_digest=new.body_digest,
        source=new.source,
        status=InvoiceStatus.PENDING,
        http_status=None,
        info_messages=(),
        warning_messages=new.warnings,
        error_messages=(),
        cleared_xml=None,
        attempts=0,
        created_at=stored_at,
        updated_at=stored_at,
        delivered_at=None,
    )
    return AppendOutcome(record, created=True)


def get(connection: sqlite3.Connection, invoice_id: str) -> InvoiceRecord:
    record = _one(connection, "invoice_id = ?", (invoice_id,))
    if record is None:
        raise NotFound(f"no invoice {invoice_id}")
    return record


def get_by_seq(connection: sqlite3.Connection, seq: int) -> InvoiceRecord:
    record = _one(connection, "seq = ?", (seq,))
    if record is None:
        raise NotFound(f"no invoice with seq {seq}")
    return record


def page(
    connection: sqlite3.Connection, device_id: str, status: InvoiceStatus | None, offset: int, limit: int
) -> InvoicePage:
    filters = {"device_id": device_id, "status": None if status is None else status.value}
    matching = "device_id = :device_id AND (:status IS NULL OR status = :status)"
    with transaction(connection, write=False):
        (total,) = connection.execute(
            f"SELECT count(*) FROM invoices WHERE {matching}",  # noqa: S608
            filters,
        ).fetchone()
        rows = connection.execute(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE {matching}"  # noqa: S608
            " ORDER BY position DESC LIMIT :limit OFFSET :offset",
            {**filters, "limit": limit, "offset": offset},
        ).fetchall()
    return InvoicePage(items=[_record(row) for row in rows], total=total, offset=offset, limit=limit)


def chain(
    connection: sqlite3.Connection, device_id: str, after_position: int, limit: int
) -> list[InvoiceRecord]:
    rows = connection.execute(
        f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE device_id = ? AND position > ?"  # noqa: S608
        " ORDER BY position LIMIT ?",
        (device_id, after_position, limit),
    ).fetchall()
    return [_record(row) for row in rows]


def record_delivery_of(
    connection: sqlite3.Connection,
    current: InvoiceRecord,
    result: DeliveryResult,
    now: datetime,
    notify: bool = False,
) -> InvoiceRecord:
    """ZATCA's verdict on an invoice the caller holds: no read of the row (the document is the bulk
    of it); only the attempt count, which retries change, comes back from the update."""
    stamp = timestamp_text(now)
    # The appliance's own warnings (stored at append) stay in front of ZATCA's.
    own_warnings = tuple(message for message in current.warning_messages if message.category == "Appliance")
    warnings = own_warnings + result.warning_messages
    row = connection.execute(
        "UPDATE invoices SET status = ?, http_status = ?, info_messages = ?, warning_messages = ?,"
        " error_messages = ?, cleared_xml = ?, attempts = attempts + 1, updated_at = ?, delivered_at = ?"
        " WHERE seq = ? RETURNING attempts",
        (
            result.status.value,
            result.http_status,
            _messages_text(result.info_messages),
            _messages_text(warnings),
            _messages_text(result.error_messages),
            result.cleared_xml,
            stamp,
            stamp,
            current.seq,
        ),
    ).fetchone()
    if row is None:
        raise NotFound(f"no invoice with seq {current.seq}")
    connection.execute("DELETE FROM invoice_outbox WHERE invoice_seq = ?", (current.seq,))
    stored_at = timestamp_from_text(stamp)
    assert stored_at is not None
    record = msgspec.structs.replace(
        current,
        status=result.status,
        http_status=result.http_status,
        info_messages=result.info_messages,
        warning_messages=warnings,
        error_messages=result.error_messages,
        cleared_xml=result.cleared_xml,
        attempts=int(row["attempts"]),
        updated_at=stored_at,
        delivered_at=stored_at,
    )
    if notify and record.status is not current.status:
        webhooks_sql.enqueue(connection, record, current.status.value, now)
    return record


def pending_of_device(connection: sqlite3.Connection, device_id: str) -> list[tuple[int, datetime]]:
    """A device's outbox entries in chain order (seq), each with when it may next be attempted."""
    rows = connection.execute(
        "SELECT invoice_seq, next_attempt_at FROM invoice_outbox WHERE device_id = ? ORDER BY invoice_seq",
        (device_id,),
    ).fetchall()
    entries = []
    for row in rows:
        next_attempt_at = timestamp_from_text(row["next_attempt_at"])
        assert next_attempt_at is not None  # NOT NULL column
        entries.append((int(row["invoice_seq"]), next_attempt_at))
    return entries


def undelivered_count(connection: sqlite3.Connection, device_id: str) -> int:
    row = connection.execute(
        "SELECT count(*) AS waiting FROM invoice_outbox WHERE device_id = ?", (device_id,)
    ).fetchone()
    return int(row["waiting"])


def devices_waiting(connection: sqlite3.Connection, limit: int) -> list[str]:
    """Devices with entries in the outbox, the one with the oldest entry first."""
    rows = connection.execute(
        "SELECT device_id FROM invoice_outbox GROUP BY device_id ORDER BY min(invoice_seq) LIMIT ?", (limit,)
    ).fetchall()
    return [str(row["device_id"]) for row in rows]


def record_retry(connection: sqlite3.Connection, seq: int, error: str, next_attempt_at: datetime) -> None:
    connection.execute(
        "UPDATE invoice_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
        " WHERE invoice_seq = ?",
        (error[:500], timestamp_text(next_attempt_at), seq),
    )
    connection.execute("UPDATE invoices SET attempts = attempts + 1 WHERE seq = ?", (seq,))


def outbox_stats(connection: sqlite3.Connection) -> tuple[int, datetime | None]:
    row = connection.execute(
        "SELECT count(*) AS depth, min(enqueued_at) AS oldest FROM invoice_outbox"
    ).fetchone()
    return int(row["depth"]), timestamp_from_text(row["oldest"])


def put_seller(connection: sqlite3.Connection, device_id: str, seller_json: bytes, now: datetime) -> None:
    connection.execute(
        "INSERT INTO device_sellers (device_id, seller_json, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET seller_json = excluded.seller_json,"
        " updated_at = excluded.updated_at",
        (device_id, seller_json.decode("utf-8"), timestamp_text(now)),
    )


def seller(connection: sqlite3.Connection, device_id: str) -> bytes | None:
    row = connection.execute(
        "SELECT seller_json FROM device_sellers WHERE device_id = ?", (device_id,)
    ).fetchone()
    return None if row is None else str(row["seller_json"]).encode("utf-8")
