"""`zatca-appliance hsm init|check|list`, run as an administrator would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import yaml

from appliance.config import HsmSettings
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import REPO_ROOT, SoftHsmToken


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "hsm", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def token_options(softhsm: SoftHsmToken) -> list[str]:
    return [
        "--module",
        softhsm.module,
        "--token-label",
        softhsm.label,
        "--pin-file",
        str(softhsm.pin_file),
        "--softhsm-conf",
        str(softhsm.conf_path),
    ]


def labels_in(conf: str) -> list[str]:
    slots = subprocess.run(
        ["softhsm2-util", "--show-slots"],
        env=os.environ | {"SOFTHSM2_CONF": conf},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [
        line.split(":", 1)[1].strip()
        for line in slots.stdout.splitlines()
        if line.strip().startswith("Label:")
    ]


def printed_settings(output: str) -> HsmSettings:
    document = output.split("put this into the configuration file:", 1)[1].split("for pkcs11-tool", 1)[0]
    return msgspec.convert(yaml.safe_load(document)["hsm"], type=HsmSettings)


def test_init_creates_the_dev_token_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"

    first = cli("init", "--data-dir", str(data_dir), "--label", "cli-dev")
    assert first.returncode == 0, first.stderr
    settings = printed_settings(first.stdout)
    pin_file = Path(str(settings.pin_file))
    pin = pin_file.read_text()

    second = cli("init", "--data-dir", str(data_dir), "--label", "cli-dev")
    assert second.returncode == 0, second.stderr

    assert printed_settings(second.stdout) == settings
    assert settings.token_label == "cli-dev"
    assert settings.softhsm_conf == str(data_dir / "softhsm" / "softhsm2.conf")
    assert f"export SOFTHSM2_CONF={settings.softhsm_conf}" in second.stdout
    assert pin_file == data_dir / "token-pin"
    assert pin_file.read_text() == pin  # the same PIN: the token was kept, not made again
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "token-so-pin").stat().st_mode) == 0o600
    assert labels_in(str(settings.softhsm_conf)).count("cli-dev") == 1
    # The printed settings are enough to use the token.
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"hsm": msgspec.to_builtins(settings)}))
    checked = cli("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_with_partitions_prints_settings_that_spread_keys_over_them(tmp_path: Path) -> None:
    result = cli("init", "--data-dir", str(tmp_path / "dev"), "--label", "cli-part", "--partitions", "2")
    assert result.returncode == 0, result.stderr
    settings = printed_settings(result.stdout)
    assert settings.partition_labels == ["cli-part-p00", "cli-part-p01"]
    labels = labels_in(str(settings.softhsm_conf))
    assert {"cli-part", "cli-part-p00", "cli-part-p01"} <= set(labels)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"hsm": msgspec.to_builtins(settings)}))
    checked = cli("check", "--config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_check_reports_a_capable_token(softhsm: SoftHsmToken) -> None:
    result = cli("check", *token_options(softhsm))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"module:           {softhsm.module}" in lines
    assert f"token:            {softhsm.label}" in lines
    assert "login:            ok" in lines
    assert "secp256k1 keygen: ok" in lines
    assert "ECDSA signing:    ok (CKM_ECDSA)" in lines
    assert any(line.startswith("ECDSA-SHA256:     not offered") for line in lines)  # SoftHSM has none
    assert "result: ok" in lines


def test_check_fails_for_a_token_without_secp256k1_keygen(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    restricted = tmp_path / "restricted.conf"
    restricted.write_text(
        softhsm.conf_path.read_text().replace(
            "slots.mechanisms = ALL", "slots.mechanisms = CKM_ECDSA,CKM_SHA256,CKM_AES_KEY_GEN,CKM_AES_GCM"
        )
    )
    options = token_options(softhsm)
    options[options.index("--softhsm-conf") + 1] = str(restricted)

    result = cli("check", *options)

    assert result.returncode == 1
    assert "secp256k1 keygen: MISSING" in result.stdout
    assert "key export wrap:  MISSING (CKM_AES_KEY_WRAP_PAD)" in result.stdout
    assert "CKM_EC_KEY_PAIR_GEN" in result.stderr
    assert "CKM_AES_KEY_WRAP_PAD" in result.stderr


def test_check_fails_for_a_missing_token(softhsm: SoftHsmToken) -> None:
    options = token_options(softhsm)
    options[options.index("--token-label") + 1] = "absent-token"

    result = cli("check", *options)

    assert result.returncode == 1
    assert "token 'absent-token' not found" in result.stderr
    assert softhsm.module in result.stderr


def test_list_shows_each_device_key_with_its_flags(
    keystore: KeyStore, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    sealed_id, exportable_id = uuid.uuid4(), uuid.uuid4()
    keystore.generate_device_key(sealed_id, KeyPolicy.SEALED, label="till-1")
    keystore.generate_device_key(exportable_id, KeyPolicy.EXPORTABLE, label="till-2")
    try:
        table = cli("list", *token_options(softhsm))
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        assert header.split() == [
            "DEVICE",
            "ID",
            "CKA_ID",
            "LABEL",
            "POLICY",
            "SENSITIVE",
            "EXTRACTABLE",
            "ALWAYS_SENSITIVE",
            "NEVER_EXTRACTABLE",
            "LOCAL",
        ]
        by_device = {row.split()[0]: row.split() for row in rows}
        assert by_device[str(sealed_id)] == [
            str(sealed_id),
            sealed_id.hex,
            "till-1",
            "sealed",
            "yes",
            "no",
            "yes",
            "yes",
            "yes",
        ]
        assert by_device[str(exportable_id)] == [
            str(exportable_id),
            exportable_id.hex,
            "till-2",
            "exportable",
            "yes",
            "yes",
            "yes",
            "no",
            "yes",
        ]

        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"hsm": msgspec.to_builtins(softhsm.settings())}))
        as_json = cli("list", "--config", str(config), "--json")
        assert as_json.returncode == 0, as_json.stderr
        listed = {entry["device_id"]: entry for entry in json.loads(as_json.stdout)}
        assert listed[str(exportable_id)] == {
            "device_id": str(exportable_id),
            "key_id_hex": exportable_id.hex,
            "label": "till-2",
            "policy": "exportable",
            "sensitive": True,
            "extractable": True,
            "always_sensitive": True,
            "never_extractable": False,
            "local": True,
        }
        assert set(listed) == {str(info.device_id) for info in keystore.list_device_keys()}
    finally:
        keystore.destroy_device_key(sealed_id)
        keystore.destroy_device_key(exportable_id)
