"""The service as systemd runs it: readiness, watchdog, orderly stop, health while the token comes and goes.

Each test gives the service process a NOTIFY_SOCKET of its own (a datagram socket in a temporary
directory) and reads what arrives, as systemd would.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.api.health import PROBE_CACHE_SECONDS
from tests.fixtures.service import VAT, RunningService, prepare_service, registration_body
from tests.fixtures.softhsm import create_token

WATCHDOG_SECONDS = 1.0


class NotifySocket:
    """What systemd would hear from the service, with the time each message arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def next_message(self, timeout: float) -> tuple[float, set[str]] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return time.monotonic(), set(data.decode().splitlines())

    def wait_for(self, assignment: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.next_message(remaining)
            if message is not None and assignment in message[1]:
                return message[0]
        raise AssertionError(f"{assignment} did not arrive within {timeout} s")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def daemon(emulator: Any, tmp_path: Path, notify_socket: NotifySocket) -> Iterator[RunningService]:
    """A service started the way systemd starts it, with its own token, registry and NOTIFY_SOCKET."""
    token = create_token(tmp_path / "softhsm", "zatca-daemon")
    running = prepare_service(token, emulator, tmp_path / "daemon", read_timeout=30.0)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_socket.path),
        "WATCHDOG_USEC": str(int(WATCHDOG_SECONDS * 1_000_000)),
    }
    running.start(env=env)
    yield running
    running.stop()


def test_ready_is_sent_only_once_the_service_can_serve(
    daemon: RunningService, notify_socket: NotifySocket
) -> None:
    notify_socket.wait_for("READY=1", timeout=30)
    # The moment systemd hears READY=1, readiness (token signs, registry answers) already holds.
    ready = httpx.get(f"{daemon.base_url}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert {check["name"] for check in ready.json()["checks"]} == {"token", "registry"}


def test_watchdog_pings_arrive_at_half_the_interval(
    daemon: RunningService, notify_socket: NotifySocket
) -> None:
    notify_socket.wait_for("READY=1", timeout=30)
    pings = [notify_socket.wait_for("WATCHDOG=1", timeout=WATCHDOG_SECONDS) for _ in range(6)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    # systemd restarts a service whose pings are WATCHDOG_SECONDS apart; half the interval leaves
    # a margin for a busy machine.
    assert all(gap < WATCHDOG_SECONDS for gap in gaps), gaps


def test_sigterm_lets_a_slow_registration_finish_then_exits_0(
    daemon: RunningService, notify_socket: NotifySocket, emulator: Any
) -> None:
    notify_socket.wait_for("READY=1", timeout=30)
    body = registration_body()
    body["OTP"] = emulator.mint_otp("Simulation", VAT)
    emulator.inject_fault("latency", count=1, seconds=3.0)
    outcome: dict[str, httpx.Response] = {}

    def register() -> None:
        with daemon.client() as client:
            outcome["response"] = client.post("/v1/Devices/Register", json=body)

    worker = threading.Thread(target=register)
    worker.start()
    deadline = time.monotonic() + 20
    while not any(row["status"] == "pending" for row in daemon.registry_rows().values()):
        assert time.monotonic() < deadline, "the registration never started"
        time.sleep(0.02)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    notify_socket.wait_for("STOPPING=1", timeout=5)
    worker.join(timeout=60)
    assert outcome["response"].status_code == 200, outcome["response"].text
    assert daemon.process.wait(timeout=60) == 0
    device_id = outcome["response"].json()["deviceId"]
    assert daemon.registry_rows()[device_id]["status"] == "active"


def _ready_until(service: RunningService, status: int) -> httpx.Response:
    """Readiness, polled until it reports `status`: the token probe is cached for a short interval."""
    deadline = time.monotonic() + PROBE_CACHE_SECONDS + 5
    while (answer := httpx.get(f"{service.base_url}/health/ready", timeout=10)).status_code != status:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    return answer


def test_readiness_follows_the_token_without_a_restart(service: RunningService, service_token: Any) -> None:
    assert httpx.get(f"{service.base_url}/health/ready", timeout=10).status_code == 200
    with service_token.vanished():
        gone = _ready_until(service, 503)
        token_check = next(check for check in gone.json()["checks"] if check["name"] == "token")
        assert token_check["ok"] is False and token_check["detail"]
        assert httpx.get(f"{service.base_url}/health/live", timeout=10).status_code == 200
    _ready_until(service, 200)


def test_metrics_are_prometheus_text(service: RunningService, emulator: Any) -> None:
    body = registration_body(environment="Development")
    with service.client() as client:
        assert client.post("/v1/Devices/Register", json=body).status_code == 200
    text = httpx.get(f"{service.base_url}/metrics", timeout=10).text
    for family in (
        'zatca_appliance_registrations_total{environment="Development",format="Xml",outcome="success"}',
        'zatca_appliance_zatca_request_seconds_count{endpoint="compliance-csid",status="200"}',
        "zatca_appliance_token_device_keys ",
        'zatca_appliance_audit_records_total{event="key.generated"}',
        'zatca_appliance_hsm_operation_seconds_count{operation="generate_device_key"}',
        'zatca_appliance_hsm_operation_seconds_count{operation="sign_digest"}',
    ):
        assert family in text, family


def test_request_ids_are_echoed_and_logged(service: RunningService) -> None:
    response = httpx.get(
        f"{service.base_url}/health/live", headers={"X-Request-ID": "pos-17.abc"}, timeout=10
    )
    assert response.headers["x-request-id"] == "pos-17.abc"
    generated = httpx.get(f"{service.base_url}/health/live", headers={"X-Request-ID": "bad\tid"}, timeout=10)
    assert generated.headers["x-request-id"] != "bad\tid" and len(generated.headers["x-request-id"]) == 32
    assert '"request_id": "pos-17.abc"' in service.log_path.read_text(encoding="utf-8")
