"""Webhook dispatch: every stored status-change event reaches `webhooks.url`, at least once.

Events are written by the invoice store in the transaction that records the new status (so kill -9
between "status stored" and "receiver told" only delays the notification), and this loop sends
them, oldest first, retrying failures with an exponential, jittered backoff. It runs beside the
outbox and shares nothing with invoicing but the database: a slow or dead receiver never delays a
POS (the event row is written in the delivery transaction, not the invoicing one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from appliance.config import WebhookSettings
from appliance.errors import ApplianceError
from appliance.metrics import Metrics
from appliance.services.backoff import retry_delay
from appliance.storage.webhooks import WebhookStore
from appliance.storage.webhooks_models import WebhookEvent
from appliance.webhook import WebhookClient, WebhookFailed

log = logging.getLogger("appliance.webhooks")

# Events sent at once per round: a receiver is one service, not a fleet.
_BATCH = 8


class WebhookDispatcher:
    def __init__(
        self,
        *,
        settings: WebhookSettings,
        store: WebhookStore,
        client: WebhookClient,
        metrics: Metrics,
        poll_seconds: float,
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Send due events until cancelled; safe to start with events left by a previous run."""
        while True:
            sent = 0
            try:
                sent = await self._round()
            except ApplianceError as exc:
                log.warning("webhook round failed; retrying", extra={"error": str(exc)})
            if sent:
                continue  # there may be more due at once
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)

    async def _round(self) -> int:
        events = await self._store.due(_BATCH)
        if events:
            await asyncio.gather(*(self._send(event) for event in events))
        self._metrics.webhook_depth.set(await self._store.depth())
        return len(events)

    async def _send(self, event: WebhookEvent) -> None:
        try:
            await self._client.post(event.event_id, event.payload)
        except WebhookFailed as exc:
            delay = retry_delay(
                event.attempts, self._settings.retry_base_seconds, self._settings.retry_max_seconds
            )
            await self._store.retry(event.seq, str(exc), datetime.now(UTC) + timedelta(seconds=delay))
            self._metrics.webhook_posts.labels(outcome="retry").inc()
            log.info(
                "webhook POST failed; will retry",
                extra={
                    "event_id": event.event_id,
                    "attempt": event.attempts + 1,
                    "retry_in_seconds": round(delay, 2),
                    "error": str(exc)[:300],
                },
            )
            return
        await self._store.delivered(event.seq)
        self._metrics.webhook_posts.labels(outcome="delivered").inc()
