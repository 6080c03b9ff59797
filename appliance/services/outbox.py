"""The outbox: every stored invoice reaches ZATCA, with the same bytes, until ZATCA answers for good.

Entries live in the `invoice_outbox` table, written in the same transaction as the invoice, so a
restart (or kill -9) loses none: `run` picks up whatever is due at start-up. An attempt that ends
without a verdict (timeout, connection refused, 5xx, 401, a 303 that must never happen) is retried
later with the identical submission (zatca-invoice-signing.md 6: never regenerate, ZATCA may hold
it already) after an exponential, jittered backoff. A verdict ends the entry: 200/202 accepted,
208 (clearance) / 409 (reporting) already accepted = delivered, 400 = `Rejected` with ZATCA's
messages (the chain goes on regardless; the next PIH is this document's hash).

Deliveries are not ordered per device: the chain is fixed at generation time (ICV and PIH are in the
signed bytes), and ZATCA judges each document by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from appliance.config import InvoicingSettings
from appliance.errors import ApplianceError, StorageError, ZatcaError, ZatcaMessage, ZatcaRejected
from appliance.hsm import AsyncKeyStore
from appliance.metrics import Metrics
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import DeliveryResult, InvoiceRecord, InvoiceStatus, StoredMessage
from appliance.storage.protocol import DeviceRegistry
from appliance.zatca import Credentials, InvoiceMessage, InvoiceResult, InvoiceSubmission, ZatcaClient

log = logging.getLogger("appliance.outbox")

# Due entries read per round; enough to find work for every free slot across many devices.
_DUE_BATCH = 512

StatusListener = Callable[[InvoiceRecord], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        *,
        settings: InvoicingSettings,
        store: InvoiceStore,
        registry: DeviceRegistry,
        keys: AsyncKeyStore,
        zatca: ZatcaClient,
        metrics: Metrics,
        on_status: StatusListener | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._keys = keys
        self._zatca = zatca
        self._metrics = metrics
        self._on_status = on_status
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[bool]] = {}
        self._device_of: dict[int, str] = {}
        # Decrypted once per device and credential: a token round trip per delivery would be waste.
        self._credentials: dict[tuple[str, str], Credentials] = {}
        self._warned_late = False
        self._observed_at = float("-inf")

    def wake(self) -> None:
        """New work is in the table: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due entries until cancelled; safe to start with a full table after a restart."""
        while True:
            try:
                await self._round()
            except ApplianceError as exc:
                log.warning("outbox round failed; retrying", extra={"error": str(exc)})
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbox_poll_seconds)

    async def deliver_now(self, seq: int, device_id: str, wait_seconds: float) -> bool:
        """One attempt for this entry (joining one in flight), waited for at most `wait_seconds`.

        True when ZATCA answered for good. The attempt is not cancelled by the timeout: it finishes
        and records its outcome in the background.
        """
        task = self._start(seq, device_id)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=wait_seconds)
        except TimeoutError:
            return False

    async def drain(self) -> None:
        """Wait for attempts in flight (shutdown, tests)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _round(self) -> None:
        free = self._settings.outbox_concurrency - len(self._in_flight)
        if free > 0:
            # One delivery per device at a time, oldest first: ZATCA then receives each chain in
            # order, so a document's PIH is the hash of the last one it received (no PIH warning).
            busy = set(self._device_of.values())
            for entry in await self._store.due(_DUE_BATCH, frozenset(self._in_flight)):
                if free <= 0:
                    break
                if entry.device_id in busy:
                    continue
                busy.add(entry.device_id)
                self._start(entry.seq, entry.device_id)
                free -= 1
        # Rounds run once or twice per invoice under load; the backlog read (a count over the
        # table) is needed once per poll interval, not per invoice.
        now = time.monotonic()
        if now - self._observed_at >= self._settings.outbox_poll_seconds:
            self._observed_at = now
            await self._observe_backlog()

    async def _observe_backlog(self) -> None:
        depth, oldest = await self._store.outbox_stats()
        age = 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        self._metrics.outbox_depth.set(depth)
        self._metrics.outbox_oldest_age_seconds.set(age)
        late = age > self._settings.undelivered_warning_seconds
        if late and not self._warned_late:
            log.warning(
                "an invoice has waited for ZATCA longer than the warning threshold",
                extra={"oldest_age_seconds": round(age), "depth": depth},
            )
        self._warned_late = late

    def _start(self, seq: int, device_id: str) -> asyncio.Task[bool]:
        task = self._in_flight.get(seq)
        if task is None:
            task = asyncio.create_task(self._attempt(seq))
            self._in_flight[seq] = task
            self._device_of[seq] = device_id
            task.add_done_callback(lambda _: self._finished(seq))
        return task

    def _finished(self, seq: int) -> None:
        self._in_flight.pop(seq, None)
        self._device_of.pop(seq, None)
        # The device's next document may be waiting for this one.
        self._wake.set()

    async def _attempt(self, seq: int) -> bool:
        try:
            record = await self._store.get_by_seq(seq)
        except ApplianceError as exc:
            log.warning("outbox entry unreadable", extra={"seq": seq, "error": str(exc)})
            return False
        if record.status is not InvoiceStatus.PENDING:
            return True
        endpoint = "reporting" if record.simplified else "clearance"
        try:
            result = await self._submit(record)
        except ZatcaRejected as exc:
            # No verdict on the document (401, 303, an odd 4xx): the document is unchanged, so the
            # same bytes go again once the cause is fixed.
            return await self._retry(record, endpoint, f"{exc.code}: {exc}")
        except ZatcaError as exc:
            return await self._retry(record, endpoint, f"{exc.code}: {exc}")
        except StorageError:
            raise
        except ApplianceError as exc:  # the token (secret) or the registry
            return await self._retry(record, endpoint, f"{exc.code}: {exc}")
        delivered = await self._store.record_delivery(seq, _delivery_result(record, result))
        self._metrics.invoice_deliveries.labels(endpoint=endpoint, outcome=str(delivered.status)).inc()
        log.info(
            "invoice delivered",
            extra={
                "device_id": record.device_id,
                "invoice_id": record.invoice_id,
                "icv": record.icv,
                "status": str(delivered.status),
                "http_status": result.http_status,
            },
        )
        if self._on_status is not None:
            await self._on_status(delivered)
        return True

    async def _submit(self, record: InvoiceRecord) -> InvoiceResult:
        device = await self._registry.get(record.device_id)
        if device.binary_security_token is None or device.secret_ciphertext is None:
            raise ZatcaRejected(
                "invoice", 401, [ZatcaMessage("No-Credentials", f"device {device.device_id} holds no CSID")]
            )
        key = (device.device_id, device.binary_security_token)
        credentials = self._credentials.get(key)
        if credentials is None:
            secret = (await self._keys.decrypt_secret(device.secret_ciphertext)).decode("utf-8")
            credentials = Credentials(device.binary_security_token, secret)
            self._credentials[key] = credentials
        submission = InvoiceSubmission(record.invoice_hash, record.uuid, record.signed_xml)
        if record.simplified:
            return await self._zatca.report_invoice(device.environment, credentials, submission)
        return await self._zatca.clear_invoice(device.environment, credentials, submission)

    async def _retry(self, record: InvoiceRecord, endpoint: str, error: str) -> bool:
        attempts = record.attempts
        delay = min(
            self._settings.retry_max_seconds, self._settings.retry_base_seconds * 2 ** min(attempts, 20)
        )
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        await self._store.record_retry(record.seq, error, datetime.now(UTC) + timedelta(seconds=delay))
        self._metrics.invoice_deliveries.labels(endpoint=endpoint, outcome="retry").inc()
        log.info(
            "invoice delivery failed; will retry",
            extra={
                "device_id": record.device_id,
                "invoice_id": record.invoice_id,
                "attempt": attempts + 1,
                "retry_in_seconds": round(delay, 2),
                "error": error[:300],
            },
        )
        return False


