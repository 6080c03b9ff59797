"""AsyncKeyStore: the KeyStore for async code, one worker-thread hop per call.

PKCS#11 calls block (a token keygen takes ~10 ms, a look-up in a large token far more), so none
runs on the event loop. All calls share one CapacityLimiter sized like the store's session
pool (hsm.worker_threads): more threads than sessions would only queue inside the store.
Cancellation does not abandon a call in the token; the thread finishes it.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from appliance.config import HsmSettings
from appliance.hsm.keystore import KeyStore
from appliance.hsm.models import DeviceKeyInfo, KeyPolicy, TokenCheck

T = TypeVar("T")


class AsyncKeyStore:
    """Same operations as KeyStore, as coroutines; `.store` is the synchronous store underneath."""

    def __init__(
        self,
        store: KeyStore,
        limiter: anyio.CapacityLimiter | None = None,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self.store = store
        self.limiter = limiter if limiter is not None else anyio.CapacityLimiter(store.worker_threads)
        # observe(operation, seconds) after each call, timed in the worker (token time, not queueing).
        self._observe = observe

    @classmethod
    async def open(cls, settings: HsmSettings, limiter: anyio.CapacityLimiter | None = None) -> AsyncKeyStore:
        store = await anyio.to_thread.run_sync(KeyStore.open, settings, limiter=limiter)
        return cls(store, limiter)

    @property
    def module_path(self) -> str:
        return self.store.module_path

    @property
    def token_label(self) -> str:
        return self.store.token_label

    async def _run(self, call: Callable[[], T], operation: str | None = None) -> T:
        return await anyio.to_thread.run_sync(self._timed(call, operation), limiter=self.limiter)

    def _timed(self, call: Callable[[], T], operation: str | None) -> Callable[[], T]:
        observe = self._observe
        if observe is None or operation is None:
            return call

        def timed() -> T:
            started = time.perf_counter()
            try:
                return call()
            finally:
                observe(operation, time.perf_counter() - started)

        return timed

    def signer_in_worker(self, device_id: uuid.UUID) -> Callable[[bytes], bytes]:
        """A synchronous, observed `sign_digest` for code that already runs on a worker thread
        (the CSR builder calls back into the token from inside its own thread hop)."""
        return lambda digest: self._timed(
            functools.partial(self.store.sign_digest, device_id, digest), "sign_digest"
        )()

    async def close(self) -> None:
        await self._run(self.store.close)

    async def generate_device_key(
        self, device_id: uuid.UUID, policy: KeyPolicy, label: str | None = None
    ) -> bytes:
        return await self._run(
            functools.partial(self.store.generate_device_key, device_id, policy, label), "generate_device_key"
        )

    async def public_key(self, device_id: uuid.UUID) -> bytes:
        return await self._run(functools.partial(self.store.public_key, device_id), "public_key")

    async def sign_digest(self, device_id: uuid.UUID, digest: bytes) -> bytes:
        return await self._run(functools.partial(self.store.sign_digest, device_id, digest), "sign_digest")

    async def export_private_key(self, device_id: uuid.UUID, expected_public_key: bytes | None = None) -> str:
        return await self._run(
            functools.partial(self.store.export_private_key, device_id, expected_public_key),
            "export_private_key",
        )

    async def destroy_device_key(self, device_id: uuid.UUID) -> bool:
        return await self._run(
            functools.partial(self.store.destroy_device_key, device_id), "destroy_device_key"
        )

    async def has_device_key(self, device_id: uuid.UUID) -> bool:
        return await self._run(functools.partial(self.store.has_device_key, device_id), "has_device_key")

    async def list_device_keys(self) -> list[DeviceKeyInfo]:
        return await self._run(self.store.list_device_keys, "list_device_keys")

    async def encrypt_secret(self, plaintext: bytes) -> bytes:
        return await self._run(functools.partial(self.store.encrypt_secret, plaintext), "encrypt_secret")

    async def decrypt_secret(self, blob: bytes) -> bytes:
        return await self._run(functools.partial(self.store.decrypt_secret, blob), "decrypt_secret")

    async def probe(self) -> None:
        await self._run(self.store.probe, "probe")

    async def check(self) -> TokenCheck:
        return await self._run(self.store.check)
