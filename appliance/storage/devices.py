"""SQL for the `devices` table. Blocking functions, run in a worker thread by `Database`
(writes inside the transaction `Database.write` holds).

Column names equal `DeviceRecord` field names, so a row converts to a record in one call.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from appliance.domain import DeviceStatus, Environment
from appliance.errors import Conflict, DeviceStateConflict, NotFound, RateLimited
from appliance.storage.models import ActivationData, DevicePage, DeviceRecord, is_certificate_serial_text
from appliance.storage.sql import timestamp_text, transaction

_COLUMNS = DeviceRecord.__struct_fields__
# Built from the Struct's field names, never from input; values are bound parameters.
_INSERT = (
    f"INSERT INTO devices ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(':' + column for column in _COLUMNS)})"
)
_MATCHING = "(:status IS NULL OR status = :status) AND (:environment IS NULL OR environment = :environment)"
# Every status but these holds (or is getting) a key and the unit's identity.
_LIVE = "status NOT IN ('failed', 'retired')"


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


@dataclass(frozen=True, slots=True)
class RegistrationQuota:
    """At most `limit` registrations by `created_by` since `since` (checked in the insert's transaction)."""

    limit: int
    since: datetime
    retry_after_seconds: int


def insert_pending(
    connection: sqlite3.Connection, record: DeviceRecord, quota: RegistrationQuota | None = None
) -> None:
    if record.status is not DeviceStatus.PENDING:
        raise ValueError(f"a new device must be pending, not {record.status}")
    if quota is not None:
        _check_quota(connection, record, quota)
    # The unit's identity is its final SN (`1-…|2-…|3-…`): `DUPX-1` and its full form are one
    # unit. Read and insert share this write transaction, so no other writer comes between.
    same_unit = connection.execute(
        f"SELECT device_id, status FROM devices WHERE environment = ? AND vat = ? AND serial_number = ?"  # noqa: S608
        f" AND {_LIVE}",
        (record.environment.value, record.vat, record.serial_number),
    ).fetchone()
    if same_unit is not None:
        raise _live_conflict(record, same_unit)
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
        f"SELECT device_id, status FROM devices WHERE environment = ? AND vat = ? AND egs_serial = ?"  # noqa: S608
        f" AND {_LIVE}",
        (record.environment.value, record.vat, record.egs_serial),
    ).fetchone()
    if live is not None:
        return _live_conflict(record, live)
    if _fetch(connection, record.device_id) is not None:
        return Conflict(f"device id {record.device_id} is already taken", record.device_id)
    return None


def _live_conflict(record: DeviceRecord, live: sqlite3.Row) -> Conflict:
    return Conflict(
        f"EGS unit {record.egs_serial} (SN {record.serial_number}) of VAT {record.vat} in "
        f"{record.environment.value} is already {live['status']} as device {live['device_id']}",
        live["device_id"],
    )


def _check_quota(connection: sqlite3.Connection, record: DeviceRecord, quota: RegistrationQuota) -> None:
    (recent,) = connection.execute(
        "SELECT count(*) FROM devices WHERE created_by = ? AND created_at >= ?",
        (record.created_by, timestamp_text(quota.since)),
    ).fetchone()
    if recent >= quota.limit:
        raise RateLimited(
            f"this API key may register {quota.limit} devices per hour and has used them; "
            f"try again in {quota.retry_after_seconds} s",
            quota.retry_after_seconds,
        )


def retire(
    connection: sqlite3.Connection, device_id: str, retired_by: str, retired_at: datetime
) -> DeviceRecord:
    """active -> retired. Pending and onboarding devices are in flight, failed ones hold nothing."""
    updated = connection.execute(
        "UPDATE devices SET status = 'retired', retired_at = ?, retired_by = ?, updated_at = ?"
        " WHERE device_id = ? AND status = 'active' AND renewal_key_id_hex IS NULL",
        (timestamp_text(retired_at), retired_by, timestamp_text(retired_at), device_id),
    ).rowcount
    record = _fetch(connection, device_id)
    if record is None:
        raise NotFound(f"no device {device_id}")
    if updated == 0 and record.status is DeviceStatus.ACTIVE:
        raise Conflict(f"device {device_id} is renewing its certificate; retire it once that ends", device_id)
    if updated == 0:
        raise DeviceStateConflict(device_id, record.status.value, DeviceStatus.RETIRED.value)
    return record


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
    *,
    vats: frozenset[str] | None = None,
) -> DevicePage:
    """`vats` None: every VAT; otherwise only devices of these VATs (an API key's scope)."""
    filters: dict[str, Any] = {
        "status": None if status is None else status.value,
        "environment": None if environment is None else environment.value,
    }
    matching = _MATCHING
    if vats is not None:
        # Placeholder names are generated here; the VATs themselves are bound parameters.
        names = [f"vat{index}" for index in range(len(vats))]
        matching += f" AND vat IN ({', '.join(':' + name for name in names) or 'NULL'})"
        filters |= dict(zip(names, sorted(vats), strict=True))
    count = f"SELECT count(*) FROM devices WHERE {matching}"  # noqa: S608
    # Newest first; `seq` (insertion order) breaks ties so pages never overlap or skip.
    select = (
        f"SELECT * FROM devices WHERE {matching}"  # noqa: S608
        " ORDER BY created_at DESC, seq DESC LIMIT :limit OFFSET :offset"
    )
    # One read transaction, so `total` and `items` describe the same moment.
    with transaction(connection, write=False):
        (total,) = connection.execute(count, filters).fetchone()
        rows = connection.execute(select, {**filters, "limit": limit, "offset": offset}).fetchall()
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
