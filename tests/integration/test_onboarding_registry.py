"""The registry's onboarding and renewal steps on a real SQLite file (no token, no ZATCA)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.domain import DeviceStatus, Environment
from appliance.errors import Conflict, DeviceStateConflict
from appliance.storage import (
    ActivationData,
    ComplianceCheckRecord,
    ComplianceCsidData,
    RenewalData,
    SqliteRegistry,
)
from appliance.storage.schema import MIGRATIONS
from tests.unit.test_storage_devices import NOW, activation, pending_record


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(tmp_path / "data" / "registry.sqlite3", clock=lambda: NOW) as opened:
        yield opened


def compliance_data(serial: str = "c0ffee") -> ComplianceCsidData:
    return ComplianceCsidData(
        csr_pem="-----BEGIN CERTIFICATE REQUEST-----\n...",
        request_id="1234567890123",
        binary_security_token="Y29tcGxpYW5jZQ==",
        secret_ciphertext=b"sealed-compliance-secret",
        certificate_serial=serial,
    )


def production_data(not_after: datetime) -> ActivationData:
    return ActivationData(
        csr_pem="-----BEGIN CERTIFICATE REQUEST-----\n...",
        request_id="30368",
        binary_security_token="cHJvZHVjdGlvbg==",
        secret_ciphertext=b"sealed-production-secret",
        certificate_serial="beef",
        certificate_not_before=not_after - timedelta(days=365),
        certificate_not_after=not_after,
    )


@pytest.mark.anyio
async def test_onboarding_walks_pending_compliance_compliant_active(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)
    stored = await registry.store_compliance_csid(record.device_id, compliance_data())
    assert stored.status is DeviceStatus.COMPLIANCE
    assert stored.compliance_request_id == "1234567890123" and stored.binary_security_token is None
    await registry.record_compliance_checks(
        [
            ComplianceCheckRecord(
                device_id=record.device_id,
                compliance_request_id="1234567890123",
                kind="standard-compliant",
                uuid=str(uuid.uuid4()),
                invoice_hash="aGFzaA==",
                http_status=200,
                status="PASS",
                messages=[],
                checked_at=NOW,
            )
        ],
        then_compliant=record.device_id,
    )
    assert (await registry.get(record.device_id)).status is DeviceStatus.COMPLIANT
    not_after = datetime(2030, 1, 1, tzinfo=UTC)
    active = await registry.activate_production(record.device_id, production_data(not_after))
    assert active.status is DeviceStatus.ACTIVE and active.credential_kind == "production"
    assert active.certificate_not_after == not_after
    assert (
        active.compliance_token == "Y29tcGxpYW5jZQ==" and active.binary_security_token == "cHJvZHVjdGlvbg=="
    )
    assert [check.kind for check in await registry.compliance_checks(record.device_id)] == [
        "standard-compliant"
    ]
    assert "sealed" not in repr(active) and "Y29tcGxpYW5jZQ" not in repr(active)


@pytest.mark.anyio
async def test_a_step_out_of_order_is_refused_and_any_in_flight_step_can_fail(
    registry: SqliteRegistry,
) -> None:
    record = pending_record()
    await registry.create_pending(record)
    with pytest.raises(DeviceStateConflict):
        await registry.mark_compliant(record.device_id)
    with pytest.raises(DeviceStateConflict):
        await registry.activate_production(
            record.device_id, production_data(datetime(2030, 1, 1, tzinfo=UTC))
        )
    await registry.store_compliance_csid(record.device_id, compliance_data())
    failed = await registry.mark_failed(record.device_id, "Missing-ComplianceSteps", "refused")
    assert failed.status is DeviceStatus.FAILED
    # A unit whose registration failed at the compliance step may register again.
    await registry.create_pending(pending_record(egs_serial=record.egs_serial))


@pytest.mark.anyio
async def test_an_in_flight_registration_blocks_a_second_one_of_the_same_unit(
    registry: SqliteRegistry,
) -> None:
    record = pending_record()
    await registry.create_pending(record)
    await registry.store_compliance_csid(record.device_id, compliance_data())
    with pytest.raises(Conflict):
        await registry.create_pending(pending_record(egs_serial=record.egs_serial))


@pytest.mark.anyio
async def test_renewal_switches_key_and_credentials_in_one_step(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)
    await registry.mark_active(record.device_id, activation())
    with pytest.raises(Conflict):  # one renewal at a time
        await registry.begin_renewal(record.device_id, "aa" * 16, "label-a")
        await registry.begin_renewal(record.device_id, "bb" * 16, "label-b")
    assert [row.device_id for row in await registry.renewals_in_flight()] == [record.device_id]
    renewed_until = datetime(2031, 6, 1, tzinfo=UTC)
    renewed = await registry.finish_renewal(
        record.device_id,
        RenewalData(key_id_hex="aa" * 16, key_label="label-a", activation=production_data(renewed_until)),
    )
    assert renewed.key_id_hex == "aa" * 16 and renewed.key_label == "label-a"
    assert renewed.renewal_key_id_hex is None and renewed.certificate_not_after == renewed_until
    assert await registry.renewals_in_flight() == []
    # An abandoned renewal cannot be finished later.
    await registry.begin_renewal(record.device_id, "cc" * 16, "label-c")
    assert await registry.abandon_renewal(record.device_id, "cc" * 16)
    with pytest.raises(DeviceStateConflict):
        await registry.finish_renewal(
            record.device_id,
            RenewalData(key_id_hex="cc" * 16, key_label="label-c", activation=production_data(renewed_until)),
        )
    assert (await registry.get(record.device_id)).key_id_hex == "aa" * 16


@pytest.mark.anyio
async def test_expiry_queries_see_active_devices_only(registry: SqliteRegistry) -> None:
    soon, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)
    ids = []
    for not_after, serial in ((later, "EGS-late"), (soon, "EGS-soon")):
        record = pending_record(egs_serial=serial)
        await registry.create_pending(record)
        await registry.store_compliance_csid(record.device_id, compliance_data())
        await registry.mark_compliant(record.device_id)
        await registry.activate_production(record.device_id, production_data(not_after))
        ids.append(record.device_id)
    await registry.create_pending(pending_record(egs_serial="EGS-pending"))
    assert await registry.earliest_expiry() == {Environment.SIMULATION: soon}
    expiring = await registry.expiring_before(datetime(2027, 1, 1, tzinfo=UTC))
    assert [row.device_id for row in expiring] == [ids[1]]


def test_a_registry_from_before_onboarding_keeps_its_devices_as_compliance_credentials(
    tmp_path: Path,
) -> None:
    """Migrating a version-2 file: active devices hold a compliance CSID, and are labelled so."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for version, statements in enumerate(MIGRATIONS[:2], start=1):
            for statement in statements:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (version,))
        connection.execute(
            "INSERT INTO devices (device_id, environment, invoice_format, status, vat, egs_serial,"
            " common_name, serial_number, organization_name, organization_unit, country, location,"
            " industry, invoice_type,"
            " key_label, key_id_hex, created_at, updated_at, request_id, binary_security_token,"
            " secret_ciphertext, certificate_serial) VALUES ('d1', 'Simulation', 'Model', 'active', 'v', 's',"
            " 'c', 'n', 'o', 'u', 'SA', 'l', 'i', '1100', 'k', 'ab', '2025-01-01T00:00:00.000000+00:00',"
            " '2025-01-01T00:00:00.000000+00:00', '7', 'tok', x'00', 'ff')"
        )

    async def read() -> tuple[str | None, str | None]:
        async with await SqliteRegistry.open(path) as opened:
            row = await opened.get("d1")
            return row.credential_kind, row.compliance_token

    import anyio

    assert anyio.run(read) == ("compliance", "tok")
