"""Finding, using and creating token objects through a connection's handle cache.

All functions run with module access held by the caller (KeyStore._call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import pkcs11.exceptions as p11
from asn1crypto import core, keys
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from appliance.errors import HsmError, HsmMechanismMissing, KeyNotFound
from appliance.hsm.connection import CachedKey, TokenConnection
from appliance.hsm.failures import STALE_HANDLE, describe, mechanism_refused

T = TypeVar("T")

SECP256K1_PARAMETERS: Final = encode_named_curve_parameters("secp256k1")  # 06 05 2b8104000a
_UNCOMPRESSED_POINT_LENGTH: Final = 65


def require_mechanisms(connection: TokenConnection, needed: dict[Mechanism, str], purpose: str) -> None:
    missing = [
        f"{name} (CKM_{mechanism.name})"
        for mechanism, name in needed.items()
        if mechanism not in connection.mechanisms
    ]
    if missing:
        raise HsmMechanismMissing(f"{connection.where()} cannot {purpose}: it lacks {', '.join(missing)}")


def find_key(connection: TokenConnection, key_id: bytes, object_class: ObjectClass, what: str) -> CachedKey:
    """Look the key up (O(objects)) and cache it; KeyNotFound once the token is known to be healthy."""
    with connection.lease() as worker:
        try:
            key = worker.session.get_key(object_class=object_class, id=key_id)
        except p11.NoSuchKey:
            key = None
        except p11.MultipleObjectsReturned as exc:
            raise HsmError(f"{connection.where()} holds several {what}s with CKA_ID {key_id.hex()}") from exc
        if key is not None:
            return connection.remember(key_id, key, worker)
    connection.ensure_healthy()
    raise KeyNotFound(f"no {what} with CKA_ID {key_id.hex()} on {connection.where()}")


def use_key(
    connection: TokenConnection, key_id: bytes, object_class: ObjectClass, what: str, use: Callable[[Any], T]
) -> T:
    """Run `use(key)` in the key's home session, with the cached handle if there is one.

    A handle that went stale (the key was destroyed elsewhere, or the token reused the handle)
    is dropped and the key looked up exactly once more.
    """
    entry = connection.cached(key_id) or find_key(connection, key_id, object_class, what)
    for attempt in (1, 2):
        with connection.lease(entry.home):
            try:
                # Tokens may hand a destroyed object's handle to a new object; the ID check makes
                # sure the cached handle still names this key.
                if entry.key[Attribute.ID] == key_id:
                    return use(entry.key)
            except STALE_HANDLE:
                pass
            connection.forget(key_id, entry)
        if attempt == 2:
            break
        entry = find_key(connection, key_id, object_class, what)
    connection.ensure_healthy()
    raise HsmError(f"the handle of {what} {key_id.hex()} went stale twice in a row on {connection.where()}")


def generate_ec_key_pair(session: Any, key_id: bytes, label: str, *, extractable: bool) -> tuple[Any, Any]:
    """A secp256k1 token key pair that can sign (never derive, decrypt or unwrap)."""
    try:
        public_key, private_key = session.generate_keypair(
            KeyType.EC,
            store=True,
            id=key_id,
            label=label,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.EC_PARAMS: SECP256K1_PARAMETERS, Attribute.PRIVATE: False},
            private_template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: extractable,
                Attribute.DERIVE: False,
            },
        )
    except p11.AttributeValueInvalid as exc:
        # Some HSMs answer an unknown curve OID this way rather than with CKR_CURVE_NOT_SUPPORTED.
        raise _curve_refused(session, exc) from exc
    except p11.PKCS11Error as exc:
        if mechanism_refused(exc):
            raise _curve_refused(session, exc) from exc
        raise
    return public_key, private_key


def _curve_refused(session: Any, exc: p11.PKCS11Error) -> HsmMechanismMissing:
    return HsmMechanismMissing(
        f"token '{session.token.label}' cannot generate secp256k1 keys "
        f"(CKM_EC_KEY_PAIR_GEN with curve secp256k1 refused: {describe(exc)})"
    )


def subject_public_key_info(public_key: Any) -> bytes:
    """SPKI DER of an EC public key object; CKA_EC_POINT may be DER-wrapped (SoftHSM) or raw."""
    point = bytes(public_key[Attribute.EC_POINT])
    parameters = bytes(public_key[Attribute.EC_PARAMS])
    if len(point) != _UNCOMPRESSED_POINT_LENGTH:
        point = bytes(core.OctetString.load(point).native)
    if len(point) != _UNCOMPRESSED_POINT_LENGTH or point[0] != 0x04:
        raise HsmError(
            f"the token returned an EC point of {len(point)} bytes; expected an uncompressed secp256k1 point"
        )
    return bytes(
        keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "ec", "parameters": keys.ECDomainParameters.load(parameters)},
                "public_key": point,
            }
        ).dump()
    )


def ensure_key(
    connection: TokenConnection,
    key_id: bytes,
    object_class: ObjectClass,
    what: str,
    create: Callable[[Any], Any],
) -> None:
    """Make sure the appliance-internal key exists, creating it once with `create(session)`."""
    if connection.cached(key_id) is not None:
        return
    try:
        find_key(connection, key_id, object_class, what)
    except KeyNotFound:
        pass
    else:
        return
    # Checked again under the object lock: another thread (or process) may have just made it.
    with connection.runtime.object_lock, connection.lease() as worker:
        try:
            key = worker.session.get_key(object_class=object_class, id=key_id)
        except p11.NoSuchKey:
            key = create(worker.session)
        connection.remember(key_id, key, worker)
