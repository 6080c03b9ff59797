"""Opening the token: every failure says which module, which token and which PKCS#11 error."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest

from appliance.config import HsmSettings
from appliance.errors import ConfigError, HsmMechanismMissing, HsmUnavailable
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import REPO_ROOT, SoftHsmToken

DIGEST = hashlib.sha256(b"errors").digest()


def wrong_pin_file(tmp_path: Path) -> Path:
    path = tmp_path / "wrong-pin"
    path.write_text("00000000\n")
    return path


def test_missing_module(softhsm: SoftHsmToken) -> None:
    settings = msgspec.structs.replace(softhsm.settings(), module="/nonexistent/libvendor-pkcs11.so")
    with pytest.raises(HsmUnavailable) as failure:
        KeyStore.open(settings)
    message = str(failure.value)
    assert "PKCS#11 module /nonexistent/libvendor-pkcs11.so" in message
    assert "PKCS11Error" in message
    assert "No such file or directory" in message


def test_library_that_is_no_pkcs11_module(softhsm: SoftHsmToken) -> None:
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    with pytest.raises(HsmUnavailable, match=r"module /lib/x86_64-linux-gnu/libc\.so\.6.*C_GetFunctionList"):
        KeyStore.open(msgspec.structs.replace(softhsm.settings(), module=libc))


def test_missing_token_lists_the_tokens_that_are_there(softhsm: SoftHsmToken) -> None:
    settings = msgspec.structs.replace(softhsm.settings(), token_label="no-such-token")
    with pytest.raises(HsmUnavailable) as failure:
        KeyStore.open(settings)
    message = str(failure.value)
    assert "token 'no-such-token' not found" in message
    assert softhsm.module in message
    assert "NoSuchToken" in message
    assert f"tokens present: '{softhsm.label}'" in message


def test_wrong_pin(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(softhsm.settings(), pin_file=str(wrong_pin_file(tmp_path)))
    with pytest.raises(HsmUnavailable) as failure:
        KeyStore.open(settings)
    message = str(failure.value)
    assert f"token '{softhsm.label}'" in message
    assert softhsm.module in message
    assert "wrong PIN (PinIncorrect)" in message
    assert "00000000" not in message


def test_failed_logins_leave_no_session_open(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    """python-pkcs11's Token.open(user_pin=...) leaks a session per failed login; the store must not.

    Checked in a fresh process through C_GetSessionInfo on every handle the module gave out.
    """
    script = """
import sys, json, msgspec
from appliance.config import HsmSettings
from appliance.errors import HsmUnavailable
from appliance.hsm import KeyStore
from appliance.hsm.runtime import load_module
settings = msgspec.json.decode(sys.argv[1], type=HsmSettings)
for _ in range(3):
    try:
        KeyStore.open(msgspec.structs.replace(settings, pin_file=sys.argv[2]))
    except HsmUnavailable:
        pass
    else:
        raise SystemExit("the wrong PIN was accepted")
runtime = load_module(settings.module, settings.softhsm_conf)
marker = runtime.library.get_token(token_label=settings.token_label).open()
still_open = []
for handle in range(1, marker.handle):
    try:
        runtime.raw.session_logged_in(handle)
    except Exception:
        continue
    still_open.append(handle)
