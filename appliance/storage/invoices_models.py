"""What the invoice store keeps (no I/O here): invoices, chain heads, outbox entries."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import msgspec

from appliance.errors import Conflict, StorageError

Clock = Callable[[], datetime]
InvoiceSource = Literal["model", "submitted"]


class InvoiceStatus(enum.StrEnum):
    PENDING = "Pending"
    REPORTED = "Reported"
    REPORTED_WITH_WARNINGS = "ReportedWithWarnings"
    CLEARED = "Cleared"
    CLEARED_WITH_WARNINGS = "ClearedWithWarnings"
    REJECTED = "Rejected"


class InvoiceConflict(Conflict):
    """A `Uuid` already stored for this device with another body: the stored invoice is named."""

    code = "Invoice-Exists"


class ChainMoved(StorageError):
    """The chain head moved between reading it and storing the next document (nothing was stored)."""

    code = "Chain-Moved"


class StoredMessage(msgspec.Struct, frozen=True):
    """One of ZATCA's validation messages (or the appliance's own warning on a submitted document)."""

    type: str
    code: str
    category: str
    message: str
    status: str = ""


class NewInvoice(msgspec.Struct, frozen=True, kw_only=True):
    """A signed (or verified) document, ready to join its device's chain."""

    invoice_id: str
    device_id: str
    icv: int
    uuid: str
    invoice_number: str
    invoice_hash: str
    pih: str
    kind: str
    simplified: bool
    signed_xml: bytes
    qr: str
    body_digest: str
    source: InvoiceSource
    # Warnings the appliance found itself (a submitted document whose ICV/PIH does not follow).
    warnings: tuple[StoredMessage, ...] = ()


class InvoiceRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    invoice_id: str
    device_id: str
    position: int
    icv: int
    uuid: str
    invoice_number: str
    invoice_hash: str
    pih: str
    kind: str
    simplified: bool
    signed_xml: bytes
    qr: str
    body_digest: str
    source: InvoiceSource
    status: InvoiceStatus
    http_status: int | None
    info_messages: tuple[StoredMessage, ...]
    warning_messages: tuple[StoredMessage, ...]
    error_messages: tuple[StoredMessage, ...]
    cleared_xml: bytes | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None

    def __repr__(self) -> str:
        return f"InvoiceRecord(invoice_id={self.invoice_id!r}, device_id={self.device_id!r}, icv={self.icv})"


class ChainHead(msgspec.Struct, frozen=True):
    """The last document of a device's chain; position 0 (and the initial PIH) before the first."""

    position: int
    icv: int
    invoice_hash: str


class InvoicePage(msgspec.Struct, frozen=True):
    items: list[InvoiceRecord]
    total: int
    offset: int
    limit: int


class AppendOutcome(msgspec.Struct, frozen=True):
    """`created` False: the same (device, uuid, body) was stored before and `record` is that invoice."""

    record: InvoiceRecord
    created: bool


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    status: InvoiceStatus
    http_status: int
    info_messages: tuple[StoredMessage, ...] = ()
    warning_messages: tuple[StoredMessage, ...] = ()
    error_messages: tuple[StoredMessage, ...] = ()
    cleared_xml: bytes | None = None
