"""AsyncKeyStore: the same store for async code, one worker-thread hop per call."""

from __future__ import annotations

import hashlib
import uuid

import anyio
import anyio.lowlevel
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from appliance.hsm import AsyncKeyStore, KeyPolicy, KeyStore
from tests.fixtures.softhsm import SoftHsmToken


def test_concurrent_coroutines_sign_with_their_own_keys_through_the_shared_limiter(
    keystore: KeyStore,
) -> None:
    limiter = anyio.CapacityLimiter(3)
    keys = AsyncKeyStore(keystore, limiter)
    device_ids = [uuid.uuid4() for _ in range(4)]
    signatures: dict[tuple[uuid.UUID, int], bytes] = {}
    busiest = 0

    async def scenario() -> None:
        spkis = {
            device_id: await keys.generate_device_key(device_id, KeyPolicy.SEALED) for device_id in device_ids
        }

        signing_done = anyio.Event()

        async def watch_limiter() -> None:
            nonlocal busiest
            while not signing_done.is_set():
                busiest = max(busiest, int(limiter.borrowed_tokens))
                await anyio.lowlevel.checkpoint()

        async def sign(device_id: uuid.UUID, index: int) -> None:
            digest = hashlib.sha256(f"{device_id}/{index}".encode()).digest()
            signatures[device_id, index] = await keys.sign_digest(device_id, digest)

        async with anyio.create_task_group() as watcher:
            watcher.start_soon(watch_limiter)
            async with anyio.create_task_group() as tasks:
                for device_id in device_ids:
                    for index in range(10):
                        tasks.start_soon(sign, device_id, index)
            signing_done.set()

        for (device_id, index), signature in signatures.items():
            public_key = serialization.load_der_public_key(spkis[device_id])
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            digest = hashlib.sha256(f"{device_id}/{index}".encode()).digest()
            public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        listed = {info.device_id for info in await keys.list_device_keys()}
        assert set(device_ids) <= listed
        for device_id in device_ids:
            assert await keys.destroy_device_key(device_id)
            assert not await keys.has_device_key(device_id)

    anyio.run(scenario)
    assert len(signatures) == 40
    # The calls went through the limiter given (and never more of them at once than it allows).
    assert busiest == 3


def test_async_open_exposes_the_store_and_its_limiter(softhsm: SoftHsmToken) -> None:
    async def scenario() -> None:
        keys = await AsyncKeyStore.open(softhsm.settings())
        try:
            assert keys.store.worker_threads == softhsm.settings().worker_threads
            assert keys.limiter.total_tokens == keys.store.worker_threads
            assert keys.token_label == softhsm.label
            assert keys.module_path == softhsm.module
            sealed = await keys.encrypt_secret(b"async secret")
            assert await keys.decrypt_secret(sealed) == b"async secret"
            await keys.probe()
            assert (await keys.check()).ok
            device_id = uuid.uuid4()
            spki = await keys.generate_device_key(device_id, KeyPolicy.EXPORTABLE, "async-device")
            assert await keys.public_key(device_id) == spki
            assert "BEGIN EC PRIVATE KEY" in await keys.export_private_key(device_id)
            assert await keys.destroy_device_key(device_id)
        finally:
            await keys.close()

    anyio.run(scenario)