print(json.dumps({"highest": marker.handle, "still_open": still_open}))
"""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            msgspec.json.encode(softhsm.settings()).decode(),
            str(wrong_pin_file(tmp_path)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["highest"] > 3  # three sessions were opened for the three attempts
    assert report["still_open"] == []


def test_refused_pin_is_not_retried_and_a_fixed_pin_works_without_restart(
    softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    pin_file = tmp_path / "rotating-pin"
    pin_file.write_text(softhsm.pin + "\n")
    store = KeyStore.open(msgspec.structs.replace(softhsm.settings(), pin_file=str(pin_file)))
    try:
        store.probe()
        pin_file.write_text("00000000\n")
        with softhsm.vanished(), pytest.raises(HsmUnavailable):
            store.probe()  # the store must reconnect, and so log in again, after this
        with pytest.raises(HsmUnavailable, match=r"wrong PIN \(PinIncorrect\)"):
            store.probe()
        with pytest.raises(HsmUnavailable, match="refused this PIN before; not trying it again"):
            store.probe()
        pin_file.write_text(softhsm.pin + "\n")
        store.probe()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"token_label": None}, "exactly one of hsm.token_label and hsm.token_uri"),
        ({"token_uri": "pkcs11:token=x"}, "exactly one of hsm.token_label and hsm.token_uri"),
        ({"pin_file": None}, "no token PIN source configured"),
        ({"pin_env": "HOME"}, "several token PIN sources"),
        ({"worker_threads": 0}, "worker_threads must be at least 1"),
    ],
)
def test_configuration_mistakes(softhsm: SoftHsmToken, changes: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        KeyStore.open(msgspec.structs.replace(softhsm.settings(), **changes))


def token_serial(softhsm: SoftHsmToken) -> str:
    result = subprocess.run(
        ["softhsm2-util", "--show-slots"], capture_output=True, text=True, check=True, timeout=60
    )
    blocks = result.stdout.split("Slot ")
    block = next(block for block in blocks if f"Label:            {softhsm.label}" in block)
    return block.split("Serial number:")[1].split()[0]


def test_token_by_uri_with_module_path_and_pin_source(softhsm: SoftHsmToken) -> None:
    uri = (
        f"pkcs11:token={quote(softhsm.label)};serial={token_serial(softhsm)};model=SoftHSM%20v2"
        f"?module-path={softhsm.module}&pin-source=file:{softhsm.pin_file}"
    )
    settings = HsmSettings(
        module="/not/used/when/the/uri/names/one.so", token_uri=uri, softhsm_conf=str(softhsm.conf_path)
    )
    store = KeyStore.open(settings)
    try:
        assert store.token_label == softhsm.label
        assert store.module_path == softhsm.module
        store.probe()
    finally:
        store.close()


def test_uri_matching_no_token(softhsm: SoftHsmToken) -> None:
    settings = msgspec.structs.replace(
        softhsm.settings(),
        token_label=None,
        token_uri=f"pkcs11:token={softhsm.label};serial=0000000000000000",
    )
    with pytest.raises(
        HsmUnavailable, match=r"token pkcs11:token=zatca-test;serial=0000000000000000 not found"
    ):
        KeyStore.open(settings)


def test_token_without_secp256k1_keygen(keystore: KeyStore, softhsm: SoftHsmToken, tmp_path: Path) -> None:
    """SoftHSM restricted to a mechanism list without CKM_EC_KEY_PAIR_GEN (same token files)."""
    restricted_conf = tmp_path / "restricted-softhsm2.conf"
    restricted_conf.write_text(
        softhsm.conf_path.read_text().replace(
            "slots.mechanisms = ALL",
            "slots.mechanisms = CKM_ECDSA,CKM_SHA256,CKM_AES_KEY_GEN,CKM_AES_GCM,CKM_AES_KEY_WRAP_PAD",
        )
    )
    restricted = KeyStore.open(msgspec.structs.replace(softhsm.settings(), softhsm_conf=str(restricted_conf)))
    try:
        with pytest.raises(HsmMechanismMissing) as missing:
            restricted.generate_device_key(uuid.uuid4(), KeyPolicy.SEALED)
        message = str(missing.value)
        assert "CKM_EC_KEY_PAIR_GEN" in message
        assert f"token '{softhsm.label}'" in message
        assert softhsm.module in message
        report = restricted.check()
        assert not report.ok
        assert report.secp256k1_keygen is False
        assert report.ecdsa is True
        assert any("CKM_EC_KEY_PAIR_GEN" in problem for problem in report.problems)
    finally:
        restricted.close()

    # The session's store brings the module back to its own configuration and carries on.
    device_id = uuid.uuid4()
    keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    assert keystore.destroy_device_key(device_id)
