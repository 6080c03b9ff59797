"""Bring the registry and the token back into agreement after a crash or an outage.

Invariants restored: every appliance key in the token has a registry row, no `pending`,
`compliance` or `compliant` row outlives the registration that wrote it, no renewal in flight
outlives the renewal (its new key destroyed, the device left on its old key), no `failed` row
keeps a key, and every `active` row whose key is gone is reported. Keys are matched by CKA_ID
(`key_id_hex`): a renewal gives a device a key with a new id. Keys that the appliance did not
create (another label) are reported and left alone: an administrator may keep other objects in
the same token.

Two entry points. `resolve_interrupted` is what start-up must do before the service answers:
close every pending row (a crash interrupted it) and destroy its key, found by device id, which
costs one look-up in one token instead of a listing of all of them (seconds at 10,000 keys).
`reconcile` is the full pass (every token's listing against every row); the service runs it
right after it is ready and then periodically, and `devices reconcile` runs it on demand.
Rows are written before keys and a failed registration destroys its key before marking the row,
so after a crash only pending rows can hold a key the service would trip over; orphans and
failed rows that kept a key (the token was away) are left to the full pass, moments later.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appliance.domain import CLOSED_STATUSES, DeviceStatus
from appliance.hsm import AsyncKeyStore
from appliance.services.registration import DEVICE_KEY_LABEL_PREFIX
from appliance.storage import AuditedDeviceRegistry, AuditEvent, DeviceRecord
from appliance.storage.onboarding import IN_FLIGHT

log = logging.getLogger("appliance.reconcile")

INTERRUPTED = "Registration-Interrupted"
RENEWAL_INTERRUPTED = "Renewal-Interrupted"
# Statuses in the order a device moves through them (see `reconcile`).
_CLOSED_ORDER = tuple(status for status in DeviceStatus if status in CLOSED_STATUSES)
_FLOW_ORDER = (*IN_FLIGHT, DeviceStatus.ACTIVE, *_CLOSED_ORDER)


@dataclass(slots=True)
class ReconcileReport:
    pending_failed: list[str] = field(default_factory=list)  # registrations (any in-flight status)
    renewals_abandoned: list[str] = field(default_factory=list)
    keys_destroyed: list[str] = field(default_factory=list)
    active_without_key: list[str] = field(default_factory=list)
    unmanaged_keys: list[str] = field(default_factory=list)
    device_keys_left: int = 0  # device keys in the token after reconciliation

    @property
    def consistent(self) -> bool:
        return not self.active_without_key


async def resolve_interrupted(
    keys: AsyncKeyStore, registry: AuditedDeviceRegistry, *, actor: str = "system"
) -> ReconcileReport:
    """Start-up, before the service answers: fail every registration still under way (pending,
    compliance, compliant) and destroy its key; forget every renewal under way and destroy its
    new key (the device stays on its old key and credentials).

    Nothing is in flight yet, so every such row is one a crash interrupted."""
    report = ReconcileReport()
    for status in IN_FLIGHT:
        for row in await registry.list_by_status(status):
            await _destroy(keys, registry, report, row, why="interrupted registration", actor=actor)
            await _fail_interrupted(registry, report, row.device_id, actor)
    for row in await registry.renewals_in_flight():
        await _abandon_renewal(keys, registry, report, row, actor)
    await _record(registry, report, actor)
    return report


async def reconcile(
    keys: AsyncKeyStore,
    registry: AuditedDeviceRegistry,
    *,
    pending_older_than: timedelta,
    actor: str = "system",
) -> ReconcileReport:
    """Resolve pending rows older than `pending_older_than` (zero at start-up, when nothing is in
    flight; a safe margin when the service runs) and keys or rows left behind by a crash."""
    report = ReconcileReport()

    async def destroy(row: DeviceRecord, why: str, key_id_hex: str | None = None) -> None:
        await _destroy(keys, registry, report, row, why=why, actor=actor, key_id_hex=key_id_hex)

    token_keys = {info.key_id_hex: info for info in await keys.list_device_keys()}
    # Read in the order a registration moves (keys before rows, rows before keys in the
    # services), so a row that changes status meanwhile is seen at least once.
    rows = {status: await registry.list_by_status(status) for status in _FLOW_ORDER}
    known = {row.key_id_hex for status_rows in rows.values() for row in status_rows}
    known |= {row.renewal_key_id_hex for row in rows[DeviceStatus.ACTIVE] if row.renewal_key_id_hex}
    cutoff = datetime.now(UTC) - pending_older_than

    for status in IN_FLIGHT:
        for row in rows[status]:
            if row.updated_at > cutoff:
                continue
            if row.key_id_hex in token_keys:
                await destroy(row, "interrupted registration")
            await _fail_interrupted(registry, report, row.device_id, actor)

    for row in rows[DeviceStatus.ACTIVE]:
        if row.renewal_key_id_hex and row.renewal_started_at and row.renewal_started_at <= cutoff:
            await _abandon_renewal(keys, registry, report, row, actor)

    for status in _CLOSED_ORDER:
        for row in rows[status]:
            if row.key_id_hex in token_keys:
                await destroy(row, f"key of a {status} device")

    report.active_without_key = [
        row.device_id for row in rows[DeviceStatus.ACTIVE] if row.key_id_hex not in token_keys
    ]

    for key_id_hex, info in token_keys.items():
        if key_id_hex in known:
            continue
        if info.label.startswith(DEVICE_KEY_LABEL_PREFIX):
            # Rows are written before keys, so such a key can only come from a lost or restored
            # registry, or be the old key of a renewal that stored its new one; without a row
            # nobody holds its credentials and it can never sign.
            if await keys.destroy_device_key(uuid.UUID(hex=key_id_hex)):
                report.keys_destroyed.append(str(info.device_id))
                await registry.append_audit(
                    actor=actor,
                    event=AuditEvent.KEY_DESTROYED,
                    outcome="ok",
                    device_id=str(info.device_id),
                    detail=f"appliance key without a registry row ({info.label})",
                )
        else:
            report.unmanaged_keys.append(str(info.device_id))

    await _record(registry, report, actor)
    report.device_keys_left = len(token_keys) - len(report.keys_destroyed)
    return report


async def _destroy(
    keys: AsyncKeyStore,
    registry: AuditedDeviceRegistry,
    report: ReconcileReport,
    row: DeviceRecord,
    *,
    why: str,
    actor: str,
    key_id_hex: str | None = None,
) -> None:
    """Destroy the row's key (or the key `key_id_hex`, a renewal's) if it is in the token."""
    if await keys.destroy_device_key(uuid.UUID(hex=key_id_hex or row.key_id_hex)):
        report.keys_destroyed.append(row.device_id)
        await registry.append_audit(
            actor=actor, event=AuditEvent.KEY_DESTROYED, outcome="ok", device_id=row.device_id, detail=why
        )


async def _abandon_renewal(
    keys: AsyncKeyStore,
    registry: AuditedDeviceRegistry,
    report: ReconcileReport,
    row: DeviceRecord,
    actor: str,
) -> None:
    """A renewal a crash interrupted: its new key goes first, then the note of it, so the key
    never exists without a row that names it. The device keeps its old key and credentials."""
    assert row.renewal_key_id_hex is not None
    await _destroy(
        keys, registry, report, row, why="interrupted renewal", actor=actor, key_id_hex=row.renewal_key_id_hex
    )
    if await registry.abandon_renewal(row.device_id, row.renewal_key_id_hex):
        report.renewals_abandoned.append(row.device_id)
        await registry.append_audit(
            actor=actor,
            event=AuditEvent.RENEWAL_FAILED,
            outcome="failed",
            device_id=row.device_id,
            detail=RENEWAL_INTERRUPTED,
        )


async def _fail_interrupted(
    registry: AuditedDeviceRegistry, report: ReconcileReport, device_id: str, actor: str
) -> None:
    await registry.mark_failed(
        device_id, INTERRUPTED, "the registration was interrupted before ZATCA's answer was stored"
    )
    report.pending_failed.append(device_id)
    await registry.append_audit(
        actor=actor,
        event=AuditEvent.REGISTRATION_FAILED,
        outcome="failed",
        device_id=device_id,
        detail=INTERRUPTED,
    )


async def _record(registry: AuditedDeviceRegistry, report: ReconcileReport, actor: str) -> None:
    """One audit record and one warning when reconciliation changed or found anything."""
    if (
        report.pending_failed
        or report.keys_destroyed
        or report.active_without_key
        or report.renewals_abandoned
    ):
        await registry.append_audit(
            actor=actor,
            event=AuditEvent.DEVICES_RECONCILED,
            outcome="inconsistent" if report.active_without_key else "ok",
            detail=(
                f"pending_failed={len(report.pending_failed)} keys_destroyed={len(report.keys_destroyed)} "
                f"active_without_key={len(report.active_without_key)} "
                f"renewals_abandoned={len(report.renewals_abandoned)}"
            ),
        )
        log.warning(
            "reconciliation changed or found inconsistencies",
            extra={
                "pending_failed": len(report.pending_failed),
                "keys_destroyed": len(report.keys_destroyed),
                "active_without_key": len(report.active_without_key),
            },
        )
