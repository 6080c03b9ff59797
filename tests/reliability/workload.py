"""Client threads that keep registering devices, as a POS fleet would, recording every outcome."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import VAT, RunningService, registration_body

REGISTER = "/v1/Devices/Register"
ENVIRONMENTS = ("Simulation", "Development", "Production")
INVOICE_FORMATS = ("Model", "Xml", "Pdf")


@dataclass(frozen=True)
class Outcome:
    serial: str
    environment: str
    status: int | None  # None: the connection broke, the outcome is unknown to the client
    answer: dict[str, Any] | None


@dataclass
class RegistrationStream:
    """`clients` threads register until `stop` is set or their connection breaks.

    Clients come in pairs that send the same EGS serials in the same order, so the duplicate
    rule is exercised under concurrency (one of a pair gets 200, the other 409).
    """

    service: RunningService
    emulator: EmulatorProcess
    clients: int
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._guarded, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def join(self, timeout: float = 60.0) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "a client thread did not stop"
        if self._errors:
            raise self._errors[0]

    def count(self, *statuses: int | None) -> int:
        with self._lock:
            return sum(1 for outcome in self.outcomes if outcome.status in statuses)

    def _guarded(self, index: int) -> None:
        try:
            self._run(index)
        except BaseException as exc:
            self._errors.append(exc)

    def _run(self, index: int) -> None:
        pair = index // 2
        with self.service.client(timeout=60) as client:
            sequence = 0
            while not self.stop.is_set():
                environment = ENVIRONMENTS[(pair + sequence) % len(ENVIRONMENTS)]
                serial = f"CR-{self.tag}-{pair}-{sequence}"
                body = registration_body(
                    environment=environment,
                    egs_serial=serial,
                    invoice_format=INVOICE_FORMATS[sequence % len(INVOICE_FORMATS)],
                )
                if environment != "Development":
                    body["OTP"] = self.emulator.mint_otp(environment, VAT)
                sequence += 1
                try:
                    response = client.post(REGISTER, json=body)
                except httpx.TransportError:
                    self._record(Outcome(serial, environment, None, None))
                    return
                self._record(Outcome(serial, environment, response.status_code, response.json()))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
