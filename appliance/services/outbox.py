"""The outbox: every stored invoice reaches ZATCA, with the same bytes, until ZATCA answers for good.

Entries live in the `invoice_outbox` table, written in the same transaction as the invoice, so a
restart (or kill -9) loses none: `run` picks up whatever is due at start-up. An attempt that ends
without a verdict (timeout, connection refused, 5xx, 401, a 303 that must never happen) is retried
later with the identical submission (zatca-invoice-signing.md 6: never regenerate, ZATCA may hold
it already) after an exponential, jittered backoff. A verdict ends the entry: 200/202 accepted,
208 (clearance) / 409 (reporting) already accepted = delivered, 400 = `Rejected` with ZATCA's
messages (the chain goes on regardless; the next PIH is this document's hash).

Each device's documents go strictly in chain order, one at a time (its "lane"): ZATCA then receives
each chain in order, so a document's PIH is the hash of the last one it received. A document in
backoff holds back the later ones of its device only; other devices' lanes go on.

The work per delivery is kept off the database where it can be: the invoicing service hands over
the record it just stored (and the device it just read), so a delivery is one HTTP call and one
write recording ZATCA's answer. The table stays the truth: a device's lane is read from it the
first time the device is seen after a start (and after a store error), and a poll every
`outbox_poll_seconds` starts lanes for whatever waits there (restarts, kill -9).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from appliance.config import InvoicingSettings
from appliance.domain import DeviceStatus
from appliance.errors import ApplianceError, StorageError, ZatcaError, ZatcaMessage, ZatcaRejected
from appliance.hsm import AsyncKeyStore
from appliance.metrics import Metrics
from appliance.services.backoff import retry_delay
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import DeliveryResult, InvoiceRecord, InvoiceStatus, StoredMessage
from appliance.storage.models import DeviceRecord
from appliance.storage.protocol import DeviceRegistry
from appliance.zatca import Credentials, InvoiceMessage, InvoiceResult, InvoiceSubmission, ZatcaClient

log = logging.getLogger("appliance.outbox")

# Devices with waiting invoices picked up per poll (beyond those whose lane already runs).
_DUE_BATCH = 512
# Records handed over by the invoicing service and kept until delivered; past this many (a long
# outage), the rest are read back from the table when their turn comes.
_RECORDS_KEPT = 4096

StatusListener = Callable[[InvoiceRecord], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Lane:
    """One device's undelivered invoices in chain order (seq); only the first is ever attempted."""

    device_id: str
    seqs: list[int] = field(default_factory=list)  # a heap
    not_before: dict[int, datetime | None] = field(default_factory=dict)
    # The device as the invoicing service last read it; used for one attempt, then read again.
    device: DeviceRecord | None = None
    # The table may hold entries this lane does not know: read them before the next attempt.
    reload: bool = True

    def blocked_before(self, seq: int) -> bool:
        """An earlier invoice than `seq` waits out a backoff."""
        return any(
            not_before is not None and not_before > datetime.now(UTC)
            for earlier, not_before in self.not_before.items()
            if earlier < seq
        )

    def add(self, seq: int, not_before: datetime | None) -> None:
        if seq not in self.not_before:
            heapq.heappush(self.seqs, seq)
            self.not_before[seq] = not_before


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
        self._slots = asyncio.Semaphore(settings.outbox_concurrency)
        self._lanes: dict[str, _Lane] = {}
        self._lane_tasks: dict[str, asyncio.Task[None]] = {}
        # Devices whose lane emptied in this process: nothing of theirs waits in the table, so a
        # new invoice starts their lane without reading it.
        self._clean: set[str] = set()
        self._records: dict[int, InvoiceRecord] = {}
        self._waiters: dict[int, list[asyncio.Future[InvoiceRecord | None]]] = {}
        self._in_flight: dict[int, asyncio.Task[InvoiceRecord | None]] = {}
        # Decrypted once per device and credential (a token round trip per delivery would be waste);
        # one entry per device, replaced when its CSID changes (renewal), dropped once it has none.
        self._credentials: dict[str, Credentials] = {}
        self._warned_late = False
        self._observed_at = float("-inf")
        self._closing = False

    def wake(self) -> None:
        """Look at the table now instead of at the next poll."""
        self._wake.set()

    def enqueue(self, record: InvoiceRecord, device: DeviceRecord | None = None) -> None:
        """A newly stored invoice (committed): deliver it after the device's earlier ones."""
        if len(self._records) < _RECORDS_KEPT:
            self._records[record.seq] = record
        lane = self._lane(record.device_id)
        lane.add(record.seq, None)
        if device is not None:
            lane.device = device

    def resync(self, device_id: str) -> None:
        """The table may hold an entry of this device that was never enqueued (a failed commit
        whose outcome is unknown): read the device's entries again before its next attempt."""
        self._clean.discard(device_id)
        lane = self._lanes.get(device_id)
        if lane is not None:
            lane.reload = True

    async def run(self) -> None:
        """Start lanes for what waits in the table until cancelled; safe with a full table."""
        while True:
            try:
                await self._round()
            except ApplianceError as exc:
                log.warning("outbox round failed; retrying", extra={"error": str(exc)})
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbox_poll_seconds)

    async def wait_for_delivery(self, record: InvoiceRecord, wait_seconds: float) -> InvoiceRecord | None:
        """Wait at most `wait_seconds` for the first attempt of an enqueued invoice.

        The invoice as recorded when ZATCA answered for good, else None at once when an earlier
        invoice of the device waits out a backoff (this one must wait behind it), or after an
        attempt to retry, or when ZATCA did not answer in time. Nothing is cancelled by the
        timeout: the attempt finishes and records its outcome in the background.
        """
        seq = record.seq
        lane = self._lanes.get(record.device_id)
        if lane is not None and lane.blocked_before(seq):
            return None
        waiter: asyncio.Future[InvoiceRecord | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(seq, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout=wait_seconds)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(seq)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[seq]

    async def drain(self) -> None:
        """Stop starting attempts and wait for those in flight (shutdown, tests)."""
        self._closing = True
        tasks = list(self._lane_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _round(self) -> None:
        if not self._closing:
            for device_id in await self._store.devices_waiting(_DUE_BATCH + len(self._lanes)):
                if device_id not in self._lanes:
                    self._clean.discard(device_id)
                    self._lane(device_id)
        # The backlog read (a count over the table) is needed once per poll interval, not per wake.
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

    def _lane(self, device_id: str) -> _Lane:
        lane = self._lanes.get(device_id)
        if lane is None:
            lane = self._lanes[device_id] = _Lane(device_id, reload=device_id not in self._clean)
            self._clean.discard(device_id)
            if not self._closing:
                self._lane_tasks[device_id] = asyncio.create_task(self._run_lane(lane))
        return lane

    async def _run_lane(self, lane: _Lane) -> None:
        emptied = False
        try:
            while not self._closing:
                if lane.reload:
                    lane.reload = False
                    for stored_seq, next_attempt_at in await self._store.pending_of_device(lane.device_id):
                        lane.add(stored_seq, next_attempt_at)
                if not lane.seqs:
                    emptied = True
                    return  # no await since the check: nothing was added meanwhile
                seq = lane.seqs[0]
                not_before = lane.not_before[seq]
                if not_before is not None:
                    delay = (not_before - datetime.now(UTC)).total_seconds()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        continue
                async with self._slots:
                    task = self._in_flight.get(seq)
                    if task is None:
                        task = self._in_flight[seq] = asyncio.create_task(self._attempt(lane, seq))
                        task.add_done_callback(partial(self._attempt_done, seq))
                    delivered = await asyncio.shield(task)
                for waiter in self._waiters.pop(seq, ()):
                    if not waiter.done():
                        waiter.set_result(delivered)
                if delivered is not None:
                    heapq.heappop(lane.seqs)
                    del lane.not_before[seq]
        except ApplianceError as exc:
            # The table is the truth: the next poll starts this device's lane again from it.
            log.warning("outbox lane stopped", extra={"device_id": lane.device_id, "error": str(exc)})
        finally:
            if self._lanes.get(lane.device_id) is lane:
                del self._lanes[lane.device_id]
                self._lane_tasks.pop(lane.device_id, None)
                if emptied:
                    self._clean.add(lane.device_id)
            for seq in lane.seqs:
                self._records.pop(seq, None)
                for waiter in self._waiters.pop(seq, ()):
                    if not waiter.done():
                        waiter.set_result(None)

    def _attempt_done(self, seq: int, _: object) -> None:
        self._in_flight.pop(seq, None)

    async def _attempt(self, lane: _Lane, seq: int) -> InvoiceRecord | None:
        """One attempt; the invoice as recorded after ZATCA's verdict, or None (retry later)."""
        record = self._records.pop(seq, None)
        if record is None:
            record = await self._store.get_by_seq(seq)
        if record.status is not InvoiceStatus.PENDING:
            return record
        device, lane.device = lane.device, None
        endpoint = "reporting" if record.simplified else "clearance"
        try:
            result = await self._submit(record, device)
        except ZatcaError as exc:
            # No verdict on the document (timeout, 5xx, 401, 303, an odd 4xx): the document is
            # unchanged, so the same bytes go again once the cause is fixed.
            await self._retry(lane, record, endpoint, f"{exc.code}: {exc}")
            return None
        except StorageError:
            raise
        except ApplianceError as exc:  # the token (secret) or the registry
            await self._retry(lane, record, endpoint, f"{exc.code}: {exc}")
            return None
        delivered = await self._store.record_delivery_of(record, _delivery_result(record, result))
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
        return delivered

    async def _submit(self, record: InvoiceRecord, device: DeviceRecord | None) -> InvoiceResult:
        if device is None or device.device_id != record.device_id:
            device = await self._registry.get(record.device_id)
        if device.binary_security_token is None or device.secret_ciphertext is None:
            self._credentials.pop(device.device_id, None)
            raise ZatcaRejected(
                "invoice", 401, [ZatcaMessage("No-Credentials", f"device {device.device_id} holds no CSID")]
            )
        credentials = self._credentials.get(device.device_id)
        if credentials is None or credentials.binary_security_token != device.binary_security_token:
            secret = (await self._keys.decrypt_secret(device.secret_ciphertext)).decode("utf-8")
            credentials = Credentials(device.binary_security_token, secret)
        if device.status is DeviceStatus.RETIRED:
            # Its last invoices still go, but its secret is not kept for a device that is done.
            self._credentials.pop(device.device_id, None)
        else:
            self._credentials[device.device_id] = credentials
        submission = InvoiceSubmission(record.invoice_hash, record.uuid, record.signed_xml)
        if record.simplified:
            return await self._zatca.report_invoice(device.environment, credentials, submission)
        return await self._zatca.clear_invoice(device.environment, credentials, submission)

    async def _retry(self, lane: _Lane, record: InvoiceRecord, endpoint: str, error: str) -> None:
        attempts = record.attempts
        delay = retry_delay(attempts, self._settings.retry_base_seconds, self._settings.retry_max_seconds)
        next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        await self._store.record_retry(record.seq, error, next_attempt_at)
        # Until then this device's later invoices wait too (chain order): nobody waits for them.
        lane.not_before[record.seq] = next_attempt_at
        for later in [seq for seq in lane.seqs if seq != record.seq]:
            for waiter in self._waiters.pop(later, ()):
                if not waiter.done():
                    waiter.set_result(None)
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
