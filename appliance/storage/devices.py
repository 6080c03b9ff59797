"""SQL for the `devices` table. Blocking functions, run in a worker thread by `Database`
(writes inside the transaction `Database.write` holds).

Column names equal `DeviceRecord` field names, so a row converts to a record in one call.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from appliance.domain import DeviceStatus, Environment
from appliance.errors import Conflict, DeviceStateConflict, NotFound
from appliance.storage.models import ActivationData, DevicePage, DeviceRecord, is_certificate_serial_text
from appliance.storage.sql import timestamp_text, transaction

_COLUMNS = DeviceRecord.__struct_fields__
# Built from the Struct's field names, never from input; values are bound parameters.
_INSERT = (
    f"INSERT INTO devices ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(':' + column for column in _COLUMNS)})"
)
_MATCHING = "(:status IS NULL OR status = :status) AND (:environment IS NULL OR environment = :environment)"
# Newest first; `seq` (insertion order) breaks ties so pages never overlap or skip.
_PAGE = (
    f"SELECT * FROM devices WHERE {_MATCHING}"  # noqa: S608
    " ORDER BY created_at DESC, seq DESC LIMIT :limit OFFSET :offset"
)
_COUNT = f"SELECT count(*) FROM devices WHERE {_MATCHING}"  # noqa: S608


def _parameters(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: timestamp_text(value) if isinstance(value, datetime) else value
        for name, value in values.items()
    }


def _record(row: sqlite3.Row) -> DeviceRecord:
    values = dict(row)
    del values["seq"]
    return msgspec.convert(values, DeviceRecord)


def _fetch(connection: sqlite3.Connection, device_id: str) -> DeviceRecord | None:
    row = connection.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    return None if row is None else _record(row)


def insert_pending(connection: sqlite3.Connection, record: DeviceRecord) -> None:
    if record.status is not DeviceStatus.PENDING:
        raise ValueError(f"a new device must be pending, not {record.status}")
    parameters = _parameters(msgspec.to_builtins(record, builtin_types=(datetime, bytes)))
    try:
        connection.execute(_INSERT, parameters)
    except sqlite3.IntegrityError as exc:
        conflict = _conflict_behind(connection, record)
        if conflict is None:
            # A CHECK constraint: the record itself is inconsistent (Database wraps it).
            raise
        raise conflict from exc


def _conflict_behind(connection: sqlite3.Connection, record: DeviceRecord) -> Conflict | None:
    """Name the row that blocked an insert; runs inside the refused insert's transaction."""
    live = connection.execute(
        "SELECT device_id, status FROM devices WHERE environment = ? AND vat = ? AND egs_serial = ?"
        " AND status IN ('pending', 'active')",
        (record.environment.value, record.vat, record.egs_serial),
    ).fetchone()
    if live is not None:
        return Conflict(
            f"EGS unit {record.egs_serial} of VAT {record.vat} in {record.environment.value} is already "
            f"{live['status']} as device {live['device_id']}",
            live["device_id"],
        )
    if _fetch(connection, record.device_id) is not None:
        return Conflict(f"device id {record.device_id} is already taken", record.device_id)
    return None


def _leave_pending(
    connection: sqlite3.Connection,
    device_id: str,
    target: DeviceStatus,
    assignments: str,
    values: dict[str, Any],
) -> DeviceRecord:
    parameters = _parameters({**values, "device_id": device_id, "status": target.value})
    updated = connection.execute(
        f"UPDATE devices SET status = :status, {assignments}"  # noqa: S608
        " WHERE device_id = :device_id AND status = 'pending'",
        parameters,
    ).rowcount
    if updated == 0:
        current = _fetch(connection, device_id)
        if current is None:
            raise NotFound(f"no device {device_id}")
        raise DeviceStateConflict(device_id, current.status.value, target.value)
    record = _fetch(connection, device_id)
    assert record is not None  # the row was updated inside this transaction
    return record


def activate(
    connection: sqlite3.Connection, device_id: str, data: ActivationData, updated_at: datetime
) -> DeviceRecord:
    if not is_certificate_serial_text(data.certificate_serial):
        raise ValueError("certificate_serial must be lowercase hex text (see certificate_serial_text)")
    values = msgspec.to_builtins(data, builtin_types=(datetime, bytes))
    return _leave_pending(
        connection,
        device_id,
        DeviceStatus.ACTIVE,
        "csr_pem = :csr_pem, request_id = :request_id, binary_security_token = :binary_security_token,"
        " secret_ciphertext = :secret_ciphertext, certificate_serial = :certificate_serial,"
        " certificate_not_before = :certificate_not_before,"
        " certificate_not_after = :certificate_not_after, updated_at = :updated_at",
        {**values, "updated_at": updated_at},
    )


def fail(
    connection: sqlite3.Connection, device_id: str, code: str, message: str, updated_at: datetime
) -> DeviceRecord:
    return _leave_pending(
        connection,
        device_id,
        DeviceStatus.FAILED,
        "failure_code = :failure_code, failure_message = :failure_message, updated_at = :updated_at",
        {"failure_code": code, "failure_message": message, "updated_at": updated_at},
    )


def get(connection: sqlite3.Connection, device_id: str) -> DeviceRecord:
    record = _fetch(connection, device_id)
    if record is None:
        raise NotFound(f"no device {device_id}")
    return record


def page(
    connection: sqlite3.Connection,
    offset: int,
    limit: int,
    status: DeviceStatus | None,
    environment: Environment | None,
) -> DevicePage:
    filters = {
        "status": None if status is None else status.value,
        "environment": None if environment is None else environment.value,
    }
    # One read transaction, so `total` and `items` describe the same moment.
    with transaction(connection, write=False):
        (total,) = connection.execute(_COUNT, filters).fetchone()
        rows = connection.execute(_PAGE, {**filters, "limit": limit, "offset": offset}).fetchall()
    return DevicePage(items=[_record(row) for row in rows], total=total, offset=offset, limit=limit)


def with_status(connection: sqlite3.Connection, status: DeviceStatus) -> list[DeviceRecord]:
    rows = connection.execute(
        "SELECT * FROM devices WHERE status = ? ORDER BY created_at, seq", (status.value,)
    ).fetchall()
    return [_record(row) for row in rows]


def count_by_status(connection: sqlite3.Connection) -> dict[DeviceStatus, int]:
    counts = dict.fromkeys(DeviceStatus, 0)
    for status, count in connection.execute("SELECT status, count(*) FROM devices GROUP BY status"):
        counts[DeviceStatus(status)] = count
    return counts
