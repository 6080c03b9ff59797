"""An attacker with write access edits the registry file with `sqlite3`; verification names what changed.

The attacker first drops the append-only triggers, as anyone who can write the file can.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from appliance.storage import AuditEvent, AuditProblem, AuditRecord, SqliteRegistry

RECORDS = 8
PAYLOAD = ("time", "actor", "device_id", "event", "outcome", "detail")
Tamper = Callable[[sqlite3.Connection], object]


class SteppingClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A closed registry holding RECORDS audit records about four devices."""
    registry_path = tmp_path / "registry.sqlite3"

    async def write() -> None:
        async with await SqliteRegistry.open(registry_path, clock=SteppingClock()) as registry:
            for number in range(RECORDS):
                await registry.append_audit(
                    actor="apikey:pos-fleet",
                    event=AuditEvent.KEY_GENERATED if number % 2 == 0 else AuditEvent.REGISTRATION_SUCCEEDED,
                    outcome="succeeded",
                    device_id=f"device-{number // 2}",
                    detail=f"step {number + 1}",
                )

    anyio.run(write)
    return registry_path


def tamper(path: Path, change: Tamper) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        connection.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        change(connection)
        connection.commit()
    finally:
        connection.close()


def verify(path: Path) -> list[AuditProblem]:
    async def run() -> list[AuditProblem]:
        async with await SqliteRegistry.open(path) as registry:
            return await registry.verify_audit()

    return anyio.run(run)


def records(path: Path) -> list[AuditRecord]:
    async def run() -> list[AuditRecord]:
        async with await SqliteRegistry.open(path) as registry:
            return await registry.audit_records()

    return anyio.run(run)


def attacker_hash(seq: int, row: dict[str, object], prev_hash: object) -> str:
    """The published chain formula, as an attacker would recompute it."""
    fields = [seq, *(row[name] for name in PAYLOAD), prev_hash]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def row(connection: sqlite3.Connection, seq: int) -> dict[str, object]:
    connection.row_factory = sqlite3.Row
    found = connection.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone()
    connection.row_factory = None
    return dict(found)


def put(connection: sqlite3.Connection, seq: int, values: dict[str, object]) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    connection.execute(
        f"UPDATE audit_log SET {assignments} WHERE seq = :where_seq", {**values, "where_seq": seq}
    )


def swap_seq_values(first: int, second: int) -> Tamper:
    def change(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE audit_log SET seq = 1000 WHERE seq = ?", (first,))
        connection.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (first, second))
        connection.execute("UPDATE audit_log SET seq = ? WHERE seq = 1000", (second,))

    return change


def swap_columns(first: int, second: int, columns: tuple[str, ...]) -> Tamper:
    def change(connection: sqlite3.Connection) -> None:
        one, other = row(connection, first), row(connection, second)
        put(connection, first, {name: other[name] for name in columns})
        put(connection, second, {name: one[name] for name in columns})

    return change


def kinds(problems: list[AuditProblem]) -> list[tuple[int, str]]:
    return [(problem.seq, problem.kind) for problem in problems]


def test_untouched_trail_verifies(path: Path) -> None:
    assert verify(path) == []
    assert [record.seq for record in records(path)] == list(range(1, RECORDS + 1))


@pytest.mark.parametrize(
    "column, value",
    [
        ("detail", "step 99"),
        ("outcome", "failed"),
        ("device_id", None),
        ("time", "2024-01-01T00:00:00.000000+00:00"),
    ],
)
def test_an_edited_field_names_the_record(path: Path, column: str, value: object) -> None:
    tamper(path, lambda connection: put(connection, 4, {column: value}))

    [problem] = verify(path)
    assert (problem.seq, problem.kind) == (4, "changed")
    assert "seq 4" in problem.message


def test_a_field_of_the_wrong_type_counts_as_an_edit(path: Path) -> None:
    tamper(path, lambda connection: put(connection, 2, {"actor": 5}))
    assert kinds(verify(path)) == [(2, "changed")]


def test_an_edit_with_a_recomputed_hash_is_caught_by_the_next_link(path: Path) -> None:
    def rewrite(connection: sqlite3.Connection) -> None:
        forged = {**row(connection, 5), "outcome": "failed"}
        put(connection, 5, {"outcome": "failed", "hash": attacker_hash(5, forged, forged["prev_hash"])})

    tamper(path, rewrite)

    [problem] = verify(path)
    assert (problem.seq, problem.kind) == (5, "changed")
    assert "re-hashed" in problem.message


