"""What the registry stores: devices, their activation data and API keys (no I/O here).

Timestamps are timezone-aware UTC. `certificate_serial` is the certificate's serial number as
lowercase hexadecimal without prefix or separators (`format(serial, "x")`, what
`certificate_serial_text` returns): the form administrators compare with `openssl x509 -serial`
(case aside). XML-DSig's decimal `X509SerialNumber` is `int(certificate_serial, 16)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import msgspec

from appliance.domain import ApiKeyRole, DeviceStatus, Environment, InvoiceFormat

CredentialKind = Literal["compliance", "production"]

# Values that must never reach a log line through repr(): credentials and CSR bodies.
_REDACTED_FIELDS = frozenset(
    {
        "binary_security_token",
        "secret_ciphertext",
        "csr_pem",
        "compliance_token",
        "compliance_secret_ciphertext",
    }
)


class _Redacted:
    def __repr__(self) -> str:
        return "<redacted>"


_REDACTED = _Redacted()


def _visible_fields(struct: msgspec.Struct) -> Iterator[tuple[str, Any]]:
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        yield name, (_REDACTED if value is not None and name in _REDACTED_FIELDS else value)


def _redacted_repr(struct: msgspec.Struct) -> str:
    fields = ", ".join(f"{name}={value!r}" for name, value in _visible_fields(struct))
    return f"{type(struct).__name__}({fields})"


class DeviceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One registration attempt of one EGS unit, from `pending` to `active` or `failed`."""

    device_id: str
    environment: Environment
    invoice_format: InvoiceFormat
    status: DeviceStatus
    vat: str
    egs_serial: str
    common_name: str
    serial_number: str
    organization_name: str
    organization_unit: str
    country: str
    location: str
    industry: str
    invoice_type: str
    key_label: str
    key_id_hex: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    csr_pem: str | None = None
    request_id: str | None = None
    binary_security_token: str | None = None
    secret_ciphertext: bytes | None = None
    certificate_serial: str | None = None
    certificate_not_before: datetime | None = None
    certificate_not_after: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    # Set together when the device is retired (its key destroyed); `retired_by` is an actor.
    retired_at: datetime | None = None
    retired_by: str | None = None
    # Onboarding (appliance.services.onboarding). `credential_kind` says what `binary_security_token`
    # is: the production CSID, or (with `zatca.onboarding: compliance`) the compliance CSID. The
    # compliance CSID is kept beside it, its secret sealed like the production one.
    credential_kind: CredentialKind | None = None
    compliance_request_id: str | None = None
    compliance_token: str | None = None
    compliance_secret_ciphertext: bytes | None = None
    compliance_certificate_serial: str | None = None
    # A renewal in flight (appliance.services.renewal): its new key's CKA_ID and label are written
    # before the key is generated, so reconciliation can tell it from a stray key.
    renewal_key_id_hex: str | None = None
    renewal_key_label: str | None = None
    renewal_started_at: datetime | None = None

    def __repr__(self) -> str:
        return _redacted_repr(self)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(_visible_fields(self))


class ComplianceCsidData(msgspec.Struct, frozen=True, kw_only=True):
    """The compliance CSID of a registration (or a 428 renewal); the secret sealed by the token."""

    csr_pem: str
    request_id: str
    binary_security_token: str
    secret_ciphertext: bytes
    certificate_serial: str

    def __repr__(self) -> str:
        return _redacted_repr(self)


class ComplianceCheckRecord(msgspec.Struct, frozen=True, kw_only=True):
    """ZATCA's verdict on one compliance document (`messages`: `CODE: text` lines, errors first)."""

    device_id: str
    compliance_request_id: str
    kind: str
    uuid: str
    invoice_hash: str
    http_status: int
    status: str
    messages: list[str]
    checked_at: datetime


class RenewalData(msgspec.Struct, frozen=True, kw_only=True):
    """A renewal's outcome: the new key (already in the token) and the new production CSID.

    `compliance` is set when ZATCA answered 428 and the checks ran with renewed compliance credentials.
    """

    key_id_hex: str
    key_label: str
    activation: ActivationData
    compliance: ComplianceCsidData | None = None

    def __repr__(self) -> str:
        return f"RenewalData(key_id_hex={self.key_id_hex!r}, key_label={self.key_label!r})"


class ActivationData(msgspec.Struct, frozen=True, kw_only=True):
    """What ZATCA returned for an accepted CSR; `secret_ciphertext` was encrypted by the token."""

    csr_pem: str
    request_id: str
    binary_security_token: str
    secret_ciphertext: bytes
    certificate_serial: str
    certificate_not_before: datetime
    certificate_not_after: datetime

    def __repr__(self) -> str:
        return _redacted_repr(self)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(_visible_fields(self))


class DevicePage(msgspec.Struct, frozen=True):
    items: list[DeviceRecord]
    total: int
    offset: int
    limit: int


class ApiKeyInfo(msgspec.Struct, frozen=True):
    """An API key as an administrator sees it; the key itself is never stored.

    `vats` None: every VAT. `registrations_per_hour` None: no quota.
    """

    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    key_id: str = ""
    roles: frozenset[ApiKeyRole] = frozenset()
    vats: frozenset[str] | None = None
    registrations_per_hour: int | None = None


class ApiKeyScope(msgspec.Struct, frozen=True, kw_only=True):
    """What an authenticated API key may do: its roles, within its VATs (None: every VAT)."""

    key_id: str
    name: str
    roles: frozenset[ApiKeyRole]
    vats: frozenset[str] | None = None
    registrations_per_hour: int | None = None

    @property
    def actor(self) -> str:
        """How the audit trail and `created_by` name this key: by its id, which is never reused."""
        return api_key_actor(self.key_id)

    def has_role(self, role: ApiKeyRole) -> bool:
        return role in self.roles or ApiKeyRole.ADMIN in self.roles

    def sees_vat(self, vat: str) -> bool:
        return self.vats is None or vat in self.vats


def api_key_actor(key_id: str) -> str:
    """The actor of a request authenticated by the API key `key_id`.

    Prefixed so that a key can never pass for the CLI (`cli`) or the appliance (`system`).
    """
    return f"apikey:{key_id}"


def certificate_serial_text(serial_number: int) -> str:
    return format(serial_number, "x")


def is_certificate_serial_text(text: str) -> bool:
    return bool(text) and all(character in "0123456789abcdef" for character in text)
