"""Cached key handles against changes made by another process, and stores sharing one process."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from appliance.errors import KeyNotFound
from appliance.hsm import KeyPolicy, KeyStore
from tests.fixtures.softhsm import SoftHsmToken

PREHASHED_ECDSA = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
DIGEST = hashlib.sha256(b"handle test").digest()


def verify(spki: bytes, signature: bytes) -> None:
    public_key = serialization.load_der_public_key(spki)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, DIGEST, PREHASHED_ECDSA)


def delete_with_pkcs11_tool(softhsm: SoftHsmToken, device_id: uuid.UUID) -> None:
    for object_type in ("privkey", "pubkey"):
        result = softhsm.pkcs11_tool(
            "--delete-object", "--type", object_type, "--id", device_id.hex, login=True
        )
        assert result.returncode == 0, result.stderr


def test_key_deleted_by_another_process_is_reported_missing(
    keystore: KeyStore, softhsm: SoftHsmToken
) -> None:
    device_id = uuid.uuid4()
    spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    verify(spki, keystore.sign_digest(device_id, DIGEST))  # the handle is now cached

    delete_with_pkcs11_tool(softhsm, device_id)

    with pytest.raises(KeyNotFound, match=device_id.hex):
        keystore.sign_digest(device_id, DIGEST)
    assert keystore.has_device_key(device_id) is False


def test_key_replaced_by_another_process_is_found_again(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    device_id = uuid.uuid4()
    old_spki = keystore.generate_device_key(device_id, KeyPolicy.SEALED)
    verify(old_spki, keystore.sign_digest(device_id, DIGEST))

    delete_with_pkcs11_tool(softhsm, device_id)
    created = softhsm.pkcs11_tool(
        "--keypairgen",
        "--key-type",
        "EC:secp256k1",
        "--id",
        device_id.hex,
        "--label",
        f"replacement-{device_id}",
        "--usage-sign",
        login=True,
    )
    assert created.returncode == 0, created.stderr

    # The cached handle is stale; one look-up finds the new key and the signature is its own.
    signature = keystore.sign_digest(device_id, DIGEST)
    new_spki = keystore.public_key(device_id)
    assert new_spki != old_spki
    verify(new_spki, signature)
    assert keystore.destroy_device_key(device_id)


def test_second_store_in_the_same_process(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    second = KeyStore.open(softhsm.settings())  # the process is already logged in
    device_id = uuid.uuid4()
    try:
        spki = second.generate_device_key(device_id, KeyPolicy.SEALED)
        verify(spki, keystore.sign_digest(device_id, DIGEST))
    finally:
        second.close()

    # Closing one store neither logs the process out nor disturbs the other store.
    verify(spki, keystore.sign_digest(device_id, DIGEST))
    assert keystore.destroy_device_key(device_id)
