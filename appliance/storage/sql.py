"""Helpers every SQL module of the registry shares: transactions and timestamp text."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


@contextmanager
def transaction(connection: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction; writes take the write lock up front.

    `BEGIN IMMEDIATE` waits (busy_timeout) for another writer instead of failing halfway
    through, which a deferred transaction that later upgrades to a write would do.
    """
    connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def timestamp_text(moment: datetime) -> str:
    """Fixed-width UTC text, so the database orders timestamps correctly as strings."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the registry stores UTC moments only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def timestamp_from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def utc_now() -> datetime:
    return datetime.now(UTC)
