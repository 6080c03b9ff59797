"""Token work that needs a process of its own: `python -m bench.token_worker populate|probe`.

populate  puts device key pairs straight into the token: C_GenerateKeyPair alone, with the
          product's own key template (`appliance.hsm.objects.generate_ec_key_pair`) in one
          logged-in session, so its timings are the raw token cost (the floor's key generation)
          without the KeyStore's lease, locks and public key read-back. With partitions, each
          key goes to the token `appliance.hsm.partitions` chooses for it, as the product does.
          It is the only bench code that touches python-pkcs11 directly, and it runs alone:
          SoftHSM must not create objects from two processes at once.
probe     measures the KeyStore as the service uses it, in a fresh process: open (module load,
          login), the first signature with an existing key (uncached look-up), signatures with
          the cached handle, a full listing (what start-up reconciliation does; it caches every
          handle), first and second signatures with other keys after it, and product key
          generation and destruction at the current token size. The first id in --ids-file is
          the key signed with before the listing; the others (at least one) after it.

Both print one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

import msgspec

from appliance.config import HsmSettings
from appliance.hsm import KeyPolicy, KeyStore, read_pin
from bench.fleet import device_label
from bench.stats import Summary, time_each, timed

_DIGEST = hashlib.sha256(b"benchmark invoice").digest()


class PopulateResult(msgspec.Struct):
    keys: int
    seconds: float
    each: Summary | None
    first_tenth: Summary | None
    last_tenth: Summary | None


class ProbeResult(msgspec.Struct):
    open_seconds: float
    first_sign_seconds: float
    cached_sign: Summary
    list_seconds: float
    listed_keys: int
    first_sign_after_listing: Summary  # other keys, handles cached by the listing, first use each
    second_sign_after_listing: Summary  # the same keys once more
    product_keygen: Summary
    destroy: Summary


def populate(settings: HsmSettings, device_ids: list[uuid.UUID]) -> PopulateResult:
    import pkcs11

    from appliance.hsm.objects import generate_ec_key_pair
    from appliance.hsm.partitions import partition_index

    if settings.softhsm_conf is not None:
        os.environ["SOFTHSM2_CONF"] = settings.softhsm_conf
    library = pkcs11.lib(os.path.realpath(settings.module))
    labels = settings.partition_labels or [settings.token_label or ""]
    pin = read_pin(settings)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # Login belongs to the process and token: one logged-in session per token.
        sessions = [
            stack.enter_context(library.get_token(token_label=label).open(rw=True, user_pin=pin))
            for label in labels
        ]
        durations = time_each(
            len(device_ids),
            lambda index: generate_ec_key_pair(
                sessions[partition_index(device_ids[index], len(sessions))],
                device_ids[index].bytes,
                device_label(device_ids[index]),
                extractable=False,
            ),
        )
    tenth = max(1, len(durations) // 10)
    return PopulateResult(
        keys=len(device_ids),
        seconds=time.perf_counter() - started,
        each=Summary.of(durations) if durations else None,
        first_tenth=Summary.of(durations[:tenth]) if durations else None,
        last_tenth=Summary.of(durations[-tenth:]) if durations else None,
    )


def probe(settings: HsmSettings, existing: list[uuid.UUID], signs: int, keygens: int) -> ProbeResult:
    store, open_seconds = timed(lambda: KeyStore.open(settings))
    try:
        _, first_sign = timed(lambda: store.sign_digest(existing[0], _DIGEST))
        cached = time_each(signs, lambda _: store.sign_digest(existing[0], _DIGEST))
        listed, list_seconds = timed(store.list_device_keys)
        others = existing[1:]
        first_after_listing = time_each(len(others), lambda index: store.sign_digest(others[index], _DIGEST))
        second_after_listing = time_each(len(others), lambda index: store.sign_digest(others[index], _DIGEST))
        new_ids = [uuid.uuid4() for _ in range(keygens)]
        generated = time_each(
            keygens,
            lambda index: store.generate_device_key(
                new_ids[index], KeyPolicy.SEALED, device_label(new_ids[index])
            ),
        )
        destroyed = time_each(keygens, lambda index: store.destroy_device_key(new_ids[index]))
    finally:
        store.close()
    return ProbeResult(
        open_seconds=open_seconds,
        first_sign_seconds=first_sign,
        cached_sign=Summary.of(cached),
        list_seconds=list_seconds,
        listed_keys=len(listed),
        first_sign_after_listing=Summary.of(first_after_listing),
        second_sign_after_listing=Summary.of(second_after_listing),
        product_keygen=Summary.of(generated),
        destroy=Summary.of(destroyed),
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.token_worker")
    parser.add_argument("action", choices=["populate", "probe"])
    parser.add_argument("--settings", required=True, help="HsmSettings as JSON")
    parser.add_argument("--ids-file", type=Path, required=True, help="device UUIDs, one a line")
    parser.add_argument("--signs", type=int, default=200)
    parser.add_argument("--keygens", type=int, default=5)
    args = parser.parse_args()
    settings = msgspec.json.decode(args.settings, type=HsmSettings)
    device_ids = [uuid.UUID(line) for line in args.ids_file.read_text(encoding="ascii").split()]
    result: PopulateResult | ProbeResult
    if args.action == "populate":
        result = populate(settings, device_ids)
    else:
        result = probe(settings, device_ids, args.signs, args.keygens)
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
