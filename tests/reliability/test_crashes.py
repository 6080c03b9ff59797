"""kill -9 at random moments during concurrent registrations; start-up reconciliation repairs.

A private service (own token and registry) takes a stream of concurrent registrations while
the emulator answers slowly (so kills land while requests wait for ZATCA, as well as during key
generation and bookkeeping). It is killed with SIGKILL, started again, and then:

- the invariants hold (every appliance key has a row, no active row without its key, no two
  live devices for one unit, no pending row, no failed row with a key);
- every client that got 200 finds its device active with the csid it was given.

The moment of each kill is drawn from a seeded RNG (printed; set ZATCA_RELIABILITY_SEED to
replay): after a number of registrations reached ZATCA, after a number of answers, or as soon
as a registration is pending.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import RunningService
from tests.reliability.fleet import Fleet
from tests.reliability.support import check_invariants, compliance_requests, pending_rows, wait_until
from tests.reliability.tally import TALLY
from tests.reliability.workload import Outcome, RegistrationStream

CRASHES = 24
CLIENTS = 8
ZATCA_LATENCY_SECONDS = 0.2


def kill_trigger(
    rng: random.Random, stream: RegistrationStream, service: RunningService, emulator: EmulatorProcess
) -> tuple[str, Callable[[], bool]]:
    kind = rng.choice(("at-zatca", "after-answers", "while-pending"))
    if kind == "at-zatca":
        target = compliance_requests(emulator) + rng.randint(1, 3 * CLIENTS)
        return f"{kind}>={target}", lambda: compliance_requests(emulator) >= target
    if kind == "after-answers":
        answers = rng.randint(1, 3 * CLIENTS)
        return f"{kind}>={answers}", lambda: stream.count(200, 409) >= answers
    return kind, lambda: bool(pending_rows(service))


def assert_device_active_with_csid(service: RunningService, outcome: Outcome, rows: dict[str, Any]) -> None:
    assert outcome.answer is not None
    device_id, csid = outcome.answer["deviceId"], outcome.answer["csid"]
    with service.client() as client:
        device = client.get(f"/v1/Devices/{device_id}")
    assert device.status_code == 200, device.text
    assert device.json()["status"] == "active", (outcome, device.json())
    assert rows[device_id]["binary_security_token"] == csid, outcome


@pytest.mark.slow
def test_kill_nine_during_registrations_then_restart(fleet: Fleet, emulator: EmulatorProcess) -> None:
    seed = int(os.environ.get("ZATCA_RELIABILITY_SEED", secrets.randbits(32)))
    print(f"\ncrash test seed {seed} (ZATCA_RELIABILITY_SEED)")
    rng = random.Random(seed)
    private = fleet.start("crashing")
    service = private.service
    successes: list[Outcome] = []
    interrupted = 0
    for crash in range(CRASHES):
        emulator.clear_faults()
        emulator.inject_fault("latency", count=10_000, seconds=ZATCA_LATENCY_SECONDS)
        stream = RegistrationStream(service, emulator, CLIENTS)
        trigger_name, trigger = kill_trigger(rng, stream, service, emulator)
        stream.start()
        try:
            wait_until(trigger, f"kill trigger {trigger_name} (crash {crash})", timeout=60)
            assert service.process is not None
            os.kill(service.process.pid, signal.SIGKILL)
            TALLY.faults_injected += 1
            service.process.wait(timeout=30)
            service.process = None
        finally:
            stream.join()
        emulator.clear_faults()

        unexpected = [outcome for outcome in stream.outcomes if outcome.status not in (200, 409, None)]
        assert not unexpected, "\n".join(f"{o.serial}: {o.status} {o.answer}" for o in unexpected[:3])
        for outcome in stream.outcomes:
            if outcome.status == 409:
                assert outcome.answer is not None and outcome.answer["status"] == "Failed"
        service.start()  # start-up reconciliation runs before the service answers
        TALLY.crashes_survived += 1
        check_invariants(service, private.token)
        rows = service.registry_rows()
        new_successes = [outcome for outcome in stream.outcomes if outcome.status == 200]
        for outcome in new_successes:
            assert_device_active_with_csid(service, outcome, rows)
        successes += new_successes
        interrupted = sum(1 for row in rows.values() if row["failure_code"] == "Registration-Interrupted")
        print(
            f"crash {crash + 1:2d} ({trigger_name}): {len(stream.outcomes)} requests, "
            f"{len(new_successes)} registered, {stream.count(409)} duplicates refused, "
            f"{stream.count(None)} cut off; "
            f"{interrupted} interrupted registrations reconciled so far"
        )

    # A last look at every device a client was told about, after all the crashes.
    rows = service.registry_rows()
    for outcome in successes:
        assert_device_active_with_csid(service, outcome, rows)
    assert successes, "no registration succeeded between the crashes"
    assert interrupted, "no kill landed inside a registration; the windows are too narrow"
    print(
        f"{CRASHES} crashes survived: {len(successes)} devices registered and still active, "
        f"{interrupted} interrupted registrations reconciled, {len(rows)} registry rows"
    )
