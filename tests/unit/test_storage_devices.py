"""The device registry on a real SQLite file: state machine, uniqueness, listing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import msgspec
import pytest

from appliance.domain import DeviceStatus, Environment, InvoiceFormat
from appliance.errors import Conflict, DeviceStateConflict, NotFound, ValidationFailed
from appliance.storage import ActivationData, DeviceRecord, SqliteRegistry, certificate_serial_text

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
# The registry's clock: every state change in these tests happens at this moment.
NOW = datetime(2025, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(tmp_path / "data" / "registry.sqlite3", clock=lambda: NOW) as opened:
        yield opened


def pending_record(
    *, vat: str = "399999999900003", egs_serial: str = "EGS-1", created_at: datetime = T0, **fields: Any
) -> DeviceRecord:
    device_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "device_id": device_id,
        "environment": Environment.SIMULATION,
        "invoice_format": InvoiceFormat.MODEL,
        "status": DeviceStatus.PENDING,
        "vat": vat,
        "egs_serial": egs_serial,
        "common_name": f"TST-886431145-{vat}",
        "serial_number": f"1-ZatcaAppliance|2-1.0|3-{egs_serial}",
        "organization_name": "Maximum Speed Tech Supply LTD",
        "organization_unit": "Riyadh Branch",
        "country": "SA",
        "location": "RRRD2929",
        "industry": "Supply activities",
        "invoice_type": "1100",
        "key_label": f"zatca-{device_id}",
        "key_id_hex": uuid.UUID(device_id).hex,
        "created_at": created_at,
        "updated_at": created_at,
        "created_by": "pos-fleet",
    }
    values.update(fields)
    return DeviceRecord(**values)


def activation(serial: int = 0x1A2B3C4D5E6F) -> ActivationData:
    return ActivationData(
        csr_pem="-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n",
        request_id="1234567890123",
        binary_security_token="TUlJQ...dG9rZW4=",
        secret_ciphertext=b"\x00\x01sealed-by-the-token\xff",
        certificate_serial=certificate_serial_text(serial),
        certificate_not_before=T0,
        certificate_not_after=T0 + timedelta(days=365),
    )


@pytest.mark.anyio
async def test_a_pending_device_reads_back_field_for_field(registry: SqliteRegistry) -> None:
    record = pending_record(created_at=datetime(2025, 3, 1, 11, 0, 0, 1, tzinfo=UTC))
    await registry.create_pending(record)
    assert await registry.get(record.device_id) == record


@pytest.mark.anyio
async def test_activation_stores_zatca_credentials(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)
    data = activation()

    active = await registry.mark_active(record.device_id, data)

    assert active.status is DeviceStatus.ACTIVE
    assert active.binary_security_token == data.binary_security_token
    assert active.secret_ciphertext == data.secret_ciphertext
    assert active.certificate_serial == "1a2b3c4d5e6f"
    assert (active.certificate_not_before, active.certificate_not_after) == (
        data.certificate_not_before,
        data.certificate_not_after,
    )
    assert active.csr_pem == data.csr_pem and active.request_id == data.request_id
    assert active.updated_at == NOW and active.created_at == record.created_at
    assert await registry.get(record.device_id) == active


@pytest.mark.anyio
async def test_failure_keeps_zatca_code_and_message(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)

    failed = await registry.mark_failed(record.device_id, "Invalid-OTP", "OTP expired")

    assert (failed.status, failed.failure_code, failed.failure_message) == (
        DeviceStatus.FAILED,
        "Invalid-OTP",
        "OTP expired",
    )
    assert failed.binary_security_token is None
    assert failed.updated_at == NOW
    assert await registry.get(record.device_id) == failed


@pytest.mark.anyio
async def test_only_pending_devices_change_state(registry: SqliteRegistry) -> None:
    active, failed = pending_record(egs_serial="A"), pending_record(egs_serial="F")
    for record in (active, failed):
        await registry.create_pending(record)
    await registry.mark_active(active.device_id, activation())
    await registry.mark_failed(failed.device_id, "Invalid-CSR", "bad CSR")

    refused = [
        registry.mark_failed(active.device_id, "X", "late"),
        registry.mark_active(active.device_id, activation(serial=7)),
        registry.mark_active(failed.device_id, activation()),
        registry.mark_failed(failed.device_id, "X", "again"),
    ]
    for attempt in refused:
        with pytest.raises(DeviceStateConflict) as caught:
            await attempt
        assert caught.value.existing_device_id in (active.device_id, failed.device_id)
        assert caught.value.current_status in ("active", "failed")

    assert (await registry.get(active.device_id)).certificate_serial == "1a2b3c4d5e6f"
    assert (await registry.get(failed.device_id)).failure_message == "bad CSR"


@pytest.mark.anyio
async def test_unknown_device_is_not_found(registry: SqliteRegistry) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await registry.get(missing)
    with pytest.raises(NotFound):
        await registry.mark_active(missing, activation())
    with pytest.raises(NotFound):
        await registry.mark_failed(missing, "X", "y")


@pytest.mark.anyio
@pytest.mark.parametrize("activate_first", [False, True], ids=["pending", "active"])
async def test_same_unit_cannot_be_registered_twice(registry: SqliteRegistry, activate_first: bool) -> None:
    first = pending_record()
    await registry.create_pending(first)
    if activate_first:
        await registry.mark_active(first.device_id, activation())

    with pytest.raises(Conflict) as caught:
        await registry.create_pending(pending_record())

    assert caught.value.existing_device_id == first.device_id
    assert first.device_id in str(caught.value)


@pytest.mark.anyio
async def test_same_serial_in_another_environment_or_vat_is_a_different_unit(
    registry: SqliteRegistry,
) -> None:
    await registry.create_pending(pending_record())
    await registry.create_pending(pending_record(environment=Environment.PRODUCTION))
    await registry.create_pending(pending_record(vat="300000000000003"))
    assert (await registry.count_by_status())[DeviceStatus.PENDING] == 3


@pytest.mark.anyio
async def test_unit_can_register_again_after_a_failure(registry: SqliteRegistry) -> None:
    first = pending_record()
    await registry.create_pending(first)
    await registry.mark_failed(first.device_id, "Invalid-OTP", "wrong OTP")

    second = pending_record()
    await registry.create_pending(second)
    await registry.mark_active(second.device_id, activation())

    assert (await registry.get(first.device_id)).status is DeviceStatus.FAILED
    assert (await registry.get(second.device_id)).status is DeviceStatus.ACTIVE
    with pytest.raises(Conflict) as caught:
        await registry.create_pending(pending_record())
    assert caught.value.existing_device_id == second.device_id


@pytest.mark.anyio
async def test_reused_device_id_is_refused(registry: SqliteRegistry) -> None:
    first = pending_record(egs_serial="A")
    await registry.create_pending(first)
    with pytest.raises(Conflict) as caught:
        await registry.create_pending(msgspec.structs.replace(first, egs_serial="B"))
    assert caught.value.existing_device_id == first.device_id


@pytest.mark.anyio
async def test_32_concurrent_registrations_of_distinct_units_all_succeed(registry: SqliteRegistry) -> None:
    records = [pending_record(egs_serial=f"EGS-{n}") for n in range(32)]
    async with anyio.create_task_group() as tasks:
        for record in records:
            tasks.start_soon(registry.create_pending, record)

    stored = await registry.list_by_status(DeviceStatus.PENDING)
    assert sorted(r.device_id for r in stored) == sorted(r.device_id for r in records)


@pytest.mark.anyio
async def test_32_concurrent_registrations_of_one_unit_have_one_winner(registry: SqliteRegistry) -> None:
    records = [pending_record() for _ in range(32)]
    winners: list[str] = []
    conflicts: list[Conflict] = []

    async def register(record: DeviceRecord) -> None:
        try:
            await registry.create_pending(record)
        except Conflict as exc:
            conflicts.append(exc)
        else:
            winners.append(record.device_id)

    async with anyio.create_task_group() as tasks:
        for record in records:
            tasks.start_soon(register, record)

    assert len(winners) == 1
    assert len(conflicts) == 31
    assert {c.existing_device_id for c in conflicts} == set(winners)
    assert [r.device_id for r in await registry.list_by_status(DeviceStatus.PENDING)] == winners


@pytest.mark.anyio
async def test_listing_is_newest_first_and_pages_do_not_overlap(registry: SqliteRegistry) -> None:
    # Two devices per timestamp: ties must still come out in one stable order.
    records = [
        pending_record(egs_serial=f"EGS-{n}", created_at=T0 + timedelta(minutes=n // 2)) for n in range(7)
    ]
    for record in records:
        await registry.create_pending(record)
    newest_first = [r.device_id for r in reversed(records)]

    pages = [await registry.list_devices(offset=offset, limit=3) for offset in (0, 3, 6)]

    assert [item.device_id for page in pages for item in page.items] == newest_first
    assert [(p.total, p.offset, p.limit, len(p.items)) for p in pages] == [
        (7, 0, 3, 3),
        (7, 3, 3, 3),
        (7, 6, 3, 1),
    ]
    beyond = await registry.list_devices(offset=10, limit=3)
    assert (beyond.items, beyond.total) == ([], 7)


@pytest.mark.anyio
async def test_listing_filters_by_status_and_environment(registry: SqliteRegistry) -> None:
    sim_active = pending_record(egs_serial="1")
    sim_pending = pending_record(egs_serial="2")
    prod_active = pending_record(egs_serial="3", environment=Environment.PRODUCTION)
    prod_failed = pending_record(egs_serial="4", environment=Environment.PRODUCTION)
    for record in (sim_active, sim_pending, prod_active, prod_failed):
        await registry.create_pending(record)
    await registry.mark_active(sim_active.device_id, activation())
    await registry.mark_active(prod_active.device_id, activation())
    await registry.mark_failed(prod_failed.device_id, "Invalid-OTP", "no")

    async def ids(**filters: Any) -> set[str]:
        page = await registry.list_devices(**filters)
        assert page.total == len(page.items)
        return {item.device_id for item in page.items}

    assert await ids(status=DeviceStatus.ACTIVE) == {sim_active.device_id, prod_active.device_id}
    assert await ids(environment=Environment.PRODUCTION) == {prod_active.device_id, prod_failed.device_id}
    assert await ids(status=DeviceStatus.ACTIVE, environment=Environment.SIMULATION) == {sim_active.device_id}
    assert await ids(environment=Environment.DEVELOPMENT) == set()
    assert await registry.count_by_status() == {
        **dict.fromkeys(DeviceStatus, 0),
        DeviceStatus.PENDING: 1,
        DeviceStatus.ACTIVE: 2,
        DeviceStatus.FAILED: 1,
    }


@pytest.mark.anyio
async def test_list_by_status_is_oldest_first_for_reconciliation(registry: SqliteRegistry) -> None:
    later = pending_record(egs_serial="later", created_at=T0 + timedelta(hours=1))
    earlier = pending_record(egs_serial="earlier", created_at=T0)
    await registry.create_pending(later)
    await registry.create_pending(earlier)
    pending = await registry.list_by_status(DeviceStatus.PENDING)
    assert [r.device_id for r in pending] == [earlier.device_id, later.device_id]
    assert await registry.list_by_status(DeviceStatus.FAILED) == []


@pytest.mark.anyio
async def test_empty_registry_counts_every_status_as_zero(registry: SqliteRegistry) -> None:
    assert await registry.count_by_status() == dict.fromkeys(DeviceStatus, 0)


@pytest.mark.anyio
async def test_bad_paging_arguments_name_the_field(registry: SqliteRegistry) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await registry.list_devices(offset=-1, limit=0)
    assert [p.field for p in caught.value.problems] == ["offset", "limit"]


@pytest.mark.anyio
async def test_caller_mistakes_are_refused_before_storage(registry: SqliteRegistry) -> None:
    with pytest.raises(ValueError, match="pending"):
        await registry.create_pending(pending_record(status=DeviceStatus.ACTIVE))
    with pytest.raises(ValueError, match="naive"):
        await registry.create_pending(pending_record(created_at=datetime(2025, 1, 1)))
    record = pending_record()
    await registry.create_pending(record)
    for not_lower_hex in ("0x1f", "1F", "", "12 34", "١٢"):
        with pytest.raises(ValueError, match="hex"):
            await registry.mark_active(
                record.device_id, msgspec.structs.replace(activation(), certificate_serial=not_lower_hex)
            )
    assert (await registry.get(record.device_id)).status is DeviceStatus.PENDING


@pytest.mark.anyio
async def test_timestamps_in_other_zones_come_back_as_the_same_utc_moment(registry: SqliteRegistry) -> None:
    riyadh = datetime(2025, 3, 1, 11, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Riyadh"))
    record = pending_record(created_at=riyadh)
    await registry.create_pending(record)
    stored = await registry.get(record.device_id)
    assert stored.created_at == riyadh
    assert stored.created_at.utcoffset() == timedelta(0)


def test_repr_hides_credentials_and_csr() -> None:
    data = activation()
    record = msgspec.structs.replace(
        pending_record(),
        status=DeviceStatus.ACTIVE,
        csr_pem=data.csr_pem,
        binary_security_token=data.binary_security_token,
        secret_ciphertext=data.secret_ciphertext,
    )
    for shown in (repr(record), str(record), repr(data), repr([record]), str(record.__rich_repr__())):
        assert data.binary_security_token not in shown
        assert repr(data.secret_ciphertext) not in shown
        assert "MIIB" not in shown
        assert "<redacted>" in shown
    assert record.device_id in repr(record) and "Riyadh Branch" in repr(record)
