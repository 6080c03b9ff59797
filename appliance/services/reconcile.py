"""Bring the registry and the token back into agreement after a crash or an outage.

Invariants restored: every appliance key in the token has a registry row, no `pending` row
outlives the registration that wrote it, no `failed` row keeps a key, and every `active` row
whose key is gone is reported. Keys that the appliance did not create (another label) are
reported and left alone: an administrator may keep other objects in the same token.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appliance.domain import DeviceStatus
from appliance.hsm import AsyncKeyStore
from appliance.services.registration import DEVICE_KEY_LABEL_PREFIX
from appliance.storage import AuditedDeviceRegistry, AuditEvent

log = logging.getLogger("appliance.reconcile")

INTERRUPTED = "Registration-Interrupted"


@dataclass(slots=True)
class ReconcileReport:
    pending_failed: list[str] = field(default_factory=list)
    keys_destroyed: list[str] = field(default_factory=list)
    active_without_key: list[str] = field(default_factory=list)
    unmanaged_keys: list[str] = field(default_factory=list)
    device_keys_left: int = 0  # device keys in the token after reconciliation

    @property
    def consistent(self) -> bool:
        return not self.active_without_key


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

    async def destroy(device_id: str, why: str) -> None:
        if await keys.destroy_device_key(uuid.UUID(device_id)):
            report.keys_destroyed.append(device_id)
            await registry.append_audit(
                actor=actor, event=AuditEvent.KEY_DESTROYED, outcome="ok", device_id=device_id, detail=why
            )

    token_keys = {str(info.device_id): info for info in await keys.list_device_keys()}
    rows = {
        status: await registry.list_by_status(status)
        for status in (DeviceStatus.PENDING, DeviceStatus.ACTIVE, DeviceStatus.FAILED)
    }
    known = {row.device_id for status_rows in rows.values() for row in status_rows}
    cutoff = datetime.now(UTC) - pending_older_than

    for row in rows[DeviceStatus.PENDING]:
        if row.updated_at > cutoff:
            continue
        if row.device_id in token_keys:
            await destroy(row.device_id, "interrupted registration")
        await registry.mark_failed(
            row.device_id, INTERRUPTED, "the registration was interrupted before ZATCA's answer was stored"
        )
        report.pending_failed.append(row.device_id)
        await registry.append_audit(
            actor=actor,
            event=AuditEvent.REGISTRATION_FAILED,
            outcome="failed",
            device_id=row.device_id,
            detail=INTERRUPTED,
        )

    for row in rows[DeviceStatus.FAILED]:
        if row.device_id in token_keys:
            await destroy(row.device_id, "key of a failed registration")

    report.active_without_key = [
        row.device_id for row in rows[DeviceStatus.ACTIVE] if row.device_id not in token_keys
    ]

    for device_id, info in token_keys.items():
        if device_id in known:
            continue
        if info.label.startswith(DEVICE_KEY_LABEL_PREFIX):
            # Rows are written before keys, so such a key can only come from a lost or restored
            # registry; without its row nobody holds its credentials and it can never sign.
            await destroy(device_id, "appliance key without a registry row")
        else:
            report.unmanaged_keys.append(device_id)

    if report.pending_failed or report.keys_destroyed or report.active_without_key:
        await registry.append_audit(
            actor=actor,
            event=AuditEvent.DEVICES_RECONCILED,
            outcome="inconsistent" if report.active_without_key else "ok",
            detail=(
                f"pending_failed={len(report.pending_failed)} keys_destroyed={len(report.keys_destroyed)} "
                f"active_without_key={len(report.active_without_key)}"
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
    report.device_keys_left = len(token_keys) - len(report.keys_destroyed)
    return report
