"""Device keys spread over several tokens ("partitions"), on real SoftHSM tokens.

Each key must be in the token its device id picks, and nowhere else; every operation on a key
must reach that token; listing, `hsm list` and reconciliation must see all of them; a partition
that is missing must stop the start, naming it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from appliance.config import HsmSettings
from appliance.errors import ConfigError, HsmUnavailable
from appliance.hsm import KeyPolicy, KeyStore
from appliance.hsm.partitions import partition_index
from appliance.hsm.provision import ensure_dev_token
from appliance.storage import SqliteRegistry
from tests.integration.test_reconcile import pending_row

DIGEST = hashlib.sha256(b"invoice").digest()
PARTITIONS = 3


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> HsmSettings:
    return ensure_dev_token(tmp_path_factory.mktemp("partitions"), "zatca-part", partitions=PARTITIONS)


@pytest.fixture(scope="module")
def partitioned(settings: HsmSettings) -> Iterator[KeyStore]:
    store = KeyStore.open(settings)
    yield store
    store.close()


def only(settings: HsmSettings, label: str) -> KeyStore:
    """A store on one token alone: what that token physically holds."""
    return KeyStore.open(msgspec.structs.replace(settings, token_label=label, partition_labels=[]))


def test_each_key_lives_in_the_partition_its_device_id_picks(
    settings: HsmSettings, partitioned: KeyStore
) -> None:
    labels = partitioned.partition_labels
    assert labels == [f"zatca-part-p{index:02d}" for index in range(PARTITIONS)]
    devices = [uuid.uuid4() for _ in range(12)]
    for device_id in devices:
        partitioned.generate_device_key(device_id, KeyPolicy.SEALED)
    for index, label in enumerate(labels):
        single = only(settings, label)
        try:
            held = {info.device_id for info in single.list_device_keys()}
        finally:
            single.close()
        expected = {device for device in devices if partition_index(device, PARTITIONS) == index}
        assert held & set(devices) == expected
    main = only(settings, partitioned.token_label)
    try:
        assert not {info.device_id for info in main.list_device_keys()} & set(devices)
    finally:
        main.close()
    # The union, from the partitioned store itself, is what `hsm list` and reconciliation see.
    assert set(devices) <= {info.device_id for info in partitioned.list_device_keys()}


def test_sign_export_and_destroy_reach_the_right_partition(partitioned: KeyStore) -> None:
    sealed, exportable = uuid.uuid4(), uuid.uuid4()
    spki = partitioned.generate_device_key(sealed, KeyPolicy.SEALED)
    exportable_spki = partitioned.generate_device_key(exportable, KeyPolicy.EXPORTABLE)
    assert partitioned.sign_digest(sealed, DIGEST)
    assert partitioned.public_key(sealed) == spki
    assert "EC PRIVATE KEY" in partitioned.export_private_key(exportable, exportable_spki)
    assert partitioned.has_device_key(sealed)
    assert partitioned.destroy_device_key(sealed)
    assert not partitioned.has_device_key(sealed)
    assert not partitioned.destroy_device_key(sealed)
    # The appliance's own keys stay in the main token.
    partitioned.probe()
    assert partitioned.decrypt_secret(partitioned.encrypt_secret(b"csid secret")) == b"csid secret"


def test_a_new_store_finds_keys_in_their_partitions(settings: HsmSettings, partitioned: KeyStore) -> None:
    device_id = uuid.uuid4()
    partitioned.generate_device_key(device_id, KeyPolicy.SEALED)
    again = KeyStore.open(settings)  # no cached handles: looked up in its partition
    try:
        assert again.sign_digest(device_id, DIGEST)
    finally:
        again.close()


def test_a_missing_partition_stops_the_start_naming_it(settings: HsmSettings) -> None:
    wrong = msgspec.structs.replace(settings, partition_labels=[*settings.partition_labels, "zatca-part-p99"])
    with pytest.raises(HsmUnavailable, match="zatca-part-p99"):
        KeyStore.open(wrong)


def test_the_main_token_cannot_also_be_a_partition(settings: HsmSettings) -> None:
    wrong = msgspec.structs.replace(settings, partition_labels=[settings.token_label or ""])
    with pytest.raises(ConfigError, match="partition_labels"):
        KeyStore.open(wrong)


def test_partition_choice_is_stable_and_even() -> None:
    # Fixed values: changing the rule would lose every key already placed by it.
    assert partition_index(uuid.UUID("00000000-0000-4000-8000-000000000000"), 16) == 8
    assert partition_index(uuid.UUID("ed22f1d8-e6a2-1118-9b58-d9a8f11e445f"), 16) == 1
    counts = [0] * 16
    for number in range(16_000):
        counts[partition_index(uuid.UUID(int=number), 16)] += 1
    assert min(counts) > 800 and max(counts) < 1200


class _Partitioned:
    """What `prepare_service` needs of a token: the settings that open it (here, with partitions)."""

    def __init__(self, settings: HsmSettings) -> None:
        self._settings = settings

    def settings(self) -> HsmSettings:
        return self._settings


def _held_by(settings: HsmSettings, device_id: uuid.UUID) -> bool:
    """Whether the partition chosen for `device_id` physically holds its key (a fresh store)."""
    label = settings.partition_labels[partition_index(device_id, len(settings.partition_labels))]
    single = only(settings, label)
    try:
        return single.has_device_key(device_id)
    finally:
        single.close()


def test_a_partitioned_service_starts_resolves_and_registers(tmp_path: Path, emulator: Any) -> None:
    """Start-up closes an interrupted registration (its key in a partition) before it answers;
    the orphan key in another partition goes in the full pass just after; registrations put
    their keys in their partitions."""
    from tests.fixtures.service import prepare_service, registration_body

    settings = ensure_dev_token(tmp_path / "token", "zatca-svc", partitions=PARTITIONS)
    service = prepare_service(
        _Partitioned(settings), emulator, tmp_path / "svc", storage={"reconcile_interval_seconds": 0}
    )
    interrupted, orphan = uuid.uuid4(), uuid.uuid4()
    store = KeyStore.open(settings)
    try:
        for device_id in (interrupted, orphan):
            store.generate_device_key(device_id, KeyPolicy.SEALED, f"zatca-device-{device_id}")
    finally:
        store.close()

    async def stage() -> None:
        async with await SqliteRegistry.open(service.config.storage.registry_path) as registry:
            await registry.create_pending(pending_row(interrupted, "SN-crashed", datetime.now(UTC)))

    anyio.run(stage)
    service.start()
    try:
        # Ready means the interrupted registration is closed and its key gone, at once.
        assert not _held_by(settings, interrupted)
        deadline = time.monotonic() + 30
        while _held_by(settings, orphan):
            assert time.monotonic() < deadline, "the orphan key in a partition was never destroyed"
            time.sleep(0.1)
        with service.client() as client:
            answer = client.post("/v1/Devices/Register", json=registration_body(environment="Development"))
        assert answer.status_code == 200, answer.text
    finally:
        service.stop()
    assert _held_by(settings, uuid.UUID(answer.json()["deviceId"]))

    async def status() -> str:
        async with await SqliteRegistry.open(service.config.storage.registry_path) as registry:
            return str((await registry.get(str(interrupted))).status)

    assert anyio.run(status) == "failed"
