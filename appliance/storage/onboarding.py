"""SQL for onboarding and renewal: the steps between `pending` and `active`, the compliance
documents' verdicts, the renewal in flight, and certificate expiry. Blocking functions, run by
`Database` inside the transaction `Database.write` holds.

Each step is one conditional UPDATE (`WHERE status IN (...)`), so a step that another writer
(reconciliation) already resolved fails with `DeviceStateConflict` instead of undoing it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec

from appliance.domain import DeviceStatus, Environment
from appliance.errors import Conflict, DeviceStateConflict
from appliance.storage.devices import get as get_device
from appliance.storage.models import (
    ActivationData,
    ComplianceCheckRecord,
    ComplianceCsidData,
    DeviceRecord,
    RenewalData,
    is_certificate_serial_text,
)
from appliance.storage.sql import timestamp_text

# Statuses a registration passes through before it ends active or failed.
IN_FLIGHT = (DeviceStatus.PENDING, DeviceStatus.COMPLIANCE, DeviceStatus.COMPLIANT)


def _parameters(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: timestamp_text(value) if isinstance(value, datetime) else value
        for name, value in values.items()
    }


def _advance(
    connection: sqlite3.Connection,
    device_id: str,
    allowed: tuple[DeviceStatus, ...],
    *,
    target: DeviceStatus,
    assignments: str,
    values: dict[str, Any],
) -> DeviceRecord:
    placeholders = ", ".join(f":from_{index}" for index in range(len(allowed)))
    parameters = _parameters(
        {
            **values,
            **{f"from_{index}": status.value for index, status in enumerate(allowed)},
            "device_id": device_id,
            "status": target.value,
        }
    )
    updated = connection.execute(
        f"UPDATE devices SET status = :status, {assignments}"  # noqa: S608 - constant fragments
        f" WHERE device_id = :device_id AND status IN ({placeholders})",
        parameters,
    ).rowcount
    if updated == 0:
        current = get_device(connection, device_id)  # NotFound if there is no such device
        raise DeviceStateConflict(device_id, current.status.value, target.value)
    return get_device(connection, device_id)


def _checked_serial(serial: str) -> None:
    if not is_certificate_serial_text(serial):
        raise ValueError("certificate serials must be lowercase hex text (see certificate_serial_text)")


def _compliance_values(data: ComplianceCsidData) -> dict[str, Any]:
    _checked_serial(data.certificate_serial)
    return {
        "compliance_request_id": data.request_id,
        "compliance_token": data.binary_security_token,
        "compliance_secret_ciphertext": data.secret_ciphertext,
        "compliance_certificate_serial": data.certificate_serial,
    }


_COMPLIANCE_ASSIGNMENTS = (
    "compliance_request_id = :compliance_request_id, compliance_token = :compliance_token,"
    " compliance_secret_ciphertext = :compliance_secret_ciphertext,"
    " compliance_certificate_serial = :compliance_certificate_serial"
)
_ACTIVATION_ASSIGNMENTS = (
    "csr_pem = :csr_pem, request_id = :request_id, binary_security_token = :binary_security_token,"
    " secret_ciphertext = :secret_ciphertext, certificate_serial = :certificate_serial,"
    " certificate_not_before = :certificate_not_before, certificate_not_after = :certificate_not_after,"
    " credential_kind = :credential_kind"
)


def _activation_values(data: ActivationData, kind: str) -> dict[str, Any]:
    _checked_serial(data.certificate_serial)
    values: dict[str, Any] = msgspec.to_builtins(data, builtin_types=(datetime, bytes))
    return {**values, "credential_kind": kind}


def store_compliance_csid(
    connection: sqlite3.Connection, device_id: str, data: ComplianceCsidData, updated_at: datetime
) -> DeviceRecord:
    """pending -> compliance: the compliance CSID is ours (secret sealed), the checks may start."""
    return _advance(
        connection,
        device_id,
        (DeviceStatus.PENDING,),
        target=DeviceStatus.COMPLIANCE,
        assignments=f"csr_pem = :csr_pem, {_COMPLIANCE_ASSIGNMENTS}, updated_at = :updated_at",
        values={**_compliance_values(data), "csr_pem": data.csr_pem, "updated_at": updated_at},
    )


def mark_compliant(connection: sqlite3.Connection, device_id: str, updated_at: datetime) -> DeviceRecord:
    """compliance -> compliant: every compliance document passed."""
    return _advance(
        connection,
        device_id,
        (DeviceStatus.COMPLIANCE,),
        target=DeviceStatus.COMPLIANT,
        assignments="updated_at = :updated_at",
        values={"updated_at": updated_at},
    )


def activate_production(
    connection: sqlite3.Connection, device_id: str, data: ActivationData, updated_at: datetime
) -> DeviceRecord:
    """compliant -> active with the production CSID."""
    return _advance(
        connection,
        device_id,
        (DeviceStatus.COMPLIANT,),
        target=DeviceStatus.ACTIVE,
        assignments=f"{_ACTIVATION_ASSIGNMENTS}, updated_at = :updated_at",
        values={**_activation_values(data, "production"), "updated_at": updated_at},
    )


def activate_compliance_only(
    connection: sqlite3.Connection, device_id: str, data: ActivationData, updated_at: datetime
) -> DeviceRecord:
    """pending -> active with the compliance CSID (`zatca.onboarding: compliance`)."""
    compliance = ComplianceCsidData(
        csr_pem=data.csr_pem,
        request_id=data.request_id,
        binary_security_token=data.binary_security_token,
        secret_ciphertext=data.secret_ciphertext,
        certificate_serial=data.certificate_serial,
    )
    return _advance(
        connection,
        device_id,
        (DeviceStatus.PENDING,),
        target=DeviceStatus.ACTIVE,
        assignments=f"{_ACTIVATION_ASSIGNMENTS}, {_COMPLIANCE_ASSIGNMENTS}, updated_at = :updated_at",
        values={
            **_activation_values(data, "compliance"),
            **_compliance_values(compliance),
            "updated_at": updated_at,
        },
    )


def fail_registration(
    connection: sqlite3.Connection, device_id: str, code: str, message: str, updated_at: datetime
) -> DeviceRecord:
    """pending, compliance or compliant -> failed."""
    return _advance(
        connection,
        device_id,
        IN_FLIGHT,
        target=DeviceStatus.FAILED,
        assignments=(
            "failure_code = :failure_code, failure_message = :failure_message, updated_at = :updated_at"
        ),
        values={"failure_code": code, "failure_message": message, "updated_at": updated_at},
    )


def record_compliance_checks(
    connection: sqlite3.Connection,
    checks: list[ComplianceCheckRecord],
    then_compliant: str | None,
    updated_at: datetime,
) -> None:
    """Keep the verdicts (one transaction, one fsync) and, with `then_compliant` (a device id),
    move that device from compliance to compliant in the same step."""
    for device_id in {check.device_id for check in checks}:
        get_device(connection, device_id)  # NotFound for an unknown device
    for check in checks:
        values = msgspec.to_builtins(check, builtin_types=(datetime,))
        values["messages"] = msgspec.json.encode(check.messages).decode()
        connection.execute(
            "INSERT INTO compliance_checks (device_id, compliance_request_id, kind, uuid, invoice_hash,"
            " http_status, status, messages, checked_at) VALUES (:device_id, :compliance_request_id, :kind,"
            " :uuid, :invoice_hash, :http_status, :status, :messages, :checked_at)",
            _parameters(values),
        )
    if then_compliant is not None:
        mark_compliant(connection, then_compliant, updated_at)


def compliance_checks(connection: sqlite3.Connection, device_id: str) -> list[ComplianceCheckRecord]:
    rows = connection.execute(
        "SELECT device_id, compliance_request_id, kind, uuid, invoice_hash, http_status, status, messages,"
        " checked_at FROM compliance_checks WHERE device_id = ? ORDER BY seq",
        (device_id,),
    ).fetchall()
    return [
        msgspec.convert(
            {**dict(row), "messages": msgspec.json.decode(row["messages"])}, ComplianceCheckRecord
        )
        for row in rows
    ]


# Renewal ------------------------------------------------------------------------------------------


def begin_renewal(
    connection: sqlite3.Connection, device_id: str, key_id_hex: str, key_label: str, started_at: datetime
) -> DeviceRecord:
    """Note the renewal's new key before it is generated; one renewal per device at a time."""
    updated = connection.execute(
        "UPDATE devices SET renewal_key_id_hex = ?, renewal_key_label = ?, renewal_started_at = ?"
        " WHERE device_id = ? AND status = 'active' AND renewal_key_id_hex IS NULL",
        (key_id_hex, key_label, timestamp_text(started_at), device_id),
    ).rowcount
    current = get_device(connection, device_id)
    if updated == 0:
        if current.status is not DeviceStatus.ACTIVE:
            raise DeviceStateConflict(device_id, current.status.value, "renewed")
        raise Conflict(f"device {device_id} is already being renewed", device_id)
    return current


