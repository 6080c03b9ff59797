"""Small value types shared by every layer (no I/O here)."""

from __future__ import annotations

import enum
from typing import Literal


class Environment(enum.StrEnum):
    DEVELOPMENT = "Development"
    SIMULATION = "Simulation"
    PRODUCTION = "Production"


class InvoiceFormat(enum.StrEnum):
    """How the POS signs invoices. Only `Model` keeps the key sealed in the token."""

    XML = "Xml"
    PDF = "Pdf"
    MODEL = "Model"

    @property
    def key_leaves_token(self) -> bool:
        return self is not InvoiceFormat.MODEL


class DeviceStatus(enum.StrEnum):
    """A registration's progress: pending -> compliance -> compliant -> active, or failed.

    `compliance`: ZATCA issued the compliance CSID (stored, secret sealed); the compliance
    documents are being checked. `compliant`: every check passed; the production CSID is being
    requested. With `zatca.onboarding: compliance` a device goes from pending to active directly.
    """

    PENDING = "pending"
    COMPLIANCE = "compliance"
    COMPLIANT = "compliant"
    ACTIVE = "active"
    FAILED = "failed"
    RETIRED = "retired"


# Statuses in which a device holds no key and no EGS identity: its serial may register again.
CLOSED_STATUSES = frozenset({DeviceStatus.FAILED, DeviceStatus.RETIRED})


class ApiKeyRole(enum.StrEnum):
    """What an API key may do, within its VATs. `admin` may do everything, retire any device included."""

    REGISTER = "register"
    INVOICE = "invoice"
    READ = "read"
    ADMIN = "admin"


# ZATCA's `title` is four 0/1 flags in the order T (standard), S (simplified), C, Z (C and Z reserved).
InvoiceTypeName = Literal["Standard", "Simplified", "Both"]
INVOICE_TYPE_BY_NAME: dict[InvoiceTypeName, str] = {"Standard": "1000", "Simplified": "0100", "Both": "1100"}
INVOICE_TYPE_NAME_BY_CODE: dict[str, InvoiceTypeName] = {
    code: name for name, code in INVOICE_TYPE_BY_NAME.items()
}

# The certificate template ZATCA's CA accepts in each environment (zatca-protocol.md 5.3).
CERTIFICATE_TEMPLATE: dict[Environment, str] = {
    Environment.DEVELOPMENT: "TSTZATCA-Code-Signing",
    Environment.SIMULATION: "PREZATCA-Code-Signing",
    Environment.PRODUCTION: "ZATCA-Code-Signing",
}
