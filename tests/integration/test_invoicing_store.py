"""The invoice store on a real SQLite file: one durable step per document, idempotent by (device, uuid)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from appliance.errors import Conflict
from appliance.invoices.namespaces import INITIAL_PIH
from appliance.storage import SqliteRegistry
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import (
    ChainMoved,
    DeliveryResult,
    InvoiceStatus,
    NewInvoice,
    StoredMessage,
)
from appliance.storage.sql import utc_now

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _new(
    device_id: str, icv: int, pih: str, *, uuid_text: str | None = None, digest: str = "d1"
) -> NewInvoice:
    return NewInvoice(
        invoice_id=str(uuid.uuid4()),
        device_id=device_id,
        icv=icv,
        uuid=uuid_text or str(uuid.uuid4()),
        invoice_number=f"INV-{icv}",
        invoice_hash=f"hash-{icv}",
        pih=pih,
        kind="SimplifiedInvoice",
        simplified=True,
        signed_xml=b"<Invoice/>",
        qr="qr",
        body_digest=digest,
        source="model",
    )


async def test_chain_outbox_and_idempotency(tmp_path: Path) -> None:
    registry = await SqliteRegistry.open(tmp_path / "r.sqlite3")
    store = InvoiceStore(registry.database, utc_now)
    device = str(uuid.uuid4())
    try:
        head = await store.head(device, INITIAL_PIH)
        assert (head.position, head.invoice_hash) == (0, INITIAL_PIH)
        first = await store.append(_new(device, 1, INITIAL_PIH, uuid_text="u-1"), expected_position=0)
        assert first.created and first.record.position == 1 and first.record.status is InvoiceStatus.PENDING
        head = await store.head(device, INITIAL_PIH)
        assert (head.position, head.icv, head.invoice_hash) == (1, 1, "hash-1")

        # Same uuid, same body: the stored invoice, no second entry. Different body: 409 naming it.
        again = await store.append(_new(device, 2, "hash-1", uuid_text="u-1"), expected_position=1)
        assert not again.created and again.record.invoice_id == first.record.invoice_id
        with pytest.raises(Conflict, match=first.record.invoice_id):
            await store.append(
                _new(device, 2, "hash-1", uuid_text="u-1", digest="other"), expected_position=1
            )
        # A writer whose head is stale stores nothing.
        with pytest.raises(ChainMoved):
            await store.append(_new(device, 2, "hash-1"), expected_position=0)
        assert (await store.head(device, INITIAL_PIH)).position == 1

        assert await store.undelivered_count(device) == 1
        assert [seq for seq, _ in await store.pending_of_device(device)] == [first.record.seq]
        depth, oldest = await store.outbox_stats()
        assert depth == 1 and oldest is not None
        delivered = await store.record_delivery_of(
            first.record,
            DeliveryResult(
                status=InvoiceStatus.REPORTED_WITH_WARNINGS,
                http_status=202,
                warning_messages=(StoredMessage("WARNING", "BR-KSA-98", "KSA", "late"),),
            ),
        )
        assert delivered.status is InvoiceStatus.REPORTED_WITH_WARNINGS
        assert delivered.warning_messages[0].code == "BR-KSA-98"
        assert await store.outbox_stats() == (0, None)
        assert await store.undelivered_count(device) == 0
        page = await store.list_invoices(device, status=InvoiceStatus.REPORTED_WITH_WARNINGS)
        assert page.total == 1
    finally:
        await registry.close()
