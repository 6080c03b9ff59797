"""The contracts the services code against; `SqliteRegistry` is today's only implementation.

Methods are async so a networked database can replace SQLite without touching the callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from appliance.domain import DeviceStatus, Environment
from appliance.storage.audit import AuditNote, AuditTrail
from appliance.storage.models import (
    ActivationData,
    ApiKeyInfo,
    ComplianceCheckRecord,
    ComplianceCsidData,
    DevicePage,
    DeviceRecord,
    RenewalData,
)


class DeviceRegistry(Protocol):
    async def create_pending(
        self, record: DeviceRecord, *, registrations_per_hour: int | None = None
    ) -> None:
        """Store a new `pending` device.

        Raises `Conflict` naming the existing device id when (environment, vat, egs_serial) or
        (environment, vat, serial_number) already has a live row; a failed or retired row does not
        block a new attempt. With `registrations_per_hour`, `RateLimited` once `record.created_by`
        made that many attempts in the last hour.
        """
        ...

    async def mark_active(self, device_id: str, data: ActivationData) -> DeviceRecord:
        """pending -> active. `NotFound` if unknown, `DeviceStateConflict` if not pending."""
        ...

    async def mark_failed(
        self, device_id: str, code: str, message: str, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        """pending, compliance or compliant -> failed. `NotFound` if unknown, `DeviceStateConflict`
        if the registration already ended. `audit`: records appended in the same transaction."""
        ...

    async def store_compliance_csid(
        self, device_id: str, data: ComplianceCsidData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        """pending -> compliance."""
        ...

    async def record_compliance_checks(
        self,
        checks: list[ComplianceCheckRecord],
        *,
        then_compliant: str | None = None,
        audit: Sequence[AuditNote] = (),
    ) -> None:
        """Keep ZATCA's verdicts; with `then_compliant` (a device id) also compliance -> compliant."""
        ...

    async def compliance_checks(self, device_id: str) -> list[ComplianceCheckRecord]:
        """The device's compliance documents' verdicts, oldest first."""
        ...

    async def mark_compliant(self, device_id: str) -> DeviceRecord:
        """compliance -> compliant."""
        ...

    async def activate_production(
        self, device_id: str, data: ActivationData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        """compliant -> active with the production CSID."""
        ...

    async def activate_compliance_only(
        self, device_id: str, data: ActivationData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        """pending -> active with the compliance CSID (`zatca.onboarding: compliance`)."""
        ...

    async def begin_renewal(self, device_id: str, key_id_hex: str, key_label: str) -> DeviceRecord:
        """Note an active device's renewal key before it exists. `Conflict` if one is in flight."""
        ...

    async def finish_renewal(
        self, device_id: str, data: RenewalData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        """Switch the device to the renewal's key and CSID; `DeviceStateConflict` if it was abandoned.
        `audit`: records appended in the same transaction."""
        ...

    async def abandon_renewal(self, device_id: str, key_id_hex: str) -> bool:
        """Forget the renewal in flight with this key; False if there was none."""
        ...

    async def renewals_in_flight(self) -> list[DeviceRecord]:
        """Devices with a renewal key noted, oldest renewal first."""
        ...

    async def expiring_before(self, moment: datetime) -> list[DeviceRecord]:
        """Active devices whose certificate ends before `moment`, soonest first."""
        ...

    async def earliest_expiry(self) -> dict[Environment, datetime]:
        """Per environment, when the first active device's certificate ends."""
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
