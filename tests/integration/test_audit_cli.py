"""`zatca-appliance audit verify|show` run as an operator runs them, on tampered copies of a registry."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import pytest

from appliance.storage import AuditEvent, AuditRecord, SqliteRegistry

DEVICE = "0b9f0c51-7a51-4f0e-9e1e-3c0c7f7e2d11"
OTHER_DEVICE = "a3a1d7a2-55a4-4c0e-8f43-0d4c8d1f7b90"
Tamper = Callable[[sqlite3.Connection], object]


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Trail:
    data_dir: Path
    records: list[AuditRecord]


def run_cli(*args: str) -> CliResult:
    completed = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def config_for(data_dir: Path) -> Path:
    path = data_dir.parent / f"{data_dir.name}.yaml"
    path.write_bytes(msgspec.yaml.encode({"storage": {"data_dir": str(data_dir)}}))
    return path


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    """A registry written through the Python API: a registration, a failure, API-key changes."""
    data_dir = tmp_path / "original"

    async def write() -> list[AuditRecord]:
        async with await SqliteRegistry.open(data_dir / "registry.sqlite3") as registry:
            await registry.create_api_key("pos-fleet")
            for event, outcome, device in [
                (AuditEvent.KEY_GENERATED, "succeeded", DEVICE),
                (AuditEvent.REGISTRATION_SUCCEEDED, "succeeded", DEVICE),
                (AuditEvent.KEY_GENERATED, "succeeded", OTHER_DEVICE),
                (AuditEvent.KEY_DESTROYED, "succeeded", OTHER_DEVICE),
                (AuditEvent.REGISTRATION_FAILED, "failed", OTHER_DEVICE),
            ]:
                await registry.append_audit(
                    actor="apikey:pos-fleet",
                    event=event,
                    outcome=outcome,
                    device_id=device,
                    detail=f"{event}",
                )
            await registry.revoke_api_key("pos-fleet")
            return await registry.audit_records()

    records = anyio.run(write)
    return Trail(data_dir, records)


def tampered_copy(trail: Trail, name: str, change: Tamper) -> Path:
    """A copy of the registry edited with sqlite3 (triggers dropped first, as an attacker would)."""
    data_dir = trail.data_dir.parent / name
    shutil.copytree(trail.data_dir, data_dir)
    connection = sqlite3.connect(data_dir / "registry.sqlite3")
    try:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("DROP TRIGGER audit_log_no_delete")
        change(connection)
        connection.commit()
    finally:
        connection.close()
    return data_dir


def swap_seq_values(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE audit_log SET seq = 1000 WHERE seq = 3")
    connection.execute("UPDATE audit_log SET seq = 3 WHERE seq = 6")
    connection.execute("UPDATE audit_log SET seq = 6 WHERE seq = 1000")


def swap_contents(connection: sqlite3.Connection) -> None:
    columns = "time, actor, device_id, event, outcome, detail"
    third = connection.execute(f"SELECT {columns} FROM audit_log WHERE seq = 3").fetchone()
    sixth = connection.execute(f"SELECT {columns} FROM audit_log WHERE seq = 6").fetchone()
    assignments = ", ".join(f"{column} = ?" for column in columns.split(", "))
    connection.execute(f"UPDATE audit_log SET {assignments} WHERE seq = 3", sixth)
    connection.execute(f"UPDATE audit_log SET {assignments} WHERE seq = 6", third)


def test_intact_trail_verifies_and_prints_its_head(trail: Trail) -> None:
    head = trail.records[-1]

    result = run_cli("verify", "--config", str(config_for(trail.data_dir)))

    assert result.exit_code == 0, result
    assert result.stdout.strip() == f"audit trail intact: {len(trail.records)} records, head {head.hash}"
    assert len(trail.records) == 7


def test_edited_record_fails_naming_it(trail: Trail) -> None:
    data_dir = tampered_copy(
        trail, "edited", lambda c: c.execute("UPDATE audit_log SET outcome = 'succeeded' WHERE seq = 6")
    )

    result = run_cli("verify", "--config", str(config_for(data_dir)))

    assert result.exit_code == 1, result
    assert "audit trail NOT intact: 1 problem(s)" in result.stdout
    assert "seq 6 changed:" in result.stdout


def test_deleted_record_fails_naming_it(trail: Trail) -> None:
    data_dir = tampered_copy(trail, "deleted", lambda c: c.execute("DELETE FROM audit_log WHERE seq = 4"))

    result = run_cli("verify", "--config", str(config_for(data_dir)))

    assert result.exit_code == 1, result
    assert "seq 4 deleted: record 4 is missing" in result.stdout


@pytest.mark.parametrize("change", [swap_seq_values, swap_contents], ids=["seq-values", "contents"])
def test_swapped_records_fail_naming_both(trail: Trail, change: Tamper) -> None:
    data_dir = tampered_copy(trail, change.__name__, change)

    result = run_cli("verify", "--config", str(config_for(data_dir)))

    assert result.exit_code == 1, result
    lines = [line.strip() for line in result.stdout.splitlines()[1:]]
    assert len(lines) == 2
    assert lines[0].startswith("seq 3 reordered:") and "seq 6" in lines[0]
    assert lines[1].startswith("seq 6 reordered:") and "seq 3" in lines[1]


def test_expected_head_catches_a_cut_off_tail(trail: Trail) -> None:
    anchor = trail.records[-1].hash
    data_dir = tampered_copy(trail, "truncated", lambda c: c.execute("DELETE FROM audit_log WHERE seq > 5"))
    config = str(config_for(data_dir))

    without_anchor = run_cli("verify", "--config", config)
    with_anchor = run_cli("verify", "--config", config, "--expect-head", anchor)

    assert without_anchor.exit_code == 0, without_anchor
    assert with_anchor.exit_code == 1, with_anchor
    assert f"expected head {anchor} is NOT in the trail" in with_anchor.stdout


def test_expected_head_noted_earlier_is_found_in_a_grown_trail(trail: Trail) -> None:
    earlier = trail.records[2]

    result = run_cli(
        "verify", "--config", str(config_for(trail.data_dir)), "--expect-head", earlier.hash.upper()
    )

    assert result.exit_code == 0, result
    assert f"expected head found at seq {earlier.seq}; 4 record(s) appended since" in result.stdout


def test_show_prints_the_records_of_one_device(trail: Trail) -> None:
    config = str(config_for(trail.data_dir))

    everything = run_cli("show", "--config", config)
    one_device = run_cli("show", "--config", config, "--device", OTHER_DEVICE)
    newest = run_cli("show", "--config", config, "--limit", "2")

    assert everything.exit_code == one_device.exit_code == newest.exit_code == 0
    assert len(everything.stdout.splitlines()) == 1 + len(trail.records)
    header, *rows = one_device.stdout.splitlines()
    assert header.split() == ["SEQ", "TIME", "(UTC)", "ACTOR", "DEVICE", "EVENT", "OUTCOME", "DETAIL"]
    assert [row.split()[0] for row in rows] == ["4", "5", "6"]
    assert all(OTHER_DEVICE in row for row in rows)
    assert "registration.failed" in rows[-1] and "failed" in rows[-1].split()
    assert [row.split()[0] for row in newest.stdout.splitlines()[1:]] == ["6", "7"]
    assert "apikey.revoked" in newest.stdout


def test_a_missing_registry_is_an_error_not_an_empty_intact_trail(tmp_path: Path) -> None:
    result = run_cli("verify", "--config", str(config_for(tmp_path / "typo")))

    assert result.exit_code == 2
    assert "no registry at" in result.stderr
    assert not (tmp_path / "typo").exists()
