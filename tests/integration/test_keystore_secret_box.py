"""Secrets at rest: AES-GCM in the token under a key that never leaves it."""

from __future__ import annotations

import pytest

from appliance.errors import HsmError
from appliance.hsm import KeyStore
from tests.fixtures.softhsm import SoftHsmToken

SEALING_KEY_ID_HEX = b"zatca-appliance/secret-box/v1".hex()


def test_round_trip_with_a_fresh_nonce_each_time(keystore: KeyStore) -> None:
    secret = b"binarySecurityToken secret: s3cr3t/+=="

    first, second = keystore.encrypt_secret(secret), keystore.encrypt_secret(secret)

    assert first != second
    assert secret not in first
    assert len(first) == 1 + 12 + len(secret) + 16
    assert keystore.decrypt_secret(first) == secret
    assert keystore.decrypt_secret(second) == secret
    assert keystore.decrypt_secret(keystore.encrypt_secret(b"")) == b""


def test_sealing_key_is_a_sensitive_token_key_that_never_leaves(
    keystore: KeyStore, softhsm: SoftHsmToken
) -> None:
    keystore.encrypt_secret(b"make sure the key exists")

    block = softhsm.listed_objects("secrkey")[SEALING_KEY_ID_HEX]

    assert "AES length 32" in block
    assert "label:      zatca-appliance-secret-box" in block
    assert "Access:     sensitive, always sensitive, never extractable, local" in block


def test_a_new_store_opens_what_an_earlier_one_sealed(keystore: KeyStore, softhsm: SoftHsmToken) -> None:
    sealed = keystore.encrypt_secret(b"survives a restart")
    restarted = KeyStore.open(softhsm.settings())
    try:
        assert restarted.decrypt_secret(sealed) == b"survives a restart"
    finally:
        restarted.close()


@pytest.mark.parametrize(
    ("region", "offset"),
    [("nonce", 1), ("ciphertext", 13), ("tag", -1)],
)
def test_any_altered_byte_is_detected(keystore: KeyStore, region: str, offset: int) -> None:
    sealed = bytearray(keystore.encrypt_secret(b"the CSID secret"))
    sealed[offset] ^= 0x01

    with pytest.raises(HsmError, match="failed authentication") as failure:
        keystore.decrypt_secret(bytes(sealed))

    assert "the CSID secret" not in str(failure.value), region


def test_blobs_that_are_not_sealed_secrets(keystore: KeyStore) -> None:
    sealed = keystore.encrypt_secret(b"x")
    with pytest.raises(ValueError, match="unknown format version 2"):
        keystore.decrypt_secret(b"\x02" + sealed[1:])
    with pytest.raises(ValueError, match="shorter than nonce and tag"):
        keystore.decrypt_secret(sealed[:28])
    with pytest.raises(HsmError, match="failed authentication"):
        keystore.decrypt_secret(sealed[:-1])  # long enough to parse, but the tag is cut
