"""The contracts the services code against; `SqliteRegistry` is today's only implementation.

Methods are async so a networked database can replace SQLite without touching the callers.
"""

from __future__ import annotations

from typing import Protocol

from appliance.domain import DeviceStatus, Environment
from appliance.storage.audit import AuditTrail
from appliance.storage.models import ActivationData, ApiKeyInfo, DevicePage, DeviceRecord


class DeviceRegistry(Protocol):
    async def create_pending(self, record: DeviceRecord) -> None:
        """Store a new `pending` device.

        Raises `Conflict` naming the existing device id when (environment, vat, egs_serial)
        already has a pending or active row; a failed row does not block a new attempt.
        """
        ...

    async def mark_active(self, device_id: str, data: ActivationData) -> DeviceRecord:
        """pending -> active. `NotFound` if unknown, `DeviceStateConflict` if not pending."""
        ...

    async def mark_failed(self, device_id: str, code: str, message: str) -> DeviceRecord:
        """pending -> failed. `NotFound` if unknown, `DeviceStateConflict` if not pending."""
        ...

    async def get(self, device_id: str) -> DeviceRecord:
        """The device, or `NotFound`."""
        ...

    async def list_devices(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        status: DeviceStatus | None = None,
        environment: Environment | None = None,
    ) -> DevicePage:
        """Newest first (`created_at`, then insertion order); `total` counts every match."""
        ...

    async def list_by_status(self, status: DeviceStatus) -> list[DeviceRecord]:
        """Oldest first, so reconciliation resolves the longest-waiting devices first."""
        ...

    async def count_by_status(self) -> dict[DeviceStatus, int]:
        """Every status is present, zero included."""
        ...

    async def close(self) -> None: ...


class ApiKeyStore(Protocol):
    async def create_api_key(self, name: str) -> str:
        """Return a new key; only its hash is kept. `Conflict` if an active key has this name."""
        ...

    async def authenticate(self, presented: str) -> str | None:
        """The name of the active key matching `presented`, else None."""
        ...

    async def list_api_keys(self) -> list[ApiKeyInfo]:
        """Every key ever created, revoked ones included, oldest first."""
        ...

    async def revoke_api_key(self, name: str) -> bool:
        """Revoke the active key with this name; False if there is none."""
        ...


class AuditedDeviceRegistry(DeviceRegistry, AuditTrail, Protocol):
    """What the registration and reconciliation services need: devices plus the audit trail."""
