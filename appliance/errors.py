"""The appliance's exception tree. It knows nothing about HTTP.

    ApplianceError
    ├── ConfigError                 configuration file or secret source is wrong
    ├── ValidationFailed            input refused; carries every FieldProblem at once
    ├── InvoiceDocumentError        an invoice XML cannot be parsed, hashed or stamped (also a ValueError)
    ├── NotFound                    a device (or other record) does not exist
    ├── Conflict                    the same device is already active or being registered
    │   └── DeviceStateConflict     a device left `pending` already; it cannot change state again
    ├── AuthenticationFailed        missing or wrong API key
    ├── Forbidden                   a valid API key that may not take this action
    ├── RateLimited                 an API key used up its registration quota
    ├── UnsupportedMediaType        a body that is not of the media type the endpoint reads
    ├── StorageError                the device registry's database failed (disk, lock, schema)
    ├── HsmError                    anything the PKCS#11 token said or failed to say
    │   ├── HsmUnavailable          module/token missing, wrong PIN, token vanished
    │   ├── HsmMechanismMissing     the token cannot do what we need (e.g. no secp256k1)
    │   ├── KeyNotFound             no key with that CKA_ID
    │   └── KeyNotExportable        a sealed key was asked to leave the token
    └── ZatcaError                  the ZATCA gateway (or its emulator)
        ├── ZatcaRejected           4xx: ZATCA looked at the request and said no (codes kept)
        └── ZatcaUnavailable        connection error, 5xx, unparseable answer
            └── ZatcaTimeout        no answer within the configured timeout

Adapters raise these `from` the library exception that caused them; the API maps them to
HTTP in exactly one place (`appliance.api.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One refused input value. `field` is the name the caller used (e.g. `Organization.Vat`)."""

    field: str
    message: str
    code: str = "Invalid-Field"


class ApplianceError(Exception):
    """Base of every error the appliance raises on purpose."""

    code: str = "Appliance-Error"


class ConfigError(ApplianceError):
    code = "Invalid-Configuration"


class ValidationFailed(ApplianceError):
    code = "Invalid-Request"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class InvoiceDocumentError(ApplianceError, ValueError):
    """An invoice document is not well-formed, lacks what the stamp needs, or would break a ZATCA limit."""

    code = "Invalid-Invoice-Document"


class NotFound(ApplianceError):
    code = "Not-Found"


class Conflict(ApplianceError):
    code = "Device-Exists"

    def __init__(self, message: str, existing_device_id: str) -> None:
        self.existing_device_id = existing_device_id
        super().__init__(message)


class DeviceStateConflict(Conflict):
    """Only a `pending` device may become `active` or `failed`; this one is already past that."""

    code = "Device-State-Conflict"

    def __init__(self, device_id: str, current_status: str, requested_status: str) -> None:
        self.current_status = current_status
        self.requested_status = requested_status
        super().__init__(
            f"device {device_id} is {current_status}; only a pending device can become {requested_status}",
            device_id,
        )


class AuthenticationFailed(ApplianceError):
    code = "Unauthorized"


class Forbidden(ApplianceError):
    """The caller is known but its role or VAT scope does not allow the action."""

    code = "Forbidden"


class RateLimited(ApplianceError):
    code = "Rate-Limited"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(message)


class UnsupportedMediaType(ApplianceError):
    code = "Unsupported-Media-Type"


class StorageError(ApplianceError):
    """The registry database could not be opened, read or written (disk full, locked, newer schema)."""

    code = "Storage-Error"


class HsmError(ApplianceError):
    code = "HSM-Error"


class HsmUnavailable(HsmError):
    code = "HSM-Unavailable"


class HsmMechanismMissing(HsmError):
    code = "HSM-Mechanism-Missing"


class KeyNotFound(HsmError):
    code = "Key-Not-Found"


class KeyNotExportable(HsmError):
    code = "Key-Not-Exportable"


@dataclass(frozen=True, slots=True)
class ZatcaMessage:
    """One code/message pair as ZATCA reported it (code may be empty for bare strings)."""

    code: str
    message: str


class ZatcaError(ApplianceError):
    code = "ZATCA-Error"


class ZatcaRejected(ZatcaError):
    """ZATCA answered 4xx. `messages` keeps ZATCA's own codes (`Invalid-OTP`, `Invalid-CSR`, ...)."""

    code = "ZATCA-Rejected"

    def __init__(self, endpoint: str, status_code: int, messages: list[ZatcaMessage]) -> None:
        self.endpoint = endpoint
        self.status_code = status_code
        self.messages = list(messages)
        summary = "; ".join(f"{m.code}: {m.message}" if m.code else m.message for m in self.messages)
        super().__init__(f"ZATCA rejected {endpoint} with HTTP {status_code}: {summary or 'no details'}")


UnavailableReason = Literal["connect", "timeout", "server-error", "bad-response"]


class ZatcaUnavailable(ZatcaError):
    """ZATCA could not be asked, or its answer could not be understood. `reason` says which."""

    code = "ZATCA-Unavailable"

    def __init__(
        self, endpoint: str, reason: UnavailableReason, detail: str, status_code: int | None = None
    ) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.detail = detail
        self.status_code = status_code
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"ZATCA unavailable for {endpoint}: {reason}{status}: {detail}")


class ZatcaTimeout(ZatcaUnavailable):
    code = "ZATCA-Timeout"

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(endpoint, "timeout", detail)
