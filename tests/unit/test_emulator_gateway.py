"""Emulator rules that need a clock or a look inside: OTP lifetime, validity dates, fault order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from appliance.emulator.authority import EmulatorAuthority, not_after_for
from appliance.emulator.faults import FaultQueue
from appliance.emulator.gateway import ENVIRONMENTS, EmulatedGateway
from appliance.emulator.settings import EmulatorSettings, FaultSpec, parse_fault_argument
from appliance.emulator.store import EmulatorStore
from appliance.emulator.wire import Answer, required_compliance_steps
from tests.fixtures.emulator import TEST_VAT, csr_request_value, variant_csr

SIMULATION = ENVIRONMENTS["simulation"]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def gateway(tmp_path: Path, clock: FakeClock) -> Iterator[EmulatedGateway]:
    settings = EmulatorSettings(data_dir=str(tmp_path), otp_ttl_seconds=3600)
    authority = EmulatorAuthority.load_or_create(tmp_path, clock)
    store = EmulatorStore(tmp_path, clock)
    yield EmulatedGateway(settings, authority, store, clock)
    store.close()


def simulation_csr_body() -> bytes:
    csr = variant_csr(template=SIMULATION.template)
    return msgspec.json.encode({"csr": csr_request_value(csr)})


def test_an_otp_works_until_its_hour_is_over(gateway: EmulatedGateway, clock: FakeClock) -> None:
    early, late = gateway.mint_otp("Simulation", TEST_VAT), gateway.mint_otp("Simulation", TEST_VAT)
    clock.now += 3599
    assert gateway.request_compliance_csid(SIMULATION, early, simulation_csr_body()).status == 200
    clock.now += 1
    expired = gateway.request_compliance_csid(SIMULATION, late, simulation_csr_body())
    assert expired.status == 400
    assert msgspec.json.decode(expired.body)["errors"][0]["code"] == "Invalid-OTP"


def test_request_ids_are_13_digit_and_increasing_even_within_one_millisecond(
    gateway: EmulatedGateway,
) -> None:
    ids = []
    for _ in range(3):
        answer = gateway.request_compliance_csid(
            SIMULATION, gateway.mint_otp("Simulation", TEST_VAT), simulation_csr_body()
        )
        ids.append(msgspec.json.decode(answer.body)["requestID"])
    assert all(len(str(request_id)) == 13 for request_id in ids)
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    ("issued_utc", "expires_utc"),
    [
        # ZATCA's Swagger sample: issued 2024-01-10 13:11:54 UTC, valid until 2029-01-09 21:00 UTC.
        (dt.datetime(2024, 1, 10, 13, 11, 54), dt.datetime(2029, 1, 9, 21, 0)),
        # 22:30 UTC is already the next day in Riyadh.
        (dt.datetime(2024, 1, 10, 22, 30), dt.datetime(2029, 1, 10, 21, 0)),
        (dt.datetime(2024, 2, 29, 12, 0), dt.datetime(2029, 2, 27, 21, 0)),
    ],
)
def test_certificates_expire_at_midnight_riyadh_five_years_on(
    issued_utc: dt.datetime, expires_utc: dt.datetime
) -> None:
    assert not_after_for(issued_utc.replace(tzinfo=dt.UTC)) == expires_utc.replace(tzinfo=dt.UTC)


def test_faults_apply_in_order_each_for_its_count() -> None:
    queue = FaultQueue([FaultSpec("error-500", count=2), FaultSpec("latency", seconds=0.5)])
    taken = [queue.take() for _ in range(4)]
    assert [fault.kind if fault else None for fault in taken] == ["error-500", "error-500", "latency", None]
    assert queue.pending() == []


def test_a_fault_for_one_endpoint_waits_for_it_while_others_go_on() -> None:
    queue = FaultQueue([FaultSpec("timeout", endpoint="reporting"), FaultSpec("error-500", count=2)])
    assert queue.take("compliance") == FaultSpec("error-500", count=2)
    assert queue.take("clearance") == FaultSpec("error-500", count=2)
    assert queue.take("clearance") is None
    assert queue.take("reporting") == FaultSpec("timeout", endpoint="reporting")
    assert queue.pending() == []


def test_the_invoices_target_covers_the_three_invoice_endpoints_only() -> None:
    spec = FaultSpec("error-500", endpoint="invoices")
    assert [spec.applies_to(name) for name in ("compliance-invoices", "reporting", "clearance")] == [True] * 3
    assert not spec.applies_to("compliance") and not spec.applies_to("production-csids")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timeout", FaultSpec("timeout", 1)),
        ("error-500:3", FaultSpec("error-500", 3)),
        ("latency:2:0.25", FaultSpec("latency", 2, 0.25)),
        ("timeout@reporting:2", FaultSpec("timeout", 2, endpoint="reporting")),
        ("connection-drop@invoices", FaultSpec("connection-drop", 1, endpoint="invoices")),
    ],
)
def test_fault_arguments_from_the_command_line(text: str, expected: FaultSpec) -> None:
    assert parse_fault_argument(text) == expected


@pytest.mark.parametrize(
    "text",
    ["explode", "error-500:0", "error-500:x", "timeout:1:5", "latency:1:-1", "a:1:2:3", "timeout@nowhere"],
)
def test_bad_fault_arguments_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fault_argument(text)


@pytest.mark.parametrize(
    ("title", "steps"),
    [
        ("1000", ["standard-compliant", "standard-credit-note-compliant", "standard-debit-note-compliant"]),
        (
            "0100",
            ["simplified-compliant", "simplified-credit-note-compliant", "simplified-debit-note-compliant"],
        ),
    ],
)
def test_compliance_steps_follow_the_invoice_type(title: str, steps: list[str]) -> None:
    assert required_compliance_steps(title) == steps
    assert len(required_compliance_steps("1100")) == 6


def test_an_answer_never_shows_its_body_in_a_repr() -> None:
    answer = Answer(200, b'{"secret": "s3cr3t"}')
    assert "s3cr3t" not in repr(answer)
