"""The webhook outbox: invoice status changes waiting for the receiver at `webhooks.url`.

Events are written by `InvoiceStore.record_delivery_of` in the transaction that records the new
status (when webhooks are configured), so a restart or kill -9 loses none and never invents one.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from appliance.storage import webhooks_sql
from appliance.storage.database import Database
from appliance.storage.invoices_models import Clock
from appliance.storage.webhooks_models import WebhookEvent


class WebhookStore:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def due(self, limit: int) -> list[WebhookEvent]:
        return await self._database.read(partial(webhooks_sql.due, now=self._clock(), limit=limit))

    async def delivered(self, seq: int) -> None:
        await self._database.write(partial(webhooks_sql.delivered, seq=seq))

    async def retry(self, seq: int, error: str, next_attempt_at: datetime) -> None:
        await self._database.write(
            partial(webhooks_sql.retry, seq=seq, error=error, next_attempt_at=next_attempt_at)
        )

    async def depth(self) -> int:
        return await self._database.read(webhooks_sql.depth)
