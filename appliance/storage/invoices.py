"""Invoices, each device's chain head, the outbox and the stored seller: what is kept and its rules.

One device's documents form one chain (zatca-invoice-signing.md 6): `position` 1, 2, 3... in
generation order, each document's PIH the previous one's hash. For `Model` devices the appliance
allocates the ICV, so `icv == position`; for `Xml`/`Pdf` devices the POS does, and `icv` is what
its document says (`position` still orders what it submitted).

The one step that must never be split is "allocate the next position, store the signed bytes,
advance the head, enqueue the delivery" (`InvoiceStore.append`): a crash before its commit consumed
nothing, after it the invoice exists and the outbox will deliver it.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from appliance.storage import invoices_sql
from appliance.storage.database import Database
from appliance.storage.invoices_models import (
    AppendOutcome,
    ChainHead,
    Clock,
    DeliveryResult,
    InvoicePage,
    InvoiceRecord,
    InvoiceStatus,
    NewInvoice,
)


class InvoiceStore:
    """Invoices in the registry's SQLite file, through its `Database` (one writer, one reader)."""

    def __init__(self, database: Database, clock: Clock, *, notify_webhooks: bool = False) -> None:
        self._database = database
        self._clock = clock
        # Status changes also become webhook events (storage/webhooks.py), in the same transaction.
        self._notify_webhooks = notify_webhooks

    async def head(self, device_id: str, initial_hash: str) -> ChainHead:
        return await self._database.read(
            partial(invoices_sql.head, device_id=device_id, initial_hash=initial_hash)
        )

    async def append(self, new: NewInvoice, *, expected_position: int) -> AppendOutcome:
        """Store `new` as the device's next document and enqueue it, in one durable transaction.

        Returns the stored invoice instead when (device, uuid) exists with the same body digest;
        raises `InvoiceConflict` when the body differs, and `ChainMoved` when the head is no longer
        at `expected_position` (another writer advanced it: nothing was stored).
        """
        return await self._database.write(
            partial(invoices_sql.append, new=new, expected_position=expected_position, now=self._clock())
        )

    async def get(self, invoice_id: str) -> InvoiceRecord:
        return await self._database.read(partial(invoices_sql.get, invoice_id=invoice_id))

    async def get_by_seq(self, seq: int) -> InvoiceRecord:
        return await self._database.read(partial(invoices_sql.get_by_seq, seq=seq))

    async def list_invoices(
        self, device_id: str, *, status: InvoiceStatus | None = None, offset: int = 0, limit: int = 50
    ) -> InvoicePage:
        return await self._database.read(
            partial(invoices_sql.page, device_id=device_id, status=status, offset=offset, limit=limit)
        )

    async def chain(self, device_id: str, after_position: int, limit: int) -> list[InvoiceRecord]:
        """Documents of a device in chain order, `limit` at a time, starting after `after_position`."""
        return await self._database.read(
            partial(invoices_sql.chain, device_id=device_id, after_position=after_position, limit=limit)
        )

    # The outbox

    async def record_delivery_of(self, record: InvoiceRecord, result: DeliveryResult) -> InvoiceRecord:
        """ZATCA answered for good about the invoice as the caller holds it (as stored, `Pending`):
        the status and messages are stored and the entry leaves the outbox, in one write (no read of
        the document back)."""
        return await self._database.write(
            partial(
                invoices_sql.record_delivery_of,
                current=record,
                result=result,
                now=self._clock(),
                notify=self._notify_webhooks,
            )
        )

    async def pending_of_device(self, device_id: str) -> list[tuple[int, datetime]]:
        """The device's outbox entries in chain order: (seq, next attempt at)."""
        return await self._database.read(partial(invoices_sql.pending_of_device, device_id=device_id))

    async def undelivered_count(self, device_id: str) -> int:
        """How many of the device's invoices still wait for ZATCA's answer (its outbox entries)."""
        return await self._database.read(partial(invoices_sql.undelivered_count, device_id=device_id))

    async def devices_waiting(self, limit: int) -> list[str]:
        """Devices with undelivered invoices, the one with the oldest first."""
        return await self._database.read(partial(invoices_sql.devices_waiting, limit=limit))

    async def record_retry(self, seq: int, error: str, next_attempt_at: datetime) -> None:
        """A failed attempt: counted, with its error and when the next one may start."""
        await self._database.write(
            partial(invoices_sql.record_retry, seq=seq, error=error, next_attempt_at=next_attempt_at)
        )

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """Entries waiting, and when the oldest of them was enqueued."""
        return await self._database.read(invoices_sql.outbox_stats)

    # The seller a device's models fall back to

    async def put_seller(self, device_id: str, seller_json: bytes) -> None:
        await self._database.write(
            partial(invoices_sql.put_seller, device_id=device_id, seller_json=seller_json, now=self._clock())
        )

    async def seller(self, device_id: str) -> bytes | None:
        return await self._database.read(partial(invoices_sql.seller, device_id=device_id))
