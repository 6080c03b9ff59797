"""`SqliteRegistry`: devices, API keys and the audit trail in one SQLite file, safe for concurrent callers.

Every call hops to a worker thread (see `Database`); a caller cancelled mid-write waits for
the write to finish, so the file never holds half of an operation. SQLite failures surface
as `StorageError`; broken promises of the caller (naive datetimes, a non-pending new record,
a certificate serial that is not lowercase hex) as `ValueError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from appliance.domain import DeviceStatus, Environment
from appliance.errors import FieldProblem, ValidationFailed
from appliance.storage import apikeys, audit_sql, devices, onboarding
from appliance.storage.audit import ACTOR_CLI, AuditEvent, AuditNote, AuditProblem, AuditRecord, AuditTrail
from appliance.storage.audit_verify import verify_records
from appliance.storage.database import Database
from appliance.storage.models import (
    ActivationData,
    ApiKeyInfo,
    ApiKeyScope,
    ComplianceCheckRecord,
    ComplianceCsidData,
    DevicePage,
    DeviceRecord,
    RenewalData,
)
from appliance.storage.protocol import ApiKeyStore, DeviceRegistry
from appliance.storage.sql import timestamp_text, utc_now

Clock = Callable[[], datetime]
T = TypeVar("T")


class SqliteRegistry(DeviceRegistry, ApiKeyStore, AuditTrail):
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    @classmethod
    async def open(cls, path: str | Path, *, clock: Clock = utc_now) -> SqliteRegistry:
        """Create (directory 0700, file 0600) or open the registry and migrate its schema."""
        return cls(await Database.open(Path(path), timestamp_text(clock())), clock)

    @property
    def path(self) -> Path:
        return self._database.path

    @property
    def database(self) -> Database:
        """The file's connections, shared with the invoice store (one writer per process)."""
        return self._database

    async def close(self) -> None:
        await self._database.close()

    async def __aenter__(self) -> SqliteRegistry:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Devices

    async def create_pending(
        self, record: DeviceRecord, *, registrations_per_hour: int | None = None
    ) -> None:
        """With `registrations_per_hour`, `RateLimited` once `record.created_by` made that many
        attempts in the last hour (counted in the insert's transaction, so parallel calls cannot
        overshoot)."""
        quota = None
        if registrations_per_hour is not None:
            quota = devices.RegistrationQuota(
                limit=registrations_per_hour,
                since=self._clock() - timedelta(hours=1),
                retry_after_seconds=int(timedelta(hours=1).total_seconds()),
            )
        await self._database.write(partial(devices.insert_pending, record=record, quota=quota))

    async def retire(self, device_id: str, *, actor: str, detail: str = "") -> DeviceRecord:
        """active -> retired, with its audit record in the same transaction. The caller then
        destroys the key; a crash in between leaves a retired row with a key, which reconciliation
        destroys. `NotFound`, or `Conflict` when the device is not active (or is renewing)."""
        retired_at = self._clock()

        def retire_and_audit(connection: sqlite3.Connection) -> DeviceRecord:
            record = devices.retire(connection, device_id, actor, retired_at)
            audit_sql.append(
                connection,
                clock=self._clock,
                actor=actor,
                event=AuditEvent.DEVICE_RETIRED,
                outcome="ok",
                device_id=device_id,
                detail=detail or f"egs_serial={record.egs_serial} vat={record.vat}",
            )
            return record

        return await self._database.write(retire_and_audit)

    async def mark_active(self, device_id: str, data: ActivationData) -> DeviceRecord:
        return await self._database.write(
            partial(devices.activate, device_id=device_id, data=data, updated_at=self._clock())
        )

    async def mark_failed(
        self, device_id: str, code: str, message: str, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        return await self._write_audited(
            partial(
                onboarding.fail_registration,
                device_id=device_id,
                code=code,
                message=message,
                updated_at=self._clock(),
            ),
            audit,
        )

    async def get(self, device_id: str) -> DeviceRecord:
        return await self._database.read(partial(devices.get, device_id=device_id))

    async def list_devices(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        status: DeviceStatus | None = None,
        environment: Environment | None = None,
        vats: frozenset[str] | None = None,
    ) -> DevicePage:
        problems = []
        if offset < 0:
            problems.append(FieldProblem("offset", "must be 0 or more"))
        if limit < 1:
            problems.append(FieldProblem("limit", "must be 1 or more"))
        if problems:
            raise ValidationFailed(problems)
        return await self._database.read(
            partial(
                devices.page, offset=offset, limit=limit, status=status, environment=environment, vats=vats
            )
        )

    async def list_by_status(self, status: DeviceStatus) -> list[DeviceRecord]:
        return await self._database.read(partial(devices.with_status, status=status))

    async def count_by_status(self) -> dict[DeviceStatus, int]:
        return await self._database.read(devices.count_by_status)

    # Onboarding and renewal (SQL in storage.onboarding)

    async def store_compliance_csid(
        self, device_id: str, data: ComplianceCsidData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        return await self._write_audited(
            partial(
                onboarding.store_compliance_csid, device_id=device_id, data=data, updated_at=self._clock()
            ),
            audit,
        )

    async def record_compliance_checks(
        self,
        checks: list[ComplianceCheckRecord],
        *,
        then_compliant: str | None = None,
        audit: Sequence[AuditNote] = (),
    ) -> None:
        await self._write_audited(
            partial(
                onboarding.record_compliance_checks,
                checks=checks,
                then_compliant=then_compliant,
                updated_at=self._clock(),
            ),
            audit,
        )

    async def compliance_checks(self, device_id: str) -> list[ComplianceCheckRecord]:
        return await self._database.read(partial(onboarding.compliance_checks, device_id=device_id))

    async def mark_compliant(self, device_id: str) -> DeviceRecord:
        return await self._database.write(
            partial(onboarding.mark_compliant, device_id=device_id, updated_at=self._clock())
        )

    async def activate_production(
        self, device_id: str, data: ActivationData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        return await self._write_audited(
            partial(onboarding.activate_production, device_id=device_id, data=data, updated_at=self._clock()),
            audit,
        )

    async def activate_compliance_only(
        self, device_id: str, data: ActivationData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        return await self._write_audited(
            partial(
                onboarding.activate_compliance_only, device_id=device_id, data=data, updated_at=self._clock()
            ),
            audit,
        )

    async def _write_audited(
        self, change: Callable[[sqlite3.Connection], T], audit: Sequence[AuditNote]
    ) -> T:
        """`change` and its audit records in one transaction: one commit, and never one without the other."""

        def change_and_audit(connection: sqlite3.Connection) -> T:
            result = change(connection)
            audit_sql.append_notes(connection, self._clock, audit)
            return result

        return await self._database.write(change_and_audit)

    async def begin_renewal(self, device_id: str, key_id_hex: str, key_label: str) -> DeviceRecord:
        return await self._database.write(
            partial(
                onboarding.begin_renewal,
                device_id=device_id,
                key_id_hex=key_id_hex,
                key_label=key_label,
                started_at=self._clock(),
            )
        )

    async def finish_renewal(
        self, device_id: str, data: RenewalData, *, audit: Sequence[AuditNote] = ()
    ) -> DeviceRecord:
        return await self._write_audited(
            partial(onboarding.finish_renewal, device_id=device_id, data=data, updated_at=self._clock()),
            audit,
        )

    async def abandon_renewal(self, device_id: str, key_id_hex: str) -> bool:
        return await self._database.write(
            partial(onboarding.abandon_renewal, device_id=device_id, key_id_hex=key_id_hex)
        )

    async def renewals_in_flight(self) -> list[DeviceRecord]:
        return await self._database.read(onboarding.renewals_in_flight)

    async def expiring_before(self, moment: datetime) -> list[DeviceRecord]:
        return await self._database.read(partial(onboarding.expiring_before, moment=moment))

    async def earliest_expiry(self) -> dict[Environment, datetime]:
        return await self._database.read(onboarding.earliest_expiry)

    # API keys

    async def create_api_key(self, name: str, *, actor: str = ACTOR_CLI) -> str:
        """A key with the default roles (register, invoice, read) for every VAT."""
        key, _ = await self.create_scoped_api_key(apikeys.NewApiKey(name=name), actor=actor)
        return key

    async def create_scoped_api_key(
        self, request: apikeys.NewApiKey, *, actor: str = ACTOR_CLI
    ) -> tuple[str, str]:
        """A new key and its id. `ValidationFailed` for a bad name or scope, `Conflict` if the
        name was ever used."""
        apikeys.check_name(request.name)
        apikeys.check_scope(request)
        key = apikeys.new_api_key()
        key_id = await self._insert_api_key(request, key, actor=actor, how="generated")
        return key, key_id

    async def add_api_key(self, name: str, key: str, *, actor: str = ACTOR_CLI) -> None:
        """Store a key the operator chose (the development server's `--api-key`).

        `ValidationFailed` for a short key; `Conflict` if the name is active or the key was
        ever issued before (a revoked key must not come back to life).
        """
        apikeys.check_name(name)
        apikeys.check_chosen_key(key)
        await self._insert_api_key(
            apikeys.NewApiKey(name=name), key, actor=actor, how="chosen by the operator"
        )

    async def _insert_api_key(self, request: apikeys.NewApiKey, key: str, *, actor: str, how: str) -> str:
        key_hash = apikeys.hash_api_key(key)
        created_at = self._clock()

        def insert_and_audit(connection: sqlite3.Connection) -> str:
            key_id = apikeys.insert(connection, request, key_hash, created_at, actor)
            vats = "all" if request.vats is None else ",".join(sorted(request.vats))
            detail = (
                f"name={request.name} id={key_id} {how} roles={','.join(sorted(request.roles))} vats={vats}"
                f" registrations_per_hour={request.registrations_per_hour or '-'}"
            )
            self._audit_api_key_change(connection, actor, AuditEvent.APIKEY_CREATED, detail)
            return key_id

        return await self._database.write(insert_and_audit)

    async def authenticate(self, presented: str) -> str | None:
        """The name of the active key matching `presented`, else None."""
        scope = await self.authenticate_key(presented)
        return None if scope is None else scope.name

    async def authenticate_key(self, presented: str) -> ApiKeyScope | None:
        """The id, roles and VAT scope of the active key matching `presented`, else None."""
        presented_hash = apikeys.hash_api_key(presented)
        match = apikeys.find_match(presented_hash, await self._database.read(apikeys.active_keys))
        if match is None:
            return None
        now = self._clock()
        if apikeys.needs_touch(match, now):
            await self._database.write(partial(apikeys.touch, seq=match.seq, used_at=now))
        return match.scope

    async def list_api_keys(self) -> list[ApiKeyInfo]:
        return await self._database.read(apikeys.all_keys)

    async def revoke_api_key(self, name: str, *, actor: str = ACTOR_CLI) -> bool:
        revoked_at = self._clock()

        def revoke_and_audit(connection: sqlite3.Connection) -> bool:
            key_id = apikeys.revoke(connection, name, revoked_at)
            if key_id is not None:
                detail = f"name={name} id={key_id}" if name != key_id else f"id={key_id}"
                self._audit_api_key_change(connection, actor, AuditEvent.APIKEY_REVOKED, detail)
            return key_id is not None

        return await self._database.write(revoke_and_audit)

    def _audit_api_key_change(
        self, connection: sqlite3.Connection, actor: str, event: AuditEvent, detail: str
    ) -> None:
        # In the change's own transaction (`Database.write`): no key changes without its record.
        audit_sql.append(
            connection,
            clock=self._clock,
            actor=actor,
            event=event,
            outcome="succeeded",
            device_id=None,
            detail=detail,
        )

    # Audit trail

    async def append_audit(
        self,
        *,
        actor: str,
        event: AuditEvent,
        outcome: str,
        device_id: str | None = None,
        detail: str = "",
    ) -> AuditRecord:
        return await self._database.write(
            partial(
                audit_sql.append,
                clock=self._clock,
                actor=actor,
                event=event,
                outcome=outcome,
                device_id=device_id,
                detail=detail,
            )
        )

    async def audit_records(
        self, *, device_id: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        if limit is not None and limit < 1:
            raise ValidationFailed([FieldProblem("limit", "must be 1 or more")])
        return await self._database.read(partial(audit_sql.records, device_id=device_id, limit=limit))

    async def verify_audit(self) -> list[AuditProblem]:
        return verify_records(await self._database.read(audit_sql.stored_rows))

    async def audit_head(self) -> AuditRecord | None:
        """The newest record (the one an external anchor should note), None while the trail is empty."""
        return await self._database.read(audit_sql.head)

    async def find_audit_record(self, record_hash: str) -> AuditRecord | None:
        """The record with this chain hash, e.g. an anchor noted earlier; None if it is not in the trail."""
        return await self._database.read(partial(audit_sql.find_by_hash, record_hash_hex=record_hash))
