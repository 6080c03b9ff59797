"""Retire a device: the row becomes `retired` (with who and when), then its key is destroyed.

The row goes first, in one transaction with its `device.retired` audit record: a crash or an
absent token after it leaves a retired row that still has a key, which reconciliation destroys
("key of a retired device"). The other order could leave an `active` row without its key.
Invoices and the row itself are kept; the EGS serial may register again.

Both steps happen under the device's lock (services/device_locks.py): an invoice being signed
finishes first, and none is signed with the key once the row says retired.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from appliance.errors import HsmError
from appliance.hsm import AsyncKeyStore
from appliance.metrics import Metrics
from appliance.services.device_locks import DeviceLocks
from appliance.storage import AuditEvent, AuditTrail, DeviceRecord

log = logging.getLogger("appliance.retirement")


class RetiringRegistry(AuditTrail, Protocol):
    async def retire(self, device_id: str, *, actor: str, detail: str = "") -> DeviceRecord: ...


@dataclass(frozen=True, slots=True)
class RetirementResult:
    record: DeviceRecord
    key_destroyed: bool  # False: the token was away; reconciliation destroys the key later


async def retire_device(
    keys: AsyncKeyStore,
    registry: RetiringRegistry,
    device_id: str,
    *,
    actor: str,
    locks: DeviceLocks,
    metrics: Metrics | None = None,
) -> RetirementResult:
    """`NotFound` for an unknown device, `Conflict` unless it is active. `metrics`: the service's
    (its key gauge drops); the CLI, another process, has none."""
    async with locks(device_id):
        record = await registry.retire(device_id, actor=actor)
        key_destroyed = False
        try:
            key_destroyed = await keys.destroy_device_key(uuid.UUID(hex=record.key_id_hex))
        except HsmError as exc:
            log.warning(
                "retired device's key not destroyed; left for reconciliation",
                extra={"device_id": device_id, "error": str(exc)},
            )
    if key_destroyed and metrics is not None:
        metrics.token_device_keys.dec()
    if key_destroyed:
        await registry.append_audit(
            actor=actor,
            event=AuditEvent.KEY_DESTROYED,
            outcome="ok",
            device_id=device_id,
            detail="device retired",
        )
    log.info("device retired", extra={"device_id": device_id, "key_destroyed": key_destroyed})
    return RetirementResult(record=record, key_destroyed=key_destroyed)
