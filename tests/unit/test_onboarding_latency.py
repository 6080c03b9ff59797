"""Issue 12 point 2 in the onboarding path: audit records commit with their change, overlapping
work is run to the end, and the time waiting for ZATCA counts overlapping calls once."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from appliance.domain import DeviceStatus
from appliance.errors import DeviceStateConflict
from appliance.metrics import Metrics
from appliance.services.onboarding import StepClock, together
from appliance.storage import AuditEvent, AuditNote, ComplianceCsidData, SqliteRegistry
from tests.unit.test_storage_devices import NOW, activation, pending_record


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(tmp_path / "registry.sqlite3", clock=lambda: NOW) as opened:
        yield opened


def compliance_csid() -> ComplianceCsidData:
    data = activation()
    return ComplianceCsidData(
        csr_pem=data.csr_pem,
        request_id=data.request_id,
        binary_security_token=data.binary_security_token,
        secret_ciphertext=data.secret_ciphertext,
        certificate_serial=data.certificate_serial,
    )


def note(device_id: str, event: AuditEvent) -> AuditNote:
    return AuditNote("apikey:key_0123456789abcdef", event, "ok", device_id, "detail")


@pytest.mark.anyio
async def test_each_step_commits_with_its_audit_record(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)
    device_id = record.device_id

    await registry.store_compliance_csid(device_id, compliance_csid())
    await registry.record_compliance_checks(
        [], then_compliant=device_id, audit=(note(device_id, AuditEvent.COMPLIANCE_CHECKED),)
    )
    active = await registry.activate_production(
        device_id, activation(), audit=(note(device_id, AuditEvent.REGISTRATION_SUCCEEDED),)
    )

    assert active.status is DeviceStatus.ACTIVE
    events = [entry.event for entry in await registry.audit_records(device_id=device_id)]
    assert events == [AuditEvent.COMPLIANCE_CHECKED, AuditEvent.REGISTRATION_SUCCEEDED]
    assert await registry.verify_audit() == []


@pytest.mark.anyio
async def test_a_refused_step_leaves_no_audit_record(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)

    # pending cannot go straight to active with the production CSID: neither row nor record changes.
    with pytest.raises(DeviceStateConflict):
        await registry.activate_production(
            record.device_id, activation(), audit=(note(record.device_id, AuditEvent.REGISTRATION_SUCCEEDED),)
        )

    assert (await registry.get(record.device_id)).status is DeviceStatus.PENDING
    assert await registry.audit_records(device_id=record.device_id) == []


@pytest.mark.anyio
async def test_a_failed_registration_is_marked_with_its_record(registry: SqliteRegistry) -> None:
    record = pending_record()
    await registry.create_pending(record)

    failed = await registry.mark_failed(
        record.device_id,
        "ZATCA-Timeout",
        "no answer",
        audit=(note(record.device_id, AuditEvent.REGISTRATION_FAILED),),
    )

    assert failed.status is DeviceStatus.FAILED
    [entry] = await registry.audit_records(device_id=record.device_id)
    assert entry.event == AuditEvent.REGISTRATION_FAILED


@pytest.mark.anyio
async def test_together_runs_both_to_the_end_and_raises_the_first_error() -> None:
    finished: list[str] = []

    async def fails() -> None:
        raise sqlite3.OperationalError("first")

    async def slow() -> str:
        await anyio.sleep(0.01)
        finished.append("slow")
        return "done"

    with pytest.raises(sqlite3.OperationalError, match="first"):
        await together(fails, slow)
    assert finished == ["slow"]  # not cancelled by its sibling's failure

    async def answer() -> int:
        return 7

    assert await together(answer, slow) == (7, "done")


@pytest.mark.anyio
async def test_overlapping_zatca_calls_count_once() -> None:
    clock = StepClock(Metrics(), "registration")
    event = anyio.Event()

    async def call(seconds: float) -> None:
        with clock.zatca():
            await anyio.sleep(seconds)
        event.set()

    started = anyio.current_time()
    await together(lambda: call(0.05), lambda: call(0.05))
    elapsed = anyio.current_time() - started
    assert 0.05 <= clock.zatca_wait <= elapsed
    assert event.is_set()
