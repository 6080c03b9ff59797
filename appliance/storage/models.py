"""What the registry stores: devices, their activation data and API keys (no I/O here).

Timestamps are timezone-aware UTC. `certificate_serial` is the certificate's serial number as
lowercase hexadecimal without prefix or separators (`format(serial, "x")`, what
`certificate_serial_text` returns): the form administrators compare with `openssl x509 -serial`
(case aside). XML-DSig's decimal `X509SerialNumber` is `int(certificate_serial, 16)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec

from appliance.domain import DeviceStatus, Environment, InvoiceFormat

# Values that must never reach a log line through repr(): credentials and CSR bodies.
_REDACTED_FIELDS = frozenset({"binary_security_token", "secret_ciphertext", "csr_pem"})


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

    def __repr__(self) -> str:
        return _redacted_repr(self)

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(_visible_fields(self))


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
    """An API key as an administrator sees it; the key itself is never stored."""

    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def certificate_serial_text(serial_number: int) -> str:
    return format(serial_number, "x")


def is_certificate_serial_text(text: str) -> bool:
    return bool(text) and all(character in "0123456789abcdef" for character in text)
