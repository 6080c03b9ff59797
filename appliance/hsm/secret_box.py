"""Secrets at rest (the CSID secret), sealed with AES-GCM under a key that never leaves the token.

The key is an AES-256 token object, CKA_SENSITIVE=true and CKA_EXTRACTABLE=false, created on
first use. A blob is `version (1 byte) || nonce (12) || ciphertext || tag (16)`; the version
byte is authenticated as associated data. Nonces are random: the appliance seals a handful of
secrets per device, far below the 2^32 messages a 96-bit random nonce allows per key.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

import pkcs11.exceptions as p11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass

from appliance.errors import HsmError
from appliance.hsm.connection import TokenConnection
from appliance.hsm.objects import ensure_key, require_mechanisms, use_key

SEALING_KEY_ID: Final = b"zatca-appliance/secret-box/v1"
SEALING_KEY_LABEL: Final = "zatca-appliance-secret-box"
_WHAT: Final = "secret box key"
_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_TAG_BITS: Final = 128
_MECHANISMS: Final = {Mechanism.AES_KEY_GEN: "AES key generation", Mechanism.AES_GCM: "AES-GCM"}


def encrypt(connection: TokenConnection, plaintext: bytes) -> bytes:
    require_mechanisms(connection, _MECHANISMS, "seal secrets")
    ensure_key(connection, SEALING_KEY_ID, ObjectClass.SECRET_KEY, _WHAT, _create_key)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    parameters = GCMParams(nonce, _VERSION, _TAG_BITS)
    sealed = use_key(
        connection,
        SEALING_KEY_ID,
        ObjectClass.SECRET_KEY,
        _WHAT,
        lambda key: bytes(key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=parameters)),
    )
    return _VERSION + nonce + sealed


def decrypt(connection: TokenConnection, blob: bytes) -> bytes:
    """ValueError for something that is not a blob; HsmError when authentication fails."""
    if len(blob) < len(_VERSION) + _NONCE_BYTES + _TAG_BITS // 8:
        raise ValueError(f"not a sealed secret: {len(blob)} bytes is shorter than nonce and tag")
    if blob[:1] != _VERSION:
        raise ValueError(f"not a sealed secret: unknown format version {blob[0]}")
    nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    parameters = GCMParams(nonce, _VERSION, _TAG_BITS)
    require_mechanisms(connection, _MECHANISMS, "open sealed secrets")
    try:
        return use_key(
            connection,
            SEALING_KEY_ID,
            ObjectClass.SECRET_KEY,
            _WHAT,
            lambda key: bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=parameters)),
        )
    except (p11.GeneralError, p11.EncryptedDataInvalid, p11.EncryptedDataLenRange, p11.DataInvalid) as exc:
        # SoftHSM reports a failed GCM tag check as CKR_GENERAL_ERROR, the same code as a token
        # that vanished; only a healthy token makes it a verdict on the blob.
        connection.ensure_healthy()
        raise HsmError(
            f"sealed secret failed authentication on {connection.where()}: it was altered, or sealed "
            "under another token's secret box key"
        ) from exc


def _create_key(session: Any) -> Any:
    return session.generate_key(
        KeyType.AES,
        256,
        store=True,
        id=SEALING_KEY_ID,
        label=SEALING_KEY_LABEL,
        capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
        template={Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
