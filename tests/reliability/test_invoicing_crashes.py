"""kill -9 during 8-client invoicing, 20 times: the chain survives every crash.

A private service (own token and registry) signs Model invoices for one device from 8 concurrent
clients and is killed with SIGKILL after a random number of answers (seeded; set
ZATCA_RELIABILITY_SEED to replay), then started again. After each restart, read from the registry
file itself:

- ICVs are 1..N with no reuse and no gap, each PIH the previous document's hash;
- every invoice a client was answered for is stored, with the hash and ICV it was told;
- every stored invoice is delivered (a final status) or pending with its outbox entry;
- `invoices verify-chain` (hashes recomputed, stamps verified) and `audit verify` pass.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import sqlite3
import threading
from dataclasses import dataclass
from functools import partial

import httpx
import msgspec
import pytest

from appliance.config import InvoicingSettings
from appliance.invoices import INITIAL_PIH
from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import RunningService, cli, write_config
from tests.integration.test_registration_e2e import register
from tests.reliability.fleet import Fleet
from tests.reliability.support import wait_until
from tests.reliability.tally import TALLY
from tests.support.invoice_models import SIX_KINDS, model

CRASHES = 20
CLIENTS = 8
FINAL = {"Reported", "ReportedWithWarnings", "Cleared", "ClearedWithWarnings", "Rejected"}


@dataclass(frozen=True)
class Answered:
    uuid: str
    icv: int
    invoice_hash: str


class InvoiceStream:
    """8 clients posting invoices to one device until told to stop (or the service dies)."""

    def __init__(self, service: RunningService, device_id: str, rng: random.Random) -> None:
        self._service = service
        self._device_id = device_id
        self._kinds = [SIX_KINDS[rng.randrange(6)] for _ in range(CLIENTS)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answered: list[Answered] = []
        self.cut_off = 0
        self.unexpected: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def answers(self) -> int:
        with self._lock:
            return len(self.answered)

    def _run(self, index: int) -> None:
        invoice_type, kind = self._kinds[index]
        with self._service.client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(
                        f"/v1/Devices/{self._device_id}/Invoices", json=model(kind, invoice_type)
                    )
                except httpx.TransportError:
                    with self._lock:
                        self.cut_off += 1
                    return
                with self._lock:
                    if response.status_code == 201:
                        body = response.json()
                        self.answered.append(Answered(body["uuid"], body["icv"], body["invoiceHash"]))
                    else:
                        self.unexpected.append(f"{response.status_code}: {response.text[:300]}")


def stored_chain(service: RunningService, device_id: str) -> tuple[list[sqlite3.Row], set[int]]:
    # One read transaction: the running outbox may deliver (and dequeue) between two reads.
    connection = sqlite3.connect(f"file:{service.registry_path}?mode=ro", uri=True, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("BEGIN")
        rows = connection.execute(
            "SELECT seq, position, icv, uuid, invoice_hash, pih, status FROM invoices"
            " WHERE device_id = ? ORDER BY position",
            (device_id,),
        ).fetchall()
        waiting = {seq for (seq,) in connection.execute("SELECT invoice_seq FROM invoice_outbox")}
        connection.execute("COMMIT")
    finally:
        connection.close()
    return rows, waiting


def check_chain(service: RunningService, device_id: str, answered: list[Answered]) -> int:
    rows, waiting = stored_chain(service, device_id)
    assert [row["icv"] for row in rows] == list(range(1, len(rows) + 1)), "ICV reused or skipped"
    assert [row["position"] for row in rows] == [row["icv"] for row in rows]
    previous = INITIAL_PIH
    for row in rows:
        assert row["pih"] == previous, f"PIH of ICV {row['icv']}"
        previous = row["invoice_hash"]
        if row["status"] == "Pending":
            assert row["seq"] in waiting, f"ICV {row['icv']} is Pending without an outbox entry"
        else:
            assert row["status"] in FINAL and row["seq"] not in waiting, (row["icv"], row["status"])
    by_uuid = {row["uuid"]: row for row in rows}
    for answer in answered:
        found = by_uuid.get(answer.uuid)
        assert found is not None, f"answered invoice {answer.uuid} (ICV {answer.icv}) was lost"
        assert (found["icv"], found["invoice_hash"]) == (answer.icv, answer.invoice_hash), answer
    config = str(service.config_path)
    chain = cli("invoices", "verify-chain", "--config", config, "--device-id", device_id, check=False)
    assert chain.returncode == 0, chain.stdout + chain.stderr
    audit = cli("audit", "verify", "--config", config, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    TALLY.records_checked += len(rows)
    return len(rows)


def answered_at_least(stream: InvoiceStream, target: int) -> bool:
    return stream.answers() >= target


def kill(service: RunningService) -> None:
    assert service.process is not None
    os.kill(service.process.pid, signal.SIGKILL)
    TALLY.faults_injected += 1
    service.process.wait(timeout=30)
    service.process = None


@pytest.mark.slow
def test_kill_nine_during_invoicing_then_restart(fleet: Fleet, emulator: EmulatorProcess) -> None:
    seed = int(os.environ.get("ZATCA_RELIABILITY_SEED", secrets.randbits(32)))
    print(f"\ninvoicing crash test seed {seed} (ZATCA_RELIABILITY_SEED)")
    rng = random.Random(seed)
    private = fleet.prepare("invoicing-crashes")
    service = private.service
    service.config = msgspec.structs.replace(
        service.config,
        invoicing=InvoicingSettings(outbox_poll_seconds=0.2, retry_base_seconds=0.2, retry_max_seconds=1.0),
    )
    write_config(service.config_path, service.config)
    service.start()
    response = register(service, emulator, invoice_format="Model")
    assert response.status_code == 200, response.text
    device_id = response.json()["deviceId"]

    answered: list[Answered] = []
    cut_off = 0
    stored = 0
    for crash in range(CRASHES):
        stream = InvoiceStream(service, device_id, rng)
        target = rng.randint(1, 3 * CLIENTS)
        stream.start()
        try:
            wait_until(partial(answered_at_least, stream, target), f"{target} answers (crash {crash})")
            kill(service)
        finally:
            stream.join()
        assert not stream.unexpected, stream.unexpected[:3]
        answered += stream.answered
        cut_off += stream.cut_off
        service.start()
        TALLY.crashes_survived += 1
        stored = check_chain(service, device_id, answered)
        print(
            f"crash {crash + 1:2d} after {target} answers: {len(stream.answered)} answered,"
            f" {stream.cut_off} cut off; {stored} invoices in the chain"
        )

    with service.client() as client:

        def delivered() -> bool:
            page = client.get(f"/v1/Devices/{device_id}/Invoices", params={"status": "Pending", "limit": 1})
            total: int = page.json()["total"]
            return total == 0

        wait_until(delivered, "every invoice delivered after the last restart", timeout=60)
    assert stored >= len(answered) and cut_off, (stored, len(answered), cut_off)
    print(f"{CRASHES} crashes: {len(answered)} answered, {stored} stored, {cut_off} requests cut off")
