"""Device keys in a real SoftHSM token, judged by pkcs11-tool, cryptography and openssl."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from appliance.errors import Conflict, KeyNotExportable, KeyNotFound
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import SoftHsmToken

SEALED_ACCESS = "sensitive, always sensitive, never extractable, local"
EXPORTABLE_ACCESS = "sensitive, always sensitive, extractable, local"
PREHASHED_ECDSA = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


def secp256k1_public_key(spki: bytes) -> ec.EllipticCurvePublicKey:
    public_key = serialization.load_der_public_key(spki)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256K1)
    return public_key


def digest_of(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def read_public_key_with_pkcs11_tool(softhsm: SoftHsmToken, device_id: uuid.UUID, tmp_path: Path) -> bytes:
    output = tmp_path / f"{device_id}.pub.der"
    result = softhsm.pkcs11_tool(
        "--read-object", "--type", "pubkey", "--id", device_id.hex, "-o", str(output)
    )
    assert result.returncode == 0, result.stderr
    return output.read_bytes()


def test_sealed_key_lives_in_the_token_and_signs(
    keystore: KeyStore, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)

    assert len(spki) == 88
    assert read_public_key_with_pkcs11_tool(softhsm, device_id, tmp_path) == spki
    assert keystore.public_key(device_id) == spki
    digest = digest_of("invoice 1")
    secp256k1_public_key(spki).verify(keystore.sign_digest(device_id, digest), digest, PREHASHED_ECDSA)

    block = softhsm.listed_objects("privkey")[device_id.hex]
    assert f"label:      zatca-device-{device_id}" in block
    assert "Usage:      sign\n" in block + "\n"  # sign only: no derive, decrypt or unwrap
    assert softhsm.access_line(device_id.hex) == SEALED_ACCESS


def test_exporting_a_sealed_key_is_refused_and_leaves_it_intact(
    keystore: KeyStore, softhsm: SoftHsmToken
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)

    with pytest.raises(KeyNotExportable) as refused:
        keystore.export_private_key(device_id)

    message = str(refused.value)
    assert str(device_id) in message
    assert "sealed (CKA_EXTRACTABLE=false)" in message
    assert softhsm.label in message
    assert softhsm.access_line(device_id.hex) == SEALED_ACCESS
    digest = digest_of("still works")
    secp256k1_public_key(spki).verify(keystore.sign_digest(device_id, digest), digest, PREHASHED_ECDSA)


def test_exportable_key_leaves_as_sec1_pem_matching_the_token(
    keystore: KeyStore, softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.EXPORTABLE)
    assert softhsm.access_line(device_id.hex) == EXPORTABLE_ACCESS

    pem = keystore.export_private_key(device_id)

    assert pem.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    key_file = tmp_path / "device.pem"
    key_file.write_text(pem)
    checked = subprocess.run(
        ["openssl", "ec", "-in", str(key_file), "-check", "-noout", "-text"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "ASN1 OID: secp256k1" in checked.stdout
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    exported_public = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert exported_public == spki == read_public_key_with_pkcs11_tool(softhsm, device_id, tmp_path)
    digest = digest_of("signed in the token")
    private_key.public_key().verify(keystore.sign_digest(device_id, digest), digest, PREHASHED_ECDSA)
    # The token keeps the key (still sensitive: CKA_VALUE never left in the clear), and after
    # the one-time export no longer extractable (issue 13 item 13).
    assert softhsm.access_line(device_id.hex) == EXPORTABLE_ACCESS.replace(" extractable,", "")


def test_list_shows_device_keys_with_the_tokens_flags(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    sealed_id, exportable_id = uuid.uuid4(), uuid.uuid4()
    keystore.generate_device_key(sealed_id, KeyPolicy.SEALED, label="pos-17 front desk")
    keystore.generate_device_key(exportable_id, KeyPolicy.EXPORTABLE)
    keystore.probe()
    keystore.encrypt_secret(b"creates the secret box key")

    listed = {info.device_id: info for info in keystore.list_device_keys()}

    sealed, exportable = listed[sealed_id], listed[exportable_id]
    assert (sealed.label, sealed.key_id_hex, sealed.policy) == (
        "pos-17 front desk",
        sealed_id.hex,
        KeyPolicy.SEALED,
    )
    assert (
        sealed.sensitive,
        sealed.extractable,
        sealed.always_sensitive,
        sealed.never_extractable,
        sealed.local,
    ) == (
        True,
        False,
        True,
        True,
        True,
    )
    assert exportable.label == f"zatca-device-{exportable_id}"
    assert exportable.policy is KeyPolicy.EXPORTABLE
    assert (exportable.extractable, exportable.never_extractable, exportable.sensitive) == (True, False, True)
    # The appliance's own keys are in the token, but they are not devices.
    token_ids = set(softhsm.listed_objects("privkey"))
    assert {info.key_id_hex for info in listed.values()} == {
        key_id for key_id in token_ids if len(key_id) == 32
    }
    assert any(len(key_id) != 32 for key_id in token_ids)


def test_destroy_removes_both_halves(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    device_id = uuid.uuid4()
    keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    keystore.sign_digest(device_id, digest_of("cache the handle"))
    assert keystore.has_device_key(device_id)

    assert keystore.destroy_device_key(device_id) is True

    assert device_id.hex not in softhsm.listed_objects("privkey")
    assert device_id.hex not in softhsm.listed_objects("pubkey")
    assert keystore.has_device_key(device_id) is False
    assert keystore.destroy_device_key(device_id) is False
    assert device_id not in {info.device_id for info in keystore.list_device_keys()}
    with pytest.raises(KeyNotFound, match=device_id.hex):
        keystore.sign_digest(device_id, digest_of("gone"))
    with pytest.raises(KeyNotFound, match=device_id.hex):
        keystore.public_key(device_id)


def test_a_device_id_gets_one_key_only(keystore: KeyStore) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)

    with pytest.raises(Conflict) as conflict:
        keystore.generate_device_key(device_id, KeyPolicy.EXPORTABLE)

    assert conflict.value.existing_device_id == str(device_id)
    assert keystore.public_key(device_id) == spki


def test_unknown_device_is_named_with_token_and_module(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    device_id = uuid.uuid4()
    with pytest.raises(KeyNotFound) as missing:
        keystore.sign_digest(device_id, digest_of("nobody"))
    message = str(missing.value)
    assert device_id.hex in message
    assert f"token '{softhsm.label}'" in message
    assert softhsm.module in message


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_only_a_sha256_digest_is_signed(keystore: KeyStore, length: int) -> None:
    # CKM_ECDSA would sign anything, silently truncated: a CSR signed over its TBS bytes would
    # come out invalid instead of failing here.
    with pytest.raises(ValueError, match="32-byte SHA-256 digest"):
        keystore.sign_digest(uuid.uuid4(), bytes(length))
