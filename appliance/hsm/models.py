"""What the key store hands out: plain frozen values, no PKCS#11 types."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field


class KeyPolicy(enum.StrEnum):
    """Whether a device key may ever leave the token.

    SEALED keys are generated CKA_SENSITIVE=true, CKA_EXTRACTABLE=false: the token refuses every
    way out. EXPORTABLE keys are sensitive too (CKA_VALUE cannot be read) but extractable, so the
    appliance can hand them out once, wrapped under a session key (pkcs11-notes.md §4 variant b).
    """

    SEALED = "sealed"
    EXPORTABLE = "exportable"


@dataclass(frozen=True)
class DeviceKeyInfo:
    """One device key as the token describes it (the flags are the token's, not our intent)."""

    device_id: uuid.UUID
    key_id_hex: str
    label: str
    policy: KeyPolicy
    sensitive: bool
    extractable: bool
    always_sensitive: bool
    never_extractable: bool
    local: bool


@dataclass(frozen=True)
class TokenCheck:
    """What `KeyStore.check` found; `problems` explains every missing capability in one line each."""

    module: str
    token_label: str
    logged_in: bool
    secp256k1_keygen: bool
    ecdsa: bool
    ecdsa_sha256: bool
    aes_key_wrap_pad: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
