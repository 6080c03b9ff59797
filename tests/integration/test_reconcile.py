"""`zatca-appliance devices reconcile` against a real token and registry, as after a crash.

The crash is staged exactly as the registration service leaves it when the process dies between
its steps: a `pending` row whose key exists, a row `failed` whose key survived, a key the
registry lost, and a key the appliance never made (another label), which must be left alone.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from appliance.config import AppConfig, StorageSettings
from appliance.domain import DeviceStatus, Environment, InvoiceFormat
from appliance.hsm import KeyPolicy, KeyStore
from appliance.storage import DeviceRecord, SqliteRegistry
from tests.fixtures.service import cli, write_config
from tests.fixtures.softhsm import create_token
from tests.support.pkcs11_tool import list_private_keys


def pending_row(device_id: uuid.UUID, egs_serial: str, created_at: datetime) -> DeviceRecord:
    return DeviceRecord(
        device_id=str(device_id),
        environment=Environment.SIMULATION,
        invoice_format=InvoiceFormat.MODEL,
        status=DeviceStatus.PENDING,
        vat="399999999900003",
        egs_serial=egs_serial,
        common_name=egs_serial,
        serial_number=f"1-ZatcaAppliance|2-1.0|3-{egs_serial}",
        organization_name="Tech Innovations Inc.",
        organization_unit="Riyadh Branch 2814",
        country="SA",
        location="Headquarters",
        industry="Retail",
        invoice_type="1100",
        key_label=f"zatca-device-{device_id}",
        key_id_hex=device_id.hex,
        created_at=created_at,
        updated_at=created_at,
    )


def test_reconcile_resolves_what_a_crash_leaves_behind(tmp_path: Path) -> None:
    token = create_token(tmp_path / "softhsm", "zatca-reconcile")
    config = AppConfig(hsm=token.settings(), storage=StorageSettings(data_dir=str(tmp_path / "data")))
    config_path = tmp_path / "config.yaml"
    write_config(config_path, config)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    interrupted, failed_with_key, orphan, foreign, fresh = (uuid.uuid4() for _ in range(5))

    store = KeyStore.open(config.hsm)
    try:
        for device_id in (interrupted, failed_with_key, orphan, fresh):
            store.generate_device_key(device_id, KeyPolicy.SEALED, f"zatca-device-{device_id}")
        store.generate_device_key(foreign, KeyPolicy.SEALED, "someone-elses-key")
    finally:
        store.close()

    async def stage() -> None:
        async with await SqliteRegistry.open(config.storage.registry_path) as registry:
            await registry.create_pending(pending_row(interrupted, "SN-crashed", long_ago))
            await registry.create_pending(pending_row(failed_with_key, "SN-failed", long_ago))
            await registry.mark_failed(str(failed_with_key), "Invalid-OTP", "ZATCA refused the OTP")
            # A registration still in flight beside the running service: too young to touch.
            await registry.create_pending(pending_row(fresh, "SN-in-flight", datetime.now(UTC)))

    anyio.run(stage)

    result = cli("devices", "reconcile", "--older-than", "600", "--config", str(config_path))
    assert "interrupted registrations marked failed: 1" in result.stdout
    assert "keys destroyed (failed or without a registry row): 3" in result.stdout
    assert "keys not created by the appliance (left alone): 1" in result.stdout

    left = {key.id_hex for key in list_private_keys(token).values()}
    assert left >= {foreign.hex, fresh.hex}
    assert not left & {interrupted.hex, failed_with_key.hex, orphan.hex}

    async def statuses() -> dict[str, str]:
        async with await SqliteRegistry.open(config.storage.registry_path) as registry:
            return {
                device_id: (await registry.get(device_id)).status
                for device_id in (str(interrupted), str(failed_with_key), str(fresh))
            }

    assert anyio.run(statuses) == {
        str(interrupted): "failed",
        str(failed_with_key): "failed",
        str(fresh): "pending",
    }
    verify = cli("audit", "verify", "--config", str(config_path))
    assert "intact" in verify.stdout
    shown = cli("audit", "show", "--config", str(config_path)).stdout
    assert "key.destroyed" in shown and "devices.reconciled" in shown


def test_an_active_device_whose_key_is_gone_is_reported(tmp_path: Path, emulator: Any) -> None:
    """Reconcile cannot invent a lost key: it says so and exits 1 so monitoring notices."""
    from tests.fixtures.service import prepare_service, registration_body

    token = create_token(tmp_path / "softhsm", "zatca-lost-key")
    service = prepare_service(token, emulator, tmp_path / "svc")
    service.start()
    try:
        with service.client() as client:
            answer = client.post("/v1/Devices/Register", json=registration_body(environment="Development"))
        assert answer.status_code == 200, answer.text
    finally:
        service.stop()
    device_id = answer.json()["deviceId"]
    deleted = token.pkcs11_tool(
        "--delete-object", "--type", "privkey", "--id", uuid.UUID(device_id).hex, login=True
    )
    assert deleted.returncode == 0, deleted.stderr

    result = cli("devices", "reconcile", "--config", str(service.config_path), check=False)
    assert result.returncode == 1
    assert f"ACTIVE DEVICE WITHOUT ITS KEY: {device_id}" in result.stdout


def test_the_running_service_destroys_an_orphan_key_by_itself(tmp_path: Path, emulator: Any) -> None:
    """Periodic reconciliation: a key the registry does not know (as a failed destruction leaves
    behind while the token was away) is gone within a few intervals, without a restart."""
    from tests.fixtures.service import prepare_service

    token = create_token(tmp_path / "softhsm", "zatca-periodic")
    service = prepare_service(token, emulator, tmp_path / "svc", storage={"reconcile_interval_seconds": 0.2})
    service.start()
    try:
        orphan = uuid.uuid4()
        store = KeyStore.open(token.settings())
        try:
            store.generate_device_key(orphan, KeyPolicy.SEALED, f"zatca-device-{orphan}")
        finally:
            store.close()
        deadline = time.monotonic() + 30
        while orphan.hex in {key.id_hex for key in list_private_keys(token).values()}:
            assert time.monotonic() < deadline, "the orphan key was never destroyed"
            time.sleep(0.1)
    finally:
        service.stop()
    verify = cli("audit", "show", "--config", str(service.config_path)).stdout
    assert "appliance key without a registry row" in verify