@pytest.mark.parametrize(
    "deleted, message",
    [((4,), "record 4 is missing"), ((1,), "record 1 is missing"), ((3, 4, 5), "records 3 to 5 are missing")],
)
def test_deleted_records_are_named(path: Path, deleted: tuple[int, ...], message: str) -> None:
    tamper(
        path,
        lambda connection: connection.executemany(
            "DELETE FROM audit_log WHERE seq = ?", [(s,) for s in deleted]
        ),
    )

    [problem] = verify(path)
    assert (problem.seq, problem.kind) == (deleted[0], "deleted")
    assert message in problem.message


def test_a_deletion_hidden_by_renumbering_the_rest_is_named(path: Path) -> None:
    def hide(connection: sqlite3.Connection) -> None:
        connection.execute("DELETE FROM audit_log WHERE seq IN (3, 4)")
        connection.execute("UPDATE audit_log SET seq = seq - 2 WHERE seq > 4")

    tamper(path, hide)

    problems = verify(path)
    assert problems[0] == AuditProblem(3, "deleted", "records 3 to 4 are missing: deleted from the trail")
    assert problems[1:] == [
        AuditProblem(seq - 2, "reordered", f"seq {seq - 2} holds the record written as seq {seq}")
        for seq in range(5, RECORDS + 1)
    ]


def test_a_deleted_record_and_a_swap_around_it_are_each_named(path: Path) -> None:
    tamper(path, lambda connection: connection.execute("DELETE FROM audit_log WHERE seq = 4"))
    tamper(path, swap_seq_values(5, 7))

    assert kinds(verify(path)) == [(4, "deleted"), (5, "reordered"), (7, "reordered")]


@pytest.mark.parametrize("first, second", [(2, 6), (3, 4), (1, RECORDS)])
def test_swapped_seq_values_name_both_records(path: Path, first: int, second: int) -> None:
    tamper(path, swap_seq_values(first, second))

    problems = verify(path)
    assert kinds(problems) == [(first, "reordered"), (second, "reordered")]
    assert f"seq {second}" in problems[0].message
    assert f"seq {first}" in problems[1].message


@pytest.mark.parametrize("first, second", [(2, 6), (3, 4)])
def test_whole_rows_swapped_name_both_records(path: Path, first: int, second: int) -> None:
    tamper(path, swap_columns(first, second, (*PAYLOAD, "prev_hash", "hash")))

    problems = verify(path)
    assert kinds(problems) == [(first, "reordered"), (second, "reordered")]
    assert f"seq {second}" in problems[0].message
    assert f"seq {first}" in problems[1].message


def test_swapped_contents_under_their_old_hashes_name_both_records(path: Path) -> None:
    tamper(path, swap_columns(3, 7, PAYLOAD))

    problems = verify(path)
    assert kinds(problems) == [(3, "reordered"), (7, "reordered")]
    assert "seq 7" in problems[0].message
    assert "seq 3" in problems[1].message


def test_a_copied_record_is_named_as_inserted(path: Path) -> None:
    def copy(connection: sqlite3.Connection) -> None:
        connection.execute(
            f"INSERT INTO audit_log SELECT {RECORDS + 1}, time, actor, device_id, event, outcome, detail,"
            " prev_hash, hash FROM audit_log WHERE seq = 3"
        )

    tamper(path, copy)

    [problem] = verify(path)
    assert (problem.seq, problem.kind) == (RECORDS + 1, "inserted")
    assert "copy of record 3" in problem.message


def test_a_forged_record_slipped_into_the_middle_is_named(path: Path) -> None:
    def slip_in(connection: sqlite3.Connection) -> None:
        # Make room at seq 4 the way an attacker must: every later row moves up by one.
        connection.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 4")
        connection.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
        forged = {**row(connection, 3), "event": "key.exported", "detail": "nothing to see"}
        connection.execute(
            "INSERT INTO audit_log"
            " VALUES (4, :time, :actor, :device_id, :event, :outcome, :detail, :prev, :hash)",
            {**forged, "prev": forged["hash"], "hash": attacker_hash(4, forged, forged["hash"])},
        )

    tamper(path, slip_in)

    problems = verify(path)
    assert (4, "inserted") in kinds(problems)
    # Every genuine record that was pushed along is reported at its new place.
    assert [p for p in problems if p.kind != "inserted"] == [
        AuditProblem(seq + 1, "reordered", f"seq {seq + 1} holds the record written as seq {seq}")
        for seq in range(4, RECORDS + 1)
    ]


def test_a_cut_off_tail_is_only_caught_by_an_anchor_kept_elsewhere(path: Path) -> None:
    """The documented limit: the file alone cannot show that its newest records are gone."""
    anchor = records(path)[-1].hash
    tamper(path, lambda connection: connection.execute("DELETE FROM audit_log WHERE seq > 5"))

    assert verify(path) == []

    async def find() -> AuditRecord | None:
        async with await SqliteRegistry.open(path) as registry:
            return await registry.find_audit_record(anchor)

    assert anyio.run(find) is None
