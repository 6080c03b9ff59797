"""The registry's file on disk: permissions, durability, reopening, schema versions."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from appliance.domain import DeviceStatus
from appliance.errors import Conflict, StorageError
from appliance.storage import SqliteRegistry
from appliance.storage.schema import MIGRATIONS
from tests.unit.test_storage_devices import activation, pending_record

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.anyio
@pytest.mark.usefixtures("permissive_umask")
async def test_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "registry.sqlite3"
    async with await SqliteRegistry.open(path) as registry:
        await registry.create_pending(pending_record())
        written = sorted(p.name for p in path.parent.iterdir())
        modes = {p.name: mode(p) for p in path.parent.iterdir()}

    assert written == ["registry.sqlite3", "registry.sqlite3-shm", "registry.sqlite3-wal"]
    assert modes == dict.fromkeys(written, 0o600)
    assert mode(path.parent) == 0o700


@pytest.mark.anyio
async def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    async with await SqliteRegistry.open(path):
        pass
    assert mode(path) == 0o600


@pytest.mark.anyio
async def test_devices_and_keys_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    record = pending_record()
    async with await SqliteRegistry.open(path) as registry:
        await registry.create_pending(record)
        active = await registry.mark_active(record.device_id, activation())
        key = await registry.create_api_key("pos-fleet")

    async with await SqliteRegistry.open(path) as reopened:
        assert await reopened.get(record.device_id) == active
        assert await reopened.authenticate(key) == "pos-fleet"
        with pytest.raises(Conflict):
            await reopened.create_pending(pending_record())

    with sqlite3.connect(path) as inspector:
        assert inspector.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        versions = inspector.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert versions == [(number,) for number in range(1, len(MIGRATIONS) + 1)]
    inspector.close()


@pytest.mark.anyio
async def test_a_device_recorded_before_kill_9_is_still_there(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    script = textwrap.dedent(
        """
        import anyio, os, signal, sys
        from appliance.storage import SqliteRegistry
        from tests.unit.test_storage_devices import activation, pending_record

        async def main() -> None:
            registry = await SqliteRegistry.open(sys.argv[1])
            pending = pending_record(egs_serial="pending")
            active = pending_record(egs_serial="active")
            await registry.create_pending(pending)
            await registry.create_pending(active)
            await registry.mark_active(active.device_id, activation())
            print(pending.device_id, active.device_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        anyio.run(main)
        """
    )
    with anyio.fail_after(60):
        killed = await anyio.run_process(
            [sys.executable, "-c", script, str(path)], cwd=REPOSITORY, check=False
        )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    pending_id, active_id = killed.stdout.decode().split()

    async with await SqliteRegistry.open(path) as registry:
        assert (await registry.get(pending_id)).status is DeviceStatus.PENDING
        assert (await registry.get(active_id)).status is DeviceStatus.ACTIVE
        assert [r.device_id for r in await registry.list_by_status(DeviceStatus.PENDING)] == [pending_id]


@pytest.mark.anyio
async def test_two_processes_worth_of_connections_still_register_a_unit_once(tmp_path: Path) -> None:
    # The service and the CLI may open the same file; the database, not our lock, must decide.
    path = tmp_path / "registry.sqlite3"
    async with await SqliteRegistry.open(path) as first, await SqliteRegistry.open(path) as second:
        records = [pending_record() for _ in range(32)]
        winners: list[str] = []

        async def register(registry: SqliteRegistry, record_index: int) -> None:
            try:
                await registry.create_pending(records[record_index])
            except Conflict:
                return
            winners.append(records[record_index].device_id)

        async with anyio.create_task_group() as tasks:
            for index in range(32):
                tasks.start_soon(register, (first, second)[index % 2], index)

        assert len(winners) == 1
        assert [r.device_id for r in await second.list_by_status(DeviceStatus.PENDING)] == winners


@pytest.mark.anyio
async def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    async with await SqliteRegistry.open(path):
        pass
    with sqlite3.connect(path) as newer:
        newer.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')")
    newer.close()

    with pytest.raises(StorageError, match="schema version 99"):
        await SqliteRegistry.open(path)


@pytest.mark.anyio
async def test_an_unusable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(StorageError, match="not-a-directory"):
        await SqliteRegistry.open(blocker / "registry.sqlite3")


@pytest.mark.anyio
async def test_a_closed_registry_refuses_work_with_a_storage_error(tmp_path: Path) -> None:
    registry = await SqliteRegistry.open(tmp_path / "registry.sqlite3")
    await registry.close()
    with pytest.raises(StorageError):
        await registry.create_pending(pending_record())
    with pytest.raises(StorageError):
        await registry.authenticate("zak_anything")


@pytest.mark.anyio
async def test_a_row_edited_by_hand_into_nonsense_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    record = pending_record()
    async with await SqliteRegistry.open(path) as registry:
        await registry.create_pending(record)
        with sqlite3.connect(path) as editor:
            editor.execute("UPDATE devices SET created_at = 'yesterday'")
        editor.close()

        with pytest.raises(StorageError, match="unreadable row"):
            await registry.get(record.device_id)
