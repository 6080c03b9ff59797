"""One lock per device, shared by every use case that reads a device's key and credentials and
then acts on them: invoicing (sign, chain, store), renewal (switch to the new key and CSID,
destroy the old key) and retirement (destroy the key). Holding it, a use case sees the device as
it stays until it lets go, so an invoice is never signed with a key that is being destroyed,
nor stored for a device that was just retired or renewed.

The locks are per process: the service is the only process that invoices or renews. The CLI's
`devices retire` runs in another process; the registry's state checks stop what it races with.
"""

from __future__ import annotations

import anyio


class DeviceLocks:
    def __init__(self) -> None:
        self._locks: dict[str, anyio.Lock] = {}

    def __call__(self, device_id: str) -> anyio.Lock:
        lock = self._locks.get(device_id)
        if lock is None:
            lock = self._locks[device_id] = anyio.Lock()
        return lock
