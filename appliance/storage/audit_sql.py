"""SQL for the `audit_log` table. Blocking functions, run in a worker thread by `Database`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from appliance.storage.audit import (
    GENESIS_HASH,
    MAX_DETAIL_LENGTH,
    AuditEvent,
    AuditNote,
    AuditRecord,
    record_hash,
)
from appliance.storage.audit_verify import StoredRow
from appliance.storage.sql import timestamp_text, transaction

_COLUMNS = "seq, time, actor, device_id, event, outcome, detail, prev_hash, hash"


def _storable(text: str) -> str:
    # A lone surrogate (from a mis-decoded header or error text) can be neither stored nor hashed.
    return text.encode("utf-8", "replace").decode("utf-8")


def _short_detail(detail: str) -> str:
    # Truncated, not refused: a long error message must never cost the record of the event.
    if len(detail) <= MAX_DETAIL_LENGTH:
        return detail
    return detail[: MAX_DETAIL_LENGTH - 1] + "…"


def append(
    connection: sqlite3.Connection,
    *,
    clock: Callable[[], datetime],
    actor: str,
    event: AuditEvent,
    outcome: str,
    device_id: str | None,
    detail: str,
) -> AuditRecord:
    """Chain one record onto the head.

    Runs inside the write transaction `Database.write` holds (with the change it records, if
    any): the head is read under the write lock, so no other writer (thread or process) can
    append between the read and the insert. The time is taken under the lock too, which keeps
    times in `seq` order whenever the clock is.
    """
    if not actor or not outcome:
        raise ValueError("an audit record needs an actor and an outcome")
    actor = _storable(actor)
    device_id = None if device_id is None else _storable(device_id)
    outcome = _storable(outcome)
    detail = _short_detail(_storable(detail))
    if not connection.in_transaction:
        raise ValueError("an audit record must be appended inside a write transaction, or the chain can fork")
    head_row = connection.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS_HASH) if head_row is None else (head_row["seq"] + 1, head_row["hash"])
    time = timestamp_text(clock())
    payload = (time, actor, device_id, str(event), outcome, detail)
    chained = record_hash(seq, payload, prev_hash)
    connection.execute(
        f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (seq, *payload, prev_hash, chained),
    )
    return AuditRecord(
        seq=seq,
        time=datetime.fromisoformat(time),
        actor=actor,
        device_id=device_id,
        event=str(event),
        outcome=outcome,
        detail=detail,
        prev_hash=prev_hash,
        hash=chained,
    )


def append_notes(
    connection: sqlite3.Connection, clock: Callable[[], datetime], notes: Sequence[AuditNote]
) -> None:
    """Chain `notes` in order, inside the caller's write transaction (see `append`)."""
    for note in notes:
        append(
            connection,
            clock=clock,
            actor=note.actor,
            event=note.event,
            outcome=note.outcome,
            device_id=note.device_id,
            detail=note.detail,
        )


def _record(row: sqlite3.Row) -> AuditRecord:
    return msgspec.convert(dict(row), AuditRecord)


def records(connection: sqlite3.Connection, *, device_id: str | None, limit: int | None) -> list[AuditRecord]:
    # LIMIT -1 is SQLite's "no limit"; newest first so LIMIT keeps the latest, then reversed.
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM audit_log"  # noqa: S608
        " WHERE (:device_id IS NULL OR device_id = :device_id) ORDER BY seq DESC LIMIT :limit",
        {"device_id": device_id, "limit": -1 if limit is None else limit},
    ).fetchall()
    return [_record(row) for row in reversed(rows)]


def stored_rows(connection: sqlite3.Connection) -> list[StoredRow]:
    """Every row as stored, types unchecked: verification judges what is there."""
    with transaction(connection, write=False):
        rows = connection.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq").fetchall()  # noqa: S608
    return [StoredRow.from_values(tuple(row)) for row in rows]


def head(connection: sqlite3.Connection) -> AuditRecord | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"  # noqa: S608
    ).fetchone()
    return None if row is None else _record(row)


def find_by_hash(connection: sqlite3.Connection, record_hash_hex: str) -> AuditRecord | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM audit_log WHERE hash = ? ORDER BY seq LIMIT 1",  # noqa: S608
        (record_hash_hex,),
    ).fetchone()
    return None if row is None else _record(row)
