"""ZATCA misbehaving, ZATCA unreachable, the token vanishing, a wrong PIN: refused cleanly, and
the registry and the token agree afterwards.

Each test injects its fault into the session emulator or a private service's own token, then
checks the invariants (tests.reliability.support.check_invariants) once the service is idle.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import VAT, RunningService, free_port, registration_body, write_config
from tests.reliability.fleet import Fleet, PrivateService
from tests.reliability.support import (
    assert_error_body,
    check_invariants,
    compliance_requests,
    rows_with_serials,
    wait_until,
    wait_until_idle,
)
from tests.reliability.tally import TALLY
from tests.reliability.workload import RegistrationStream

REGISTER = "/v1/Devices/Register"


@pytest.fixture(scope="module")
def faulty(module_fleet: Fleet) -> Iterator[PrivateService]:
    private = module_fleet.start("faulty")
    yield private
    wait_until_idle(private.service)
    check_invariants(private.service, private.token)


def register(service: RunningService, emulator: EmulatorProcess, body: dict[str, Any]) -> httpx.Response:
    if body["Environment"] != "Development":
        body = {**body, "OTP": emulator.mint_otp(body["Environment"], body["Organization"]["Vat"])}
    with service.client() as client:
        return client.post(REGISTER, json=body)


def serial() -> str:
    return f"SN-{uuid.uuid4().hex[:12]}"


def assert_active_with_csid(service: RunningService, device_id: str, csid: str) -> None:
    with service.client() as client:
        device = client.get(f"/v1/Devices/{device_id}")
    assert device.status_code == 200, device.text
    assert device.json()["status"] == "active"
    assert service.registry_rows()[device_id]["binary_security_token"] == csid


# ZATCA faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "failure_code"),
    [
        ("error-500", 502, None),
        ("timeout", 504, None),
        ("malformed-json", 502, None),
        ("wrong-key", 502, "ZATCA-Certificate-Mismatch"),
    ],
)
@pytest.mark.parametrize("environment", ["Simulation", "Production"])
def test_a_zatca_fault_fails_the_registration_and_leaves_no_key(
    faulty: PrivateService,
    emulator: EmulatorProcess,
    fault: str,
    status: int,
    failure_code: str | None,
    environment: str,
) -> None:
    body = registration_body(environment=environment, egs_serial=serial())
    body["OTP"] = emulator.mint_otp(environment, VAT)
    emulator.inject_fault(fault)
    TALLY.faults_injected += 1
    with faulty.service.client() as client:
        response = client.post(REGISTER, json=body)
    assert response.status_code == status, response.text
    assert_error_body(response)
    assert "csid" not in response.json() and "secret" not in response.text.lower()
    (row,) = rows_with_serials(faulty.service, [body["Device"]["EgsSerialNumber"]])
    assert row["status"] == "failed" and row["binary_security_token"] is None
    if failure_code is not None:
        assert row["failure_code"] == failure_code
    check_invariants(faulty.service, faulty.token)
    # ZATCA is back: the same device registers.
    retry = register(faulty.service, emulator, body)
    assert retry.status_code == 200, retry.text
    assert_active_with_csid(faulty.service, retry.json()["deviceId"], retry.json()["csid"])


def test_zatca_refusing_connections_is_502_and_other_environments_still_work(
    fleet: Fleet, emulator: EmulatorProcess
) -> None:
    closed_port = free_port()  # bound and released: nothing listens there
    urls = msgspec.structs.replace(emulator.base_urls(), production=f"http://127.0.0.1:{closed_port}/core")
    private = fleet.start("refused", base_urls=urls)
    TALLY.faults_injected += 1
    refused = register(
        private.service, emulator, registration_body(environment="Production", egs_serial=serial())
    )
    assert refused.status_code == 502, refused.text
    assert_error_body(refused)
    assert refused.json()["errorList"][0]["source"] == "Appliance"
    simulation = register(private.service, emulator, registration_body(environment="Simulation"))
    assert simulation.status_code == 200, simulation.text
    rows = private.service.registry_rows()
    assert sorted(row["status"] for row in rows.values()) == ["active", "failed"]
    check_invariants(private.service, private.token)


# The token -------------------------------------------------------------------------------------


def test_the_token_vanishing_during_a_stream_of_registrations(
    fleet: Fleet, emulator: EmulatorProcess
) -> None:
    private = fleet.start("vanishing")
    stream = RegistrationStream(private.service, emulator, clients=4)
    stream.start()
    try:
        wait_until(lambda: stream.count(200) >= 8, "registrations before the token vanishes")
        with private.token.vanished():
            TALLY.faults_injected += 1
            refused_before = stream.count(503)
            wait_until(lambda: stream.count(503) >= refused_before + 8, "refusals while the token is gone")
        registered_before = stream.count(200)
        wait_until(lambda: stream.count(200) >= registered_before + 8, "registrations once the token is back")
    finally:
        stream.join()
    unexpected = [outcome for outcome in stream.outcomes if outcome.status not in (200, 409, 503)]
    assert not unexpected, unexpected[:5]
    for outcome in stream.outcomes:
        if outcome.status == 503:
            assert outcome.answer is not None and outcome.answer["status"] == "Failed"
            assert outcome.answer["errorList"][0]["code"].startswith("HSM"), outcome.answer
    wait_until_idle(private.service)
    # Keys of registrations cut off by the vanishing may outlive their failed rows until the
    # reconciler runs; the rest must hold at once.
    check_invariants(private.service, private.token, failed_rows_keep_no_key=False)
    for outcome in stream.outcomes:
        if outcome.status == 200:
            assert outcome.answer is not None
            assert_active_with_csid(private.service, outcome.answer["deviceId"], outcome.answer["csid"])
    private.service.stop()
    private.service.start()
    check_invariants(private.service, private.token)


def test_the_token_vanishing_while_zatca_answers(fleet: Fleet, emulator: EmulatorProcess) -> None:
    """Key and CSR are made, ZATCA is thinking, the token goes: the registration must end failed
    (503), not stay pending with its key, and nothing may claim the certificate."""
    private = fleet.start("vanishing-late")
    emulator.inject_fault("latency", count=1, seconds=1.5)
    compliance = compliance_requests(emulator)
    body = registration_body(environment="Simulation", egs_serial=serial())
    body["OTP"] = emulator.mint_otp("Simulation", VAT)
    with ThreadPoolExecutor(max_workers=1) as pool, private.service.client() as client:
        answer = pool.submit(client.post, REGISTER, json=body)
        wait_until(lambda: compliance_requests(emulator) > compliance, "the registration to reach ZATCA")
        with private.token.vanished():
            TALLY.faults_injected += 1
            response = answer.result(timeout=60)
    assert response.status_code in (200, 503), response.text
    # The answer leaves only once the bookkeeping is done, so the row is final by now.
    (row,) = rows_with_serials(private.service, [body["Device"]["EgsSerialNumber"]])
    if response.status_code == 200:
        assert_active_with_csid(private.service, response.json()["deviceId"], response.json()["csid"])
    else:
        assert_error_body(response)
        assert row["status"] == "failed", row["status"]
    check_invariants(private.service, private.token, failed_rows_keep_no_key=False)


@pytest.mark.parametrize("pin", ["wrong-pin-0000", "x"])
def test_a_wrong_pin_stops_the_service_with_a_clear_error(fleet: Fleet, pin: str) -> None:
    private = fleet.prepare("wrong-pin")
    bad_pin_file = private.home / "wrong-pin"
    bad_pin_file.write_text(pin + "\n", encoding="utf-8")
    config = msgspec.structs.replace(
        private.service.config,
        hsm=msgspec.structs.replace(private.service.config.hsm, pin_file=str(bad_pin_file)),
    )
    write_config(private.service.config_path, config)
    TALLY.faults_injected += 1
    result = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "serve", "--config", str(private.service.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "PIN" in output, output
    assert "Traceback" not in output, output
    assert pin not in output
    # Nothing listens: the service never came up.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{private.service.base_url}/health/live", timeout=2)
    # The right PIN still works: a wrong one did not lock the token.
    write_config(private.service.config_path, private.service.config)
    private.service.start()
    check_invariants(private.service, private.token)
