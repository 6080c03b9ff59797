"""kill -9 of the service at each onboarding step, then restart: nothing half-done survives.

The emulator holds one request (a `latency` fault limited to one endpoint) so that the kill lands
at a known step of a registration:

- compliance CSID obtained: the first compliance document is held (row `compliance`);
- checks half done: the fourth of six documents is held, three have passed;
- checks done: `POST /production/csids` is held (row `compliant`);
- production CSID obtained: the kill follows the emulator's issuance at once, so it lands while
  the service stores the answer or just after; either outcome must be consistent.

The registry's write for a step starts before the ZATCA call it precedes and ends moments later
(services/onboarding.py), so for the first three the kill also waits until the row shows the step.

After the restart: no appliance key without a live device, no active device without its key, no
device left between steps, the audit trail verifies, and the same EGS unit registers again.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import VAT, RunningService, cli, registration_body
from tests.reliability.fleet import Fleet, PrivateService
from tests.reliability.support import check_invariants, wait_until
from tests.reliability.tally import TALLY

HOLD_SECONDS = 30.0
QUICK_SECONDS = 0.001


@pytest.fixture(scope="module")
def crashing(module_fleet: Fleet) -> Iterator[PrivateService]:
    private = module_fleet.start("onboarding-crashes")
    yield private


def arrivals(emulator: EmulatorProcess, path_end: str) -> int:
    return sum(count for name, count in emulator.request_counts().items() if name.endswith(path_end))


def production_issued(emulator: EmulatorProcess) -> int:
    return emulator.log_text().count("issued production CSID")


def hold(emulator: EmulatorProcess, step: str) -> Callable[[], bool]:
    """Arrange the emulator for `step`; return the condition on which to kill."""
    if step == "compliance-csid-obtained":
        base = arrivals(emulator, "/compliance/invoices")
        emulator.inject_fault("latency", seconds=HOLD_SECONDS, endpoint="compliance-invoices")
        return lambda: arrivals(emulator, "/compliance/invoices") >= base + 1
    if step == "checks-half-done":
        base = arrivals(emulator, "/compliance/invoices")
        emulator.inject_fault("latency", count=3, seconds=QUICK_SECONDS, endpoint="compliance-invoices")
        emulator.inject_fault("latency", seconds=HOLD_SECONDS, endpoint="compliance-invoices")
        return lambda: arrivals(emulator, "/compliance/invoices") >= base + 4
    if step == "checks-done":
        base = arrivals(emulator, "/production/csids")
        emulator.inject_fault("latency", seconds=HOLD_SECONDS, endpoint="production-csids")
        return lambda: arrivals(emulator, "/production/csids") >= base + 1
    assert step == "production-csid-obtained"
    issued = production_issued(emulator)
    return lambda: production_issued(emulator) > issued


def row_status(service: RunningService, serial: str) -> str | None:
    rows = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    return str(rows[0]["status"]) if rows else None


def post_registration(service: RunningService, body: dict[str, Any]) -> int | None:
    try:
        with service.client(timeout=120) as client:
            return client.post("/v1/Devices/Register", json=body).status_code
    except httpx.TransportError:
        return None  # the service died under the request


@pytest.mark.slow
@pytest.mark.parametrize(
    "step", ["compliance-csid-obtained", "checks-half-done", "checks-done", "production-csid-obtained"]
)
def test_kill_nine_at_an_onboarding_step_then_restart(
    crashing: PrivateService, emulator: EmulatorProcess, step: str
) -> None:
    service = crashing.service
    if service.process is None:
        service.start()
    serial = f"SN-{uuid.uuid4().hex[:10]}"
    body = registration_body(environment="Simulation", invoice_format="Model", egs_serial=serial)
    body["OTP"] = emulator.mint_otp("Simulation", VAT)
    held = hold(emulator, step)
    # The row's status at the kill (the last step's is whichever the kill lands on).
    expected = {"checks-done": "compliant", "production-csid-obtained": None}.get(step, "compliance")

    def kill_now() -> bool:
        return held() and (expected is None or row_status(service, serial) == expected)

    with ThreadPoolExecutor(max_workers=1) as pool:
        answer: Future[int | None] = pool.submit(post_registration, service, body)
        wait_until(kill_now, f"the registration to reach {step}", timeout=60)
        assert service.process is not None
        os.kill(service.process.pid, signal.SIGKILL)
        service.process.wait(timeout=30)
        service.process = None
        TALLY.faults_injected += 1
        status = answer.result(timeout=60)
    emulator.clear_faults()
    (row,) = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    print(f"\n{step}: killed with the row {row['status']}, the client saw {status}")
    if expected is not None:
        assert status is None
        assert row["status"] == expected

    service.start()  # start-up reconciliation runs before the service answers
    TALLY.crashes_survived += 1
    # The full pass runs in the background right after start-up; wait until it has looked.
    check_invariants(service, crashing.token)
    (row,) = [row for row in service.registry_rows().values() if row["egs_serial"] == serial]
    assert row["status"] in ("failed", "active")
    if row["status"] == "failed":
        assert row["failure_code"] == "Registration-Interrupted"
        again = registration_body(environment="Simulation", invoice_format="Model", egs_serial=serial)
        again["OTP"] = emulator.mint_otp("Simulation", VAT)
        with service.client() as client:
            retry = client.post("/v1/Devices/Register", json=again)
        assert retry.status_code == 200, retry.text
    else:
        assert row["credential_kind"] == "production"
    check_invariants(service, crashing.token)
    audit = cli("audit", "verify", "--config", str(service.config_path), check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
