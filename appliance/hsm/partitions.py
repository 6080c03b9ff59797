"""Where a device key lives when device keys are spread over several tokens ("partitions").

SoftHSM's file store makes every object look-up, and every destruction, cost time in proportion
to the objects in the token (pkcs11-notes.md §9: ~250 ms per look-up at 10,000 key pairs), and
real HSMs cap the objects per partition. With `hsm.partition_labels` set, each device key goes to
one of those tokens, chosen from its device id alone, so each of those costs is bounded by one
partition's size. The appliance's own objects (probe key, secret-box key) stay in the main token.

The choice depends only on the device id and the number of partitions: the list is fixed once
keys exist (adding a partition later would move where existing keys are looked for).
"""

from __future__ import annotations

import hashlib
import uuid


def partition_index(device_id: uuid.UUID, partitions: int) -> int:
    """0..partitions-1 for `device_id`; stable across processes, versions and platforms.

    Hashed rather than taken from the UUID's own bits, so ids that are not random (UUIDv1,
    sequential test ids) still spread evenly.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    digest = hashlib.sha256(device_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") % partitions
