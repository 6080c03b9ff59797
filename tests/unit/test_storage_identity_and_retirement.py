"""Issue 13 in the registry: one live device per final SN, retirement, VAT scopes, quotas, migration."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from appliance.domain import ApiKeyRole, DeviceStatus
from appliance.errors import Conflict, DeviceStateConflict, NotFound, RateLimited
from appliance.storage import AuditEvent, SqliteRegistry
from appliance.storage.schema import _RETIREMENT_MIGRATION, MIGRATIONS
from tests.unit.test_storage_devices import NOW, activation, pending_record


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(tmp_path / "registry.sqlite3", clock=lambda: NOW) as opened:
        yield opened


async def active_device(registry: SqliteRegistry, **fields: object) -> str:
    record = pending_record(**fields)  # type: ignore[arg-type]
    await registry.create_pending(record)
    await registry.mark_active(record.device_id, activation())
    return record.device_id


@pytest.mark.anyio
async def test_a_bare_serial_and_its_full_form_are_one_unit(registry: SqliteRegistry) -> None:
    """Issue 13 item 4: `DUPX-1` and `1-ZatcaAppliance|2-1.0|3-DUPX-1` both registered."""
    first = await active_device(registry, egs_serial="DUPX-1")
    full_form = pending_record(
        egs_serial="1-ZatcaAppliance|2-1.0|3-DUPX-1", serial_number="1-ZatcaAppliance|2-1.0|3-DUPX-1"
    )
    with pytest.raises(Conflict, match=first) as caught:
        await registry.create_pending(full_form)
    assert caught.value.existing_device_id == first


@pytest.mark.anyio
async def test_retiring_frees_the_unit_and_is_audited(registry: SqliteRegistry) -> None:
    device_id = await active_device(registry, egs_serial="RET-1")

    retired = await registry.retire(device_id, actor="apikey:key_0123456789abcdef")

    assert retired.status is DeviceStatus.RETIRED
    assert (retired.retired_at, retired.retired_by) == (NOW, "apikey:key_0123456789abcdef")
    assert retired.binary_security_token is not None  # history stays; only the key goes
    [record] = await registry.audit_records(device_id=device_id)
    assert (record.event, record.actor) == (AuditEvent.DEVICE_RETIRED, "apikey:key_0123456789abcdef")
    again = pending_record(egs_serial="RET-1")
    await registry.create_pending(again)
    assert (await registry.get(again.device_id)).status is DeviceStatus.PENDING
    assert [r.device_id for r in await registry.list_by_status(DeviceStatus.RETIRED)] == [device_id]


@pytest.mark.anyio
async def test_only_an_active_device_can_be_retired(registry: SqliteRegistry) -> None:
    pending = pending_record(egs_serial="RET-2")
    await registry.create_pending(pending)
    with pytest.raises(DeviceStateConflict, match="pending"):
        await registry.retire(pending.device_id, actor="cli")
    active = await active_device(registry, egs_serial="RET-3")
    await registry.retire(active, actor="cli")
    with pytest.raises(DeviceStateConflict, match="retired"):
        await registry.retire(active, actor="cli")
    with pytest.raises(NotFound):
        await registry.retire("00000000-0000-4000-8000-000000000000", actor="cli")
    assert len(await registry.audit_records()) == 1


@pytest.mark.anyio
async def test_listing_can_be_limited_to_an_api_keys_vats(registry: SqliteRegistry) -> None:
    mine = await active_device(registry, vat="311111111100003", egs_serial="A-1")
    await active_device(registry, vat="399999999900003", egs_serial="B-1")

    page = await registry.list_devices(vats=frozenset({"311111111100003"}))

    assert [item.device_id for item in page.items] == [mine] and page.total == 1
    assert (await registry.list_devices(vats=frozenset({"300000000000003"}))).total == 0
    assert (await registry.list_devices()).total == 2


@pytest.mark.anyio
async def test_a_registration_quota_counts_the_last_hour_of_attempts(registry: SqliteRegistry) -> None:
    for index in range(2):
        await registry.create_pending(
            pending_record(
                egs_serial=f"Q-{index}", created_by="key_a", created_at=NOW - timedelta(minutes=10)
            )
        )
    await registry.create_pending(
        pending_record(egs_serial="Q-old", created_by="key_a", created_at=NOW - timedelta(hours=2))
    )
    with pytest.raises(RateLimited) as caught:
        await registry.create_pending(
            pending_record(egs_serial="Q-3", created_by="key_a"), registrations_per_hour=2
        )
    assert caught.value.retry_after_seconds > 0
    await registry.create_pending(
        pending_record(egs_serial="Q-4", created_by="key_b"), registrations_per_hour=2
    )


@pytest.mark.anyio
async def test_keys_from_before_scopes_keep_working_as_unscoped_admin_keys(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    with sqlite3.connect(path) as connection:
        # The release before issue 13 (the migrations before the retirement one) and one key.
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for version, statements in enumerate(MIGRATIONS[: MIGRATIONS.index(_RETIREMENT_MIGRATION)], start=1):
            for statement in statements:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (version,))
        connection.execute(
            "INSERT INTO api_keys (name, key_hash, created_at)"
            " VALUES ('old', ?, '2025-01-01T00:00:00+00:00')",
            (hashlib.sha256(b"zak_old-key-from-before-scopes").digest(),),
        )
    connection.close()

    async with await SqliteRegistry.open(path, clock=lambda: NOW) as upgraded:
        scope = await upgraded.authenticate_key("zak_old-key-from-before-scopes")
        assert scope is not None and scope.name == "old" and scope.key_id.startswith("key_")
        assert scope.vats is None and scope.roles == {ApiKeyRole.ADMIN}