def finish_renewal(
    connection: sqlite3.Connection, device_id: str, data: RenewalData, updated_at: datetime
) -> DeviceRecord:
    """The device moves to the new key and production CSID in one step; the renewal is over."""
    values: dict[str, Any] = {
        **_activation_values(data.activation, "production"),
        "key_id_hex": data.key_id_hex,
        "key_label": data.key_label,
        "updated_at": updated_at,
    }
    assignments = f"{_ACTIVATION_ASSIGNMENTS}, key_id_hex = :key_id_hex, key_label = :key_label"
    if data.compliance is not None:
        values.update(_compliance_values(data.compliance))
        assignments += f", {_COMPLIANCE_ASSIGNMENTS}"
    updated = connection.execute(
        f"UPDATE devices SET {assignments}, updated_at = :updated_at,"  # noqa: S608 - constant fragments
        " renewal_key_id_hex = NULL, renewal_key_label = NULL, renewal_started_at = NULL"
        " WHERE device_id = :device_id AND status = 'active' AND renewal_key_id_hex = :key_id_hex",
        _parameters({**values, "device_id": device_id}),
    ).rowcount
    current = get_device(connection, device_id)
    if updated == 0:
        # Reconciliation declared this renewal interrupted (and destroyed its key) meanwhile.
        raise DeviceStateConflict(device_id, current.status.value, "renewed")
    return current