def _stored(messages: tuple[InvoiceMessage, ...]) -> tuple[StoredMessage, ...]:
    return tuple(StoredMessage(m.type, m.code, m.category, m.message, m.status) for m in messages)


def _delivery_result(record: InvoiceRecord, result: InvoiceResult) -> DeliveryResult:
    if result.accepted:
        warned = bool(result.warning_messages) or result.http_status == 202 or result.status == "WARNING"
        if record.simplified:
            status = InvoiceStatus.REPORTED_WITH_WARNINGS if warned else InvoiceStatus.REPORTED
        else:
            status = InvoiceStatus.CLEARED_WITH_WARNINGS if warned else InvoiceStatus.CLEARED
        # A 409 carries a Duplicate-Invoice "error" that only says it was reported before.
        errors = () if result.duplicate else _stored(result.error_messages)
        info = _stored(result.info_messages)
        if result.duplicate:
            info += tuple(
                StoredMessage("INFO", m.code, m.category, m.message, m.status) for m in result.error_messages
            )
    else:
        status = InvoiceStatus.REJECTED
        errors = _stored(result.error_messages)
        info = _stored(result.info_messages)
    return DeliveryResult(
        status=status,
        http_status=result.http_status,
        info_messages=info,
        warning_messages=_stored(result.warning_messages),
        error_messages=errors,
        cleared_xml=result.cleared_invoice,
    )
