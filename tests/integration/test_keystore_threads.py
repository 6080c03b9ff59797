"""Many threads in the token at once: 8 signing, 4 generating keys, zero errors, a clean token after.

With python-pkcs11's own C_Initialize(NULL), SoftHSM runs without locks and this workload kills
the process (SIGSEGV/SIGABRT, pkcs11-notes.md §5). A crash is therefore also checked in a
fresh process, which is how the service starts: `python -m tests.integration.test_keystore_threads`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from appliance.config import HsmSettings
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import REPO_ROOT, SoftHsmToken

SIGNING_THREADS = 8
KEYGEN_THREADS = 4
SIGNATURES_PER_THREAD = 40
KEYS_PER_KEYGEN_THREAD = 5
SUBPROCESS_ROUNDS = 20
PREHASHED_ECDSA = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


@dataclass
class RoundResult:
    errors: list[str] = field(default_factory=list)
    signatures: int = 0
    generated: dict[uuid.UUID, bytes] = field(default_factory=dict)


def stress_round(store: KeyStore) -> RoundResult:
    """One round; every signature is verified against its own key, so crossed sessions show up."""
    result = RoundResult()
    lock = threading.Lock()
    signers = {
        device_id: store.generate_device_key(device_id, KeyPolicy.SEALED)
        for device_id in _ids(SIGNING_THREADS)
    }
    start = threading.Barrier(SIGNING_THREADS + KEYGEN_THREADS)

    def sign(device_id: uuid.UUID, spki: bytes) -> None:
        public_key = serialization.load_der_public_key(spki)
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        start.wait()
        for index in range(SIGNATURES_PER_THREAD):
            digest = hashlib.sha256(f"{device_id}/{index}".encode()).digest()
            public_key.verify(store.sign_digest(device_id, digest), digest, PREHASHED_ECDSA)
            with lock:
                result.signatures += 1

    def generate(thread_index: int) -> None:
        start.wait()
        for index in range(KEYS_PER_KEYGEN_THREAD):
            device_id = uuid.uuid4()
            policy = KeyPolicy.EXPORTABLE if (thread_index + index) % 2 else KeyPolicy.SEALED
            spki = store.generate_device_key(device_id, policy)
            with lock:
                result.generated[device_id] = spki

    def run(target: Callable[..., None], *arguments: object) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*arguments)
            except BaseException as exc:  # every failure counts; none may pass silently
                with lock:
                    result.errors.append(f"{target.__name__}: {exc!r}")

        return threading.Thread(target=guarded)

    threads = [run(sign, device_id, spki) for device_id, spki in signers.items()]
    threads += [run(generate, index) for index in range(KEYGEN_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    result.errors += [f"{thread.name} still running" for thread in threads if thread.is_alive()]

    listed = {info.device_id for info in store.list_device_keys()}
    everything = {**signers, **result.generated}
    result.errors += [
        f"{device_id} missing from the listing" for device_id in everything if device_id not in listed
    ]
    result.errors += [
        f"{device_id}: public key changed"
        for device_id, spki in result.generated.items()
        if store.public_key(device_id) != spki
    ]
    result.errors += [
        f"{device_id} not destroyed" for device_id in everything if not store.destroy_device_key(device_id)
    ]
    return result


def _ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def test_signing_and_keygen_threads_at_once(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    result = stress_round(keystore)

    assert result.errors == []
    assert result.signatures == SIGNING_THREADS * SIGNATURES_PER_THREAD
    assert len(result.generated) == KEYGEN_THREADS * KEYS_PER_KEYGEN_THREAD
    # The token lists cleanly afterwards: no half-made objects (pkcs11-notes.md §5.5), and the
    # appliance's keys are gone.
    listing = softhsm.pkcs11_tool("--list-objects", login=True)
    assert listing.returncode == 0, listing.stderr
    remaining = softhsm.listed_objects("privkey")
    assert not {device_id.hex for device_id in result.generated} & set(remaining)


def test_signing_threads_ride_out_a_token_outage(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    """Reconnects happen while other threads are inside the token: only HsmUnavailable, no crash."""
    signers = {device_id: keystore.generate_device_key(device_id, KeyPolicy.SEALED) for device_id in _ids(6)}
    progress = threading.Condition()
    outcomes: dict[uuid.UUID, list[str]] = {device_id: [] for device_id in signers}
    stop = threading.Event()

    def sign_until_stopped(device_id: uuid.UUID) -> None:
        digest = hashlib.sha256(device_id.bytes).digest()
        while not stop.is_set():
            try:
                keystore.sign_digest(device_id, digest)
            except Exception as exc:  # recorded, then judged below
                outcome = type(exc).__name__
            else:
                outcome = "signed"
            with progress:
                outcomes[device_id].append(outcome)
                progress.notify_all()

    def wait_for(condition: Callable[[], bool]) -> None:
        with progress:
            assert progress.wait_for(condition, timeout=60), outcomes

    threads = [threading.Thread(target=sign_until_stopped, args=(device_id,)) for device_id in signers]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all("signed" in history for history in outcomes.values()))
        with softhsm.vanished():
            marks = {device_id: len(history) for device_id, history in outcomes.items()}
            wait_for(lambda: all(len(outcomes[device_id]) > marks[device_id] + 2 for device_id in outcomes))
        marks = {device_id: len(history) for device_id, history in outcomes.items()}
        wait_for(lambda: all("signed" in outcomes[device_id][marks[device_id] :] for device_id in outcomes))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    seen = {outcome for history in outcomes.values() for outcome in history}
    assert seen == {"signed", "HsmUnavailable"}
    for device_id in signers:
        assert keystore.destroy_device_key(device_id)


@pytest.mark.slow
def test_twenty_rounds_in_a_fresh_process(softhsm: SoftHsmToken) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.test_keystore_threads",
            "--rounds",
            str(SUBPROCESS_ROUNDS),
        ],
        cwd=REPO_ROOT,
        env=os.environ | {"ZATCA_TEST_HSM_SETTINGS": msgspec.json.encode(softhsm.settings()).decode()},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # A negative return code is the signal that killed it (-11 SIGSEGV, -6 SIGABRT).
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert f"{SUBPROCESS_ROUNDS} rounds, 0 errors" in result.stdout
    assert time.monotonic() - started < 120
    listing = softhsm.pkcs11_tool("--list-objects", login=True)
    assert listing.returncode == 0, listing.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description="KeyStore thread stress against a SoftHSM token")
    parser.add_argument("--rounds", type=int, default=SUBPROCESS_ROUNDS)
    arguments = parser.parse_args()
    settings = msgspec.json.decode(os.environ["ZATCA_TEST_HSM_SETTINGS"], type=HsmSettings)
    store = KeyStore.open(settings)
    errors: list[str] = []
    try:
        for round_number in range(1, arguments.rounds + 1):
            round_errors = stress_round(store).errors
            errors += [f"round {round_number}: {error}" for error in round_errors]
    finally:
        store.close()
    print("\n".join(errors))
    print(f"{arguments.rounds} rounds, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
