"""The token goes away and comes back: HsmUnavailable meanwhile, working again after, no restart."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import anyio
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from appliance.errors import HsmUnavailable
from appliance.hsm import AsyncKeyStore, KeyPolicy, KeyStore
from tests.fixtures.softhsm import REPO_ROOT, SoftHsmToken

DIGEST = hashlib.sha256(b"recovery").digest()


def verify(spki: bytes, signature: bytes) -> None:
    public_key = serialization.load_der_public_key(spki)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


@contextmanager
def token_directory_removed(softhsm: SoftHsmToken) -> Iterator[None]:
    """The whole token directory gone: SoftHSM cannot even initialise until it is back."""
    parked = softhsm.token_dir.with_name("tokens.removed")
    softhsm.token_dir.rename(parked)
    try:
        yield
    finally:
        parked.rename(softhsm.token_dir)


def every_operation(store: KeyStore, device_id: uuid.UUID) -> dict[str, Callable[[], object]]:
    return {
        "probe": store.probe,
        "sign": lambda: store.sign_digest(device_id, DIGEST),
        "has": lambda: store.has_device_key(device_id),
        "list": store.list_device_keys,
        "public key": lambda: store.public_key(device_id),
        "destroy": lambda: store.destroy_device_key(uuid.uuid4()),
        "generate": lambda: store.generate_device_key(uuid.uuid4(), KeyPolicy.SEALED),
        "seal": lambda: store.encrypt_secret(b"secret"),
        "check": store.check,
    }


OPERATIONS = ["probe", "sign", "has", "list", "public key", "destroy", "generate", "seal", "check"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("disappearance", ["token vanished", "token directory removed"])
def test_first_call_after_the_token_went_fails_unavailable_and_the_next_after_it_is_back_works(
    keystore: KeyStore, softhsm: SoftHsmToken, disappearance: str, operation: str
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    verify(spki, keystore.sign_digest(device_id, DIGEST))  # a live connection with a cached handle
    keystore.probe()
    gone: AbstractContextManager[None] = (
        softhsm.vanished() if disappearance == "token vanished" else token_directory_removed(softhsm)
    )

    with gone:
        # Never "no such key", False or an empty list: the token is not there to ask.
        with pytest.raises(HsmUnavailable) as failure:
            every_operation(keystore, device_id)[operation]()
        assert softhsm.module in str(failure.value)
        with pytest.raises(HsmUnavailable):  # and the calls after it, through a reconnect
            keystore.probe()

    keystore.probe()
    verify(spki, keystore.sign_digest(device_id, DIGEST))
    assert keystore.has_device_key(device_id)
    assert device_id in {info.device_id for info in keystore.list_device_keys()}
    assert keystore.destroy_device_key(device_id)


def test_token_gone_and_back_between_two_calls_costs_no_failed_call(
    keystore: KeyStore, softhsm: SoftHsmToken
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    verify(spki, keystore.sign_digest(device_id, DIGEST))
    neighbour = KeyStore.open(softhsm.settings())
    try:
        with softhsm.vanished(), pytest.raises(HsmUnavailable):
            neighbour.probe()  # the module in this process saw the token go; `keystore` was idle

        verify(spki, keystore.sign_digest(device_id, DIGEST))
        neighbour.probe()
    finally:
        neighbour.close()
    assert keystore.destroy_device_key(device_id)


def test_async_probe_follows_the_token(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    """What /health/ready sees: unavailable while the token is gone, ready again after."""

    async def probe_states() -> list[str]:
        keys = AsyncKeyStore(keystore)
        states = []
        for phase in ("before", "gone", "back"):
            try:
                if phase == "gone":
                    with softhsm.vanished():
                        await keys.probe()
                else:
                    await keys.probe()
            except HsmUnavailable:
                states.append(f"{phase}: unavailable")
            else:
                states.append(f"{phase}: ready")
        return states

    assert anyio.run(probe_states) == ["before: ready", "gone: unavailable", "back: ready"]


def test_store_used_in_a_forked_child_reopens_the_module_there(softhsm: SoftHsmToken) -> None:
    script = """
import hashlib, os, sys, uuid, msgspec
from appliance.config import HsmSettings
from appliance.hsm import KeyPolicy, KeyStore
store = KeyStore.open(msgspec.json.decode(sys.argv[1], type=HsmSettings))
device_id = uuid.uuid4()
store.generate_device_key(device_id, KeyPolicy.SEALED)
digest = hashlib.sha256(b"fork").digest()
store.sign_digest(device_id, digest)
child = os.fork()
if child == 0:
    try:
        store.sign_digest(device_id, digest)
        store.probe()
    except BaseException as exc:
        print(f"child: {exc!r}", flush=True)
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(child, 0)
store.sign_digest(device_id, digest)  # the child's re-initialisation does not reach the parent
assert store.destroy_device_key(device_id)
store.close()
sys.exit(os.waitstatus_to_exitcode(status))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, msgspec.json.encode(softhsm.settings()).decode()],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
