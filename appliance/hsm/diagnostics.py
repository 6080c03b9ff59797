"""Is the token usable? A signing probe for readiness checks and a capability report for admins."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import pkcs11.exceptions as p11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from appliance.errors import HsmError, HsmUnavailable
from appliance.hsm.connection import TokenConnection
from appliance.hsm.failures import describe
from appliance.hsm.models import TokenCheck
from appliance.hsm.objects import (
    SECP256K1_PARAMETERS,
    ensure_key,
    generate_ec_key_pair,
    subject_public_key_info,
    use_key,
)

PROBE_KEY_ID: Final = b"zatca-appliance/probe/v1"
PROBE_KEY_LABEL: Final = "zatca-appliance-probe"
_PROBE_DIGEST: Final = hashlib.sha256(b"zatca-appliance readiness probe").digest()
_WHAT: Final = "probe key"


def probe(connection: TokenConnection) -> None:
    """Sign with the probe key and verify the signature here; HsmUnavailable on any failure."""
    try:
        ensure_key(
            connection,
            PROBE_KEY_ID,
            ObjectClass.PRIVATE_KEY,
            _WHAT,
            lambda session: _create(connection, session),
        )
        signature = use_key(
            connection,
            PROBE_KEY_ID,
            ObjectClass.PRIVATE_KEY,
            _WHAT,
            lambda key: bytes(key.sign(_PROBE_DIGEST, mechanism=Mechanism.ECDSA)),
        )
        _verify(_probe_public_key(connection), signature)
    except HsmUnavailable:
        raise
    except HsmError as exc:
        raise HsmUnavailable(f"{connection.where()} cannot sign: {exc}") from exc


def _create(connection: TokenConnection, session: Any) -> Any:
    public_key, private_key = generate_ec_key_pair(session, PROBE_KEY_ID, PROBE_KEY_LABEL, extractable=False)
    connection.probe_public_key = subject_public_key_info(public_key)
    return private_key


def _probe_public_key(connection: TokenConnection) -> bytes:
    if connection.probe_public_key is None:
        with connection.lease() as worker:
            try:
                public_key = worker.session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=PROBE_KEY_ID)
            except p11.NoSuchKey as exc:
                raise HsmError(f"the probe key's public half is missing on {connection.where()}") from exc
            connection.probe_public_key = subject_public_key_info(public_key)
    return connection.probe_public_key


def _verify(spki: bytes, raw_signature: bytes) -> None:
    public_key = serialization.load_der_public_key(spki)
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise HsmError("the probe key is not an EC key")
    try:
        public_key.verify(
            bytes(encode_ecdsa_signature(raw_signature)),
            _PROBE_DIGEST,
            ec.ECDSA(utils.Prehashed(hashes.SHA256())),
        )
    except (InvalidSignature, ValueError) as exc:
        raise HsmError("the token's probe signature does not verify") from exc


def check(connection: TokenConnection) -> TokenCheck:
    """What the appliance needs from the token, each item tried or looked up."""
    # The mechanism list is cached and session keys live in memory: neither notices a token
    # that has gone, so ask the token first.
    connection.ensure_present()
    mechanisms = connection.mechanisms
    problems: list[str] = []
    logged_in = connection.is_logged_in()
    if not logged_in:
        connection.broken = True  # the next call logs in again
        problems.append("the process is not logged in to the token")
    ecdsa = Mechanism.ECDSA in mechanisms
    if not ecdsa:
        problems.append("no CKM_ECDSA: the token cannot sign ZATCA CSRs or invoices")
    secp256k1_keygen, keygen_problem = _try_session_key_pair(connection)
    if keygen_problem:
        problems.append(keygen_problem)
    aes_key_wrap_pad = Mechanism.AES_KEY_WRAP_PAD in mechanisms
    if not aes_key_wrap_pad:
        problems.append("no CKM_AES_KEY_WRAP_PAD: keys for the Xml/Pdf invoice formats cannot be exported")
    if Mechanism.AES_GCM not in mechanisms or Mechanism.AES_KEY_GEN not in mechanisms:
        problems.append("no CKM_AES_GCM/CKM_AES_KEY_GEN: CSID secrets cannot be sealed in the token")
    return TokenCheck(
        module=connection.module_path,
        token_label=connection.token_label,
        logged_in=logged_in,
        secp256k1_keygen=secp256k1_keygen,
        ecdsa=ecdsa,
        # Only reported: the appliance hashes in Python and signs with raw CKM_ECDSA everywhere.
        ecdsa_sha256=Mechanism.ECDSA_SHA256 in mechanisms,
        aes_key_wrap_pad=aes_key_wrap_pad,
        problems=problems,
    )


def _try_session_key_pair(connection: TokenConnection) -> tuple[bool, str | None]:
    """Generate (and destroy) a secp256k1 session key pair: the mechanism list cannot tell the curve."""
    if Mechanism.EC_KEY_PAIR_GEN not in connection.mechanisms:
        return False, "no CKM_EC_KEY_PAIR_GEN: the token cannot generate device keys"
    with connection.runtime.object_lock, connection.lease() as worker:
        try:
            public_key, private_key = worker.session.generate_keypair(
                KeyType.EC,
                store=False,
                mechanism=Mechanism.EC_KEY_PAIR_GEN,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template={Attribute.EC_PARAMS: SECP256K1_PARAMETERS},
            )
        except p11.PKCS11Error as exc:
            return False, f"secp256k1 key generation failed ({describe(exc)})"
        try:
            if Mechanism.ECDSA in connection.mechanisms:
                _verify(
                    subject_public_key_info(public_key),
                    bytes(private_key.sign(_PROBE_DIGEST, mechanism=Mechanism.ECDSA)),
                )
        except (p11.PKCS11Error, HsmError) as exc:
            detail = describe(exc) if isinstance(exc, p11.PKCS11Error) else str(exc)
            return True, f"secp256k1 signing with CKM_ECDSA failed ({detail})"
        finally:
            private_key.destroy()
            public_key.destroy()
    return True, None
