"""The SQLite file: created private, opened durably, used from worker threads only.

Two connections: one writer and one reader, each used by one worker thread at a time
(a CapacityLimiter of 1 each). In WAL mode the reader never waits for the writer's fsync,
so API-key checks and listings stay fast while registrations commit. Writes are serialised
anyway by SQLite; one writer connection makes that explicit and keeps `BEGIN IMMEDIATE`
from ever waiting on ourselves.

`synchronous=FULL`: every commit is on disk before the caller goes on to answer its client,
so neither kill -9 nor a power cut loses a device that a POS was told about.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import msgspec

from appliance.errors import StorageError
from appliance.storage.schema import migrate
from appliance.storage.sql import transaction

T = TypeVar("T")

# Long enough for another process (the CLI) to finish a write; short enough to surface a
# stuck lock as an error instead of a hung request.
BUSY_TIMEOUT_SECONDS = 10.0
DATABASE_FILE_MODE = 0o600
DATA_DIRECTORY_MODE = 0o700


def _create_private_file(path: Path) -> None:
    """Create the data directory (0700) and the database file (0600) before SQLite does.

    SQLite gives its -wal and -shm files the database file's mode, so they stay private too.
    An existing directory keeps its mode: it may be shared, and systemd's StateDirectory owns it.
    """
    path.parent.mkdir(mode=DATA_DIRECTORY_MODE, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, DATABASE_FILE_MODE)
    try:
        os.fchmod(descriptor, DATABASE_FILE_MODE)
    finally:
        os.close(descriptor)


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    # isolation_level=None: transactions are opened explicitly (storage.sql.transaction).
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA trusted_schema = OFF")
        if read_only:
            connection.execute("PRAGMA query_only = ON")
    except BaseException:
        connection.close()
        raise
    return connection


def _use_wal(connection: sqlite3.Connection, path: Path) -> None:
    # WAL is what lets the reader connection work while the writer commits.
    (journal_mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if journal_mode != "wal":
        raise StorageError(f"the registry {path} cannot use WAL (journal_mode={journal_mode})")


def _open_connections(path: Path, migrated_at: str) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    try:
        _create_private_file(path)
    except OSError as exc:
        raise StorageError(f"cannot create the registry {path}: {exc.strerror}") from exc
    try:
        writer = _connect(path, read_only=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the registry {path}: {exc}") from exc
    try:
        _use_wal(writer, path)
        migrate(writer, migrated_at)
        reader = _connect(path, read_only=True)
    except sqlite3.Error as exc:
        writer.close()
        raise StorageError(f"cannot prepare the registry {path}: {exc}") from exc
    except BaseException:
        writer.close()
        raise
    return writer, reader


class Database:
    """Runs blocking SQLite work in worker threads, one thread per connection at a time."""

    def __init__(self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._writer_limiter = anyio.CapacityLimiter(1)
        self._reader_limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path, migrated_at: str) -> Database:
        """Create or open the file and migrate its schema."""
        writer, reader = await anyio.to_thread.run_sync(_open_connections, path, migrated_at)
        return cls(path, writer, reader)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` as one write transaction, so a change and its audit record commit together."""

        def in_transaction(connection: sqlite3.Connection) -> T:
            with transaction(connection, write=True):
                return work(connection)

        return await anyio.to_thread.run_sync(
            self._run, self._writer, in_transaction, limiter=self._writer_limiter
        )

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._run, self._reader, work, limiter=self._reader_limiter)

    async def close(self) -> None:
        # Through the limiters, so work already started finishes before its connection closes.
        await anyio.to_thread.run_sync(self._reader.close, limiter=self._reader_limiter)
        await anyio.to_thread.run_sync(self._writer.close, limiter=self._writer_limiter)

    def _run(self, connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(connection)
        except sqlite3.Error as exc:
            raise StorageError(f"registry {self.path}: {exc}") from exc
        except msgspec.ValidationError as exc:
            # Only a row edited outside the appliance can fail to decode.
            raise StorageError(f"registry {self.path} holds an unreadable row: {exc}") from exc
