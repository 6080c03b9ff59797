"""The administrator's registry commands: API keys and device listings, on a real registry file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.config import AppConfig, StorageSettings
from tests.fixtures.service import cli, prepare_service, registration_body, write_config
from tests.fixtures.softhsm import create_token


def test_api_keys_are_created_listed_and_revoked(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    write_config(config_path, AppConfig(storage=StorageSettings(data_dir=str(tmp_path / "data"))))
    key = cli("apikey", "create", "till-7", "--config", str(config_path)).stdout.strip()
    assert key.startswith("zak_")
    listed = cli("apikey", "list", "--config", str(config_path)).stdout
    assert "till-7" in listed and "active" in listed and key not in listed
    assert cli("apikey", "revoke", "till-7", "--config", str(config_path)).stdout.strip() == "revoked till-7"
    assert "revoked" in cli("apikey", "list", "--config", str(config_path)).stdout
    again = cli("apikey", "revoke", "till-7", "--config", str(config_path), check=False)
    assert again.returncode == 1 and "no active API key" in again.stdout


def test_devices_list_and_show_map_devices_to_token_keys(tmp_path: Path, emulator: Any) -> None:
    service = prepare_service(create_token(tmp_path / "softhsm", "zatca-admin"), emulator, tmp_path / "svc")
    service.start()
    try:
        with service.client() as client:
            answer = client.post("/v1/Devices/Register", json=registration_body(environment="Development"))
        assert answer.status_code == 200, answer.text
    finally:
        service.stop()
    device_id = answer.json()["deviceId"]
    listed = cli("devices", "list", "--config", str(service.config_path)).stdout
    assert device_id in listed and device_id.replace("-", "") in listed and "(1 of 1)" in listed
    shown = cli("devices", "show", device_id, "--config", str(service.config_path)).stdout
    assert f"zatca-device-{device_id}" in shown and "active" in shown
    assert answer.json()["secret"] not in shown and answer.json()["csid"] not in shown
