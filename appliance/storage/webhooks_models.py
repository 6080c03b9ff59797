"""What the webhook outbox keeps (no I/O here): the event body as sent, and its delivery state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec


class WebhookPayload(msgspec.Struct, frozen=True):
    """The JSON body POSTed to `webhooks.url` for one invoice status change (published casing)."""

    event: str
    eventId: str  # noqa: N815 - the published API's casing
    invoiceId: str  # noqa: N815
    deviceId: str  # noqa: N815
    uuid: str
    invoiceNumber: str  # noqa: N815
    icv: int
    invoiceHash: str  # noqa: N815
    previousStatus: str  # noqa: N815
    status: str
    httpStatus: int | None  # noqa: N815
    occurredAt: str  # noqa: N815


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One stored event; `payload` is the exact body, resent unchanged by every retry."""

    seq: int
    event_id: str
    payload: bytes
    attempts: int
    enqueued_at: datetime
