"""The audit trail on a real SQLite file: the chain as written, read back and re-checked by hand.

The judge of every hash is the standard library (`json` + `hashlib`) reading the file with
`sqlite3`, not the appliance's own hashing code.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from appliance.errors import Conflict, ValidationFailed
from appliance.storage import GENESIS_HASH, AuditEvent, AuditRecord, SqliteRegistry, api_key_actor
from appliance.storage.schema import MIGRATIONS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SteppingClock:
    """Each reading one second after the last, so record times are distinct and predictable."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "registry.sqlite3"


@pytest.fixture
async def registry(path: Path) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(path, clock=SteppingClock()) as opened:
        yield opened


def rows_in_file(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT seq, time, actor, device_id, event, outcome, detail, prev_hash, hash"
            " FROM audit_log ORDER BY seq"
        ).fetchall()
    connection.close()
    return rows


def assert_chain_by_hand(rows: list[tuple[object, ...]]) -> None:
    """What an auditor with only Python's standard library would check."""
    expected_prev = GENESIS_HASH
    for position, (seq, *payload, prev_hash, stored_hash) in enumerate(rows, start=1):
        assert seq == position
        assert prev_hash == expected_prev
        encoded = json.dumps([seq, *payload, prev_hash], separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(encoded.encode("utf-8")).hexdigest() == stored_hash
        expected_prev = stored_hash


@pytest.mark.anyio
async def test_records_chain_from_genesis_as_documented(registry: SqliteRegistry, path: Path) -> None:
    device = "6f1c1b4e-3a5e-4d55-9a8b-1c2d3e4f5a6b"
    first = await registry.append_audit(
        actor="apikey:pos-fleet", event=AuditEvent.KEY_GENERATED, outcome="succeeded", device_id=device
    )
    second = await registry.append_audit(
        actor="apikey:pos-fleet",
        event=AuditEvent.REGISTRATION_FAILED,
        outcome="failed",
        device_id=device,
        detail='Invalid-OTP: "OTP" خاطئ\nretry',
    )
    third = await registry.append_audit(actor="system", event=AuditEvent.DEVICES_RECONCILED, outcome="done")

    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert first.time < second.time < third.time
    assert rows_in_file(path)[1][6] == 'Invalid-OTP: "OTP" خاطئ\nretry'
    assert_chain_by_hand(rows_in_file(path))
    assert await registry.verify_audit() == []


@pytest.mark.anyio
async def test_records_read_back_as_appended_filtered_and_newest_last(registry: SqliteRegistry) -> None:
    appended: list[AuditRecord] = []
    for number in range(6):
        appended.append(
            await registry.append_audit(
                actor="cli",
                event=AuditEvent.KEY_DESTROYED,
                outcome="succeeded",
                device_id=f"device-{number % 2}",
                detail=f"attempt {number}",
            )
        )

    assert await registry.audit_records() == appended
    assert await registry.audit_records(limit=2) == appended[-2:]
    assert await registry.audit_records(device_id="device-1") == appended[1::2]
    assert await registry.audit_records(device_id="device-1", limit=1) == [appended[-1]]
    assert await registry.audit_records(device_id="nobody") == []
    assert await registry.audit_head() == appended[-1]
    assert await registry.find_audit_record(appended[2].hash) == appended[2]
    assert await registry.find_audit_record("f" * 64) is None
    with pytest.raises(ValidationFailed):
        await registry.audit_records(limit=0)


@pytest.mark.anyio
async def test_64_concurrent_appends_make_one_unforked_chain(registry: SqliteRegistry, path: Path) -> None:
    async def append(number: int) -> None:
        await registry.append_audit(
            actor="cli", event=AuditEvent.KEY_GENERATED, outcome="succeeded", detail=f"worker {number}"
        )

    async with anyio.create_task_group() as group:
        for number in range(64):
            group.start_soon(append, number)

    rows = rows_in_file(path)
    assert len(rows) == 64
    assert sorted(str(row[6]) for row in rows) == sorted(f"worker {number}" for number in range(64))
    assert_chain_by_hand(rows)
    assert await registry.verify_audit() == []


@pytest.mark.anyio
async def test_two_connections_on_one_file_do_not_fork_the_chain(path: Path) -> None:
    """The service and the CLI each have their own writer connection to the same file."""

    async def append(registry: SqliteRegistry, actor: str, number: int) -> None:
        await registry.append_audit(actor=actor, event=AuditEvent.KEY_GENERATED, outcome=f"run {number}")

    async with (
        await SqliteRegistry.open(path) as service,
        await SqliteRegistry.open(path) as cli,
        anyio.create_task_group() as group,
    ):
        for number in range(32):
            group.start_soon(append, service, "system", number)
            group.start_soon(append, cli, "cli", number)

    rows = rows_in_file(path)
    assert len(rows) == 64
    assert_chain_by_hand(rows)


@pytest.mark.anyio
async def test_chain_continues_after_reopening(path: Path) -> None:
    async with await SqliteRegistry.open(path) as first:
        before = await first.append_audit(actor="cli", event=AuditEvent.APIKEY_CREATED, outcome="succeeded")
    async with await SqliteRegistry.open(path) as second:
        after = await second.append_audit(actor="cli", event=AuditEvent.APIKEY_REVOKED, outcome="succeeded")
        assert await second.verify_audit() == []

    assert (after.seq, after.prev_hash) == (2, before.hash)


@pytest.mark.anyio
async def test_api_key_changes_are_audited_without_the_key(registry: SqliteRegistry, path: Path) -> None:
    """Only real changes are recorded: a refused creation or a revocation of nothing is not."""
    key = await registry.create_api_key("pos-fleet", actor="ops-admin")
    chosen = "dev-key-chosen-by-the-operator-0001"
    await registry.add_api_key("dev", chosen)
    with pytest.raises(Conflict):
        await registry.create_api_key("pos-fleet")
    assert await registry.revoke_api_key("pos-fleet", actor=api_key_actor("root")) is True
    assert await registry.revoke_api_key("pos-fleet") is False

    records = await registry.audit_records()
    assert [(r.event, r.actor, r.outcome) for r in records] == [
        (AuditEvent.APIKEY_CREATED, "ops-admin", "succeeded"),
        (AuditEvent.APIKEY_CREATED, "cli", "succeeded"),
        (AuditEvent.APIKEY_REVOKED, "apikey:root", "succeeded"),
    ]
    assert all("pos-fleet" in r.detail for r in (records[0], records[2]))
    assert "dev" in records[1].detail
    stored_text = repr(rows_in_file(path))
    assert key not in stored_text
    assert chosen not in stored_text
    assert await registry.verify_audit() == []


@pytest.mark.anyio
async def test_long_or_undecodable_detail_is_kept_short_and_storable(registry: SqliteRegistry) -> None:
    record = await registry.append_audit(
        actor="cli", event=AuditEvent.REGISTRATION_FAILED, outcome="failed", detail="bad \udcff " + "x" * 5000
    )

    assert record.detail.startswith("bad ? xxx")
    assert len(record.detail) == 1000
    assert await registry.audit_records() == [record]
    assert await registry.verify_audit() == []


@pytest.mark.anyio
async def test_a_record_needs_an_actor_and_an_outcome(registry: SqliteRegistry) -> None:
    with pytest.raises(ValueError, match="actor"):
        await registry.append_audit(actor="", event=AuditEvent.KEY_EXPORTED, outcome="succeeded")
    with pytest.raises(ValueError, match="outcome"):
        await registry.append_audit(actor="cli", event=AuditEvent.KEY_EXPORTED, outcome="")
    assert await registry.audit_records() == []


@pytest.mark.anyio
async def test_the_table_refuses_plain_updates_and_deletes(registry: SqliteRegistry, path: Path) -> None:
    await registry.append_audit(actor="cli", event=AuditEvent.KEY_EXPORTED, outcome="succeeded")

    with sqlite3.connect(path) as connection:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE audit_log SET outcome = 'failed'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM audit_log")
    connection.close()
    assert [r.outcome for r in await registry.audit_records()] == ["succeeded"]


@pytest.mark.anyio
async def test_a_registry_from_before_the_audit_trail_gains_it_on_opening(path: Path) -> None:
    # What the first release's file looks like: schema version 1 (no audit_log), one API key.
    key = "first-release-key-" + "k" * 32
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute("INSERT INTO schema_migrations VALUES (1, '2026-11-27T00:00:00+00:00')")
        connection.execute(
            "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
            ("pos-fleet", hashlib.sha256(key.encode()).digest(), "2026-11-27T00:00:00+00:00"),
        )
    connection.close()

    async with await SqliteRegistry.open(path) as upgraded:
        assert await upgraded.authenticate(key) == "pos-fleet"
        assert await upgraded.audit_records() == []
        record = await upgraded.append_audit(actor="cli", event=AuditEvent.KEY_EXPORTED, outcome="succeeded")
        assert (record.seq, record.prev_hash) == (1, GENESIS_HASH)
        assert await upgraded.verify_audit() == []