def abandon_renewal(connection: sqlite3.Connection, device_id: str, key_id_hex: str) -> bool:
    """Forget the renewal in flight with this key (the device keeps its old key and CSID)."""
    updated = connection.execute(
        "UPDATE devices SET renewal_key_id_hex = NULL, renewal_key_label = NULL, renewal_started_at = NULL"
        " WHERE device_id = ? AND renewal_key_id_hex = ?",
        (device_id, key_id_hex),
    ).rowcount
    return bool(updated)


def renewals_in_flight(connection: sqlite3.Connection) -> list[DeviceRecord]:
    rows = connection.execute(
        "SELECT * FROM devices WHERE renewal_key_id_hex IS NOT NULL ORDER BY renewal_started_at, seq"
    ).fetchall()
    return [get_device(connection, row["device_id"]) for row in rows]


# Expiry -------------------------------------------------------------------------------------------


def expiring_before(connection: sqlite3.Connection, moment: datetime) -> list[DeviceRecord]:
    """Active devices whose certificate ends before `moment`, soonest first."""
    rows = connection.execute(
        "SELECT device_id FROM devices WHERE status = 'active' AND certificate_not_after IS NOT NULL"
        " AND certificate_not_after < ? ORDER BY certificate_not_after, seq",
        (timestamp_text(moment),),
    ).fetchall()
    return [get_device(connection, row["device_id"]) for row in rows]


def earliest_expiry(connection: sqlite3.Connection) -> dict[Environment, datetime]:
    """Per environment, the first moment an active device's certificate ends."""
    rows = connection.execute(
        "SELECT environment, min(certificate_not_after) AS first FROM devices"
        " WHERE status = 'active' AND certificate_not_after IS NOT NULL GROUP BY environment"
    ).fetchall()
    return {Environment(row["environment"]): datetime.fromisoformat(row["first"]) for row in rows}
