"""Device keys: secp256k1 key pairs whose CKA_ID is the device UUID's 16 bytes.

The CKA_ID length is what marks a device key: the appliance's own objects (secret box key,
probe key) use IDs of other lengths, so they never show up as devices.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, Final

import pkcs11.exceptions as p11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from appliance.errors import Conflict, HsmError, KeyNotExportable, KeyNotFound
from appliance.hsm.connection import TokenConnection
from appliance.hsm.failures import describe
from appliance.hsm.models import DeviceKeyInfo, KeyPolicy
from appliance.hsm.objects import (
    generate_ec_key_pair,
    require_mechanisms,
    subject_public_key_info,
    use_key,
)

DEVICE_KEY_ID_LENGTH: Final = 16
DIGEST_LENGTH: Final = 32
_SIGNATURE_LENGTH: Final = 64
_KEY_ENCRYPTION_KEY_BYTES: Final = 32
_KEYGEN_MECHANISMS: Final = {
    Mechanism.EC_KEY_PAIR_GEN: "EC key generation",
    Mechanism.ECDSA: "raw ECDSA signing",
}
_INFO_ATTRIBUTES: Final = (
    Attribute.ID,
    Attribute.LABEL,
    Attribute.SENSITIVE,
    Attribute.EXTRACTABLE,
    Attribute.ALWAYS_SENSITIVE,
    Attribute.NEVER_EXTRACTABLE,
    Attribute.LOCAL,
)


def default_label(device_id: uuid.UUID) -> str:
    return f"zatca-device-{device_id}"


def generate(connection: TokenConnection, device_id: uuid.UUID, policy: KeyPolicy, label: str) -> bytes:
    key_id = device_id.bytes
    require_mechanisms(connection, _KEYGEN_MECHANISMS, "hold ZATCA device keys")
    with connection.runtime.object_lock, connection.lease() as worker:
        # The handle cache, not a token search: C_FindObjects is O(objects in token) in SoftHSM
        # (~250 ms at 10,000 keys, inside the object lock). Device ids are fresh UUIDs whose row
        # the registry holds before the key is made; keys of this process are in the cache.
        if connection.cached(key_id) is not None:
            raise Conflict(
                f"{connection.where()} already holds objects with CKA_ID {key_id.hex()}",
                existing_device_id=str(device_id),
            )
        public_key, private_key = generate_ec_key_pair(
            worker.session, key_id, label, extractable=policy is KeyPolicy.EXPORTABLE
        )
        spki = subject_public_key_info(public_key)
        connection.remember(key_id, private_key, worker)
    return spki


def public_key(connection: TokenConnection, device_id: uuid.UUID) -> bytes:
    key_id = device_id.bytes
    with connection.lease() as worker:
        try:
            public = worker.session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=key_id)
        except p11.NoSuchKey:
            public = None
        if public is not None:
            return subject_public_key_info(public)
    connection.ensure_healthy()
    raise KeyNotFound(f"no public key for device {device_id} (CKA_ID {key_id.hex()}) on {connection.where()}")


def sign_digest(connection: TokenConnection, device_id: uuid.UUID, digest: bytes) -> bytes:
    """CKM_ECDSA over a SHA-256 digest (SoftHSM has no CKM_ECDSA_SHA256), DER-encoded."""
    raw = use_key(
        connection,
        device_id.bytes,
        ObjectClass.PRIVATE_KEY,
        f"device key {device_id}",
        lambda key: bytes(key.sign(digest, mechanism=Mechanism.ECDSA)),
    )
    if len(raw) != _SIGNATURE_LENGTH:
        raise HsmError(
            f"{connection.where()} returned a {len(raw)}-byte ECDSA signature; expected r||s of 64"
        )
    return bytes(encode_ecdsa_signature(raw))


def export_private_key(
    connection: TokenConnection, device_id: uuid.UUID, expected_public_key: bytes | None = None
) -> str:
    """SEC1 PEM of an exportable key, wrapped in the token under a one-time session AES key.

    The token never reveals CKA_VALUE (the key stays CKA_SENSITIVE); it wraps the key with
    CKM_AES_KEY_WRAP_PAD under a key-encryption key that exists only as a session object for
    this call, and the wrapped blob is opened here (pkcs11-notes.md §4 variant b).
    """
    key_id = device_id.bytes
    what = f"device key {device_id}"
    require_mechanisms(connection, {Mechanism.AES_KEY_WRAP_PAD: "AES key wrap with padding"}, "export keys")
    # The caller usually holds the SPKI from generation; looking it up is O(objects in token).
    token_public_key = expected_public_key or public_key(connection, device_id)
    key_encryption_key = secrets.token_bytes(_KEY_ENCRYPTION_KEY_BYTES)

    def wrap(private_key: Any) -> bytes:
        if not private_key[Attribute.EXTRACTABLE]:
            raise KeyNotExportable(
                f"{what} is sealed (CKA_EXTRACTABLE=false) on {connection.where()}; "
                "only keys generated for the Xml or Pdf invoice formats can be exported"
            )
        wrapping_key = private_key.session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: key_encryption_key,
                Attribute.TOKEN: False,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.WRAP: True,
                Attribute.UNWRAP: False,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
                Attribute.LABEL: "zatca-appliance-export-kek",
            }
        )
        try:
            wrapped_key = bytes(wrapping_key.wrap_key(private_key, mechanism=Mechanism.AES_KEY_WRAP_PAD))
        except (p11.KeyUnextractable, p11.KeyNotWrappable) as exc:
            raise KeyNotExportable(f"{connection.where()} refused to wrap {what} ({describe(exc)})") from exc
        finally:
            wrapping_key.destroy()
        # The export is one-time: lock the key down (PKCS#11 allows only this direction), so no
        # later call, ours or another PIN holder's, can wrap it out again.
        private_key[Attribute.EXTRACTABLE] = False
        return wrapped_key

    # The one-time wrapping key is an object created and destroyed in the token.
    with connection.runtime.object_lock:
        wrapped = use_key(connection, key_id, ObjectClass.PRIVATE_KEY, what, wrap)
    return _unwrapped_pem(connection, what, key_encryption_key, wrapped, token_public_key)


def _unwrapped_pem(
    connection: TokenConnection, what: str, key_encryption_key: bytes, wrapped: bytes, token_public_key: bytes
) -> str:
    try:
        pkcs8 = aes_key_unwrap_with_padding(key_encryption_key, wrapped)
        private_key = serialization.load_der_private_key(pkcs8, password=None)
    except (InvalidUnwrap, ValueError) as exc:
        raise HsmError(f"{connection.where()} wrapped {what} into something that does not unwrap") from exc
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256K1
    ):
        raise HsmError(f"{connection.where()} exported {what} as something other than a secp256k1 key")
    exported_public_key = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if exported_public_key != token_public_key:
        raise HsmError(f"the exported {what} does not match its public key on {connection.where()}")
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def destroy(connection: TokenConnection, device_id: uuid.UUID) -> bool:
    key_id = device_id.bytes
    with connection.runtime.object_lock, connection.lease() as worker:
        doomed = [
            found
            for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
            for found in worker.session.get_objects({Attribute.CLASS: object_class, Attribute.ID: key_id})
        ]
        for found in doomed:
            found.destroy()
        connection.forget(key_id)
    if not doomed:
        connection.ensure_healthy()
    return bool(doomed)


def exists(connection: TokenConnection, device_id: uuid.UUID) -> bool:
    try:
        use_key(connection, device_id.bytes, ObjectClass.PRIVATE_KEY, f"device key {device_id}", _no_op)
    except KeyNotFound:
        return False
    return True


def _no_op(key: Any) -> None:
    return None


def list_keys(connection: TokenConnection) -> list[DeviceKeyInfo]:
    # The keys found here are not cached: they would all be bound to this one session, and
    # signing with any of them would then queue for it.
    infos: list[DeviceKeyInfo] = []
    with connection.lease() as worker:
        found = list(
            worker.session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC}
            )
        )
        for private_key in found:
            attributes = private_key.get_attributes(_INFO_ATTRIBUTES)
            key_id = bytes(attributes[Attribute.ID])
            if len(key_id) != DEVICE_KEY_ID_LENGTH:
                continue
            infos.append(_device_key_info(key_id, attributes))
    # An empty listing may mean the token vanished: SoftHSM then finds nothing without error.
    connection.ensure_healthy()
    return sorted(infos, key=lambda info: (info.label, info.key_id_hex))


def _device_key_info(key_id: bytes, attributes: dict[Attribute, Any]) -> DeviceKeyInfo:
    extractable = bool(attributes[Attribute.EXTRACTABLE])
    # After its one-time export an Xml/Pdf key is no longer extractable, but it was generated
    # exportable: NEVER_EXTRACTABLE tells the two policies apart for good.
    never_extractable = bool(attributes[Attribute.NEVER_EXTRACTABLE])
    return DeviceKeyInfo(
        device_id=uuid.UUID(bytes=key_id),
        key_id_hex=key_id.hex(),
        label=str(attributes[Attribute.LABEL]),
        policy=KeyPolicy.SEALED if never_extractable else KeyPolicy.EXPORTABLE,
        sensitive=bool(attributes[Attribute.SENSITIVE]),
        extractable=extractable,
        always_sensitive=bool(attributes[Attribute.ALWAYS_SENSITIVE]),
        never_extractable=bool(attributes[Attribute.NEVER_EXTRACTABLE]),
        local=bool(attributes[Attribute.LOCAL]),
    )
