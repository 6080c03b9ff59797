"""Invoicing: Model documents signed and chained by the appliance, Xml/Pdf documents verified and chained.

One Model invoice (design.md "One Model invoice, as data"): holding the device's chain lock, read
the head, render with ICV = head + 1 and PIH = head hash, hash and sign in the token (one worker
thread hop for the whole render-hash-stamp, the token signature called from inside it), and store
signed bytes + new head + outbox entry in one durable transaction. Only then is ZATCA asked:
simplified documents are answered at once and reported by the outbox; standard ones are cleared
while the POS waits, at most `invoicing.clearance_timeout_seconds`, else answered `Pending`.

The lock is the device's lock shared with renewal and retirement (services/device_locks.py): the
device is read again once it is held, so an invoice is never signed with a key being destroyed nor
stored for a device retired or renewed while the request waited (409, as for an inactive device).
It is per process: the service is the only writer of invoices (the CLI only reads them), and
`InvoiceStore.append` refuses a head that moved anyway, so a second writer could never fork a
chain, only fail.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from cryptography import x509

from appliance.config import AppConfig
from appliance.domain import DeviceStatus, InvoiceFormat
from appliance.errors import (
    ApplianceError,
    Conflict,
    FieldProblem,
    InvoiceDocumentError,
    NotFound,
    StorageError,
    ValidationFailed,
)
from appliance.hsm import AsyncKeyStore
from appliance.invoices.facts import InvoiceFacts, parse_invoice_facts
from appliance.invoices.model import SellerIdentity
from appliance.invoices.model_decode import decode_invoice_model
from appliance.invoices.namespaces import INITIAL_PIH
from appliance.invoices.render import render_invoice
from appliance.invoices.stamp import stamp_invoice
from appliance.invoices.verify import VerificationReport, verify_invoice
from appliance.metrics import Metrics
from appliance.services.device_locks import DeviceLocks
from appliance.services.invoice_bodies import decoded_model
from appliance.services.outbox import Outbox
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import (
    AppendOutcome,
    ChainHead,
    ChainMoved,
    InvoicePage,
    InvoiceRecord,
    InvoiceStatus,
    NewInvoice,
    StoredMessage,
)
from appliance.storage.models import DeviceRecord
from appliance.storage.protocol import DeviceRegistry
from appliance.zatca.token import decode_binary_security_token

log = logging.getLogger("appliance.invoicing")

# A minimal simplified model: PUT Seller checks a Seller object by decoding it inside this one.
_SELLER_PROBE: dict[str, Any] = {
    "InvoiceNumber": "SELLER-CHECK",
    "Type": "Simplified",
    "Lines": [
        {"Name": "Seller check", "Quantity": "1", "UnitPrice": "1", "VatCategory": "S", "VatRate": "15"}
    ],
}


class DeviceFormatConflict(Conflict):
    """The device's invoice format does not fit the route (Model vs Xml/Pdf)."""

    code = "Device-Format-Conflict"


class DeviceNotActive(Conflict):
    code = "Device-Not-Active"


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    """A stored invoice; `created` False when a retry found it already stored."""

    record: InvoiceRecord
    created: bool


@dataclass(frozen=True, slots=True)
class SubmittedDocument:
    """`POST .../Invoices/Submit`, validated at the edge (base64 decoded)."""

    uuid: str
    invoice_number: str
    signed_xml: bytes


class InvoicingService:
    def __init__(
        self,
        *,
        config: AppConfig,
        keys: AsyncKeyStore,
        registry: DeviceRegistry,
        store: InvoiceStore,
        outbox: Outbox,
        metrics: Metrics,
        locks: DeviceLocks,
    ) -> None:
        self._config = config
        self._keys = keys
        self._registry = registry
        self._store = store
        self._outbox = outbox
        self._metrics = metrics
        self._locks = locks
        # Each device's chain head as this process last stored it (read once, then kept): one
        # database read less inside the device lock. `append` still checks the stored head, so a
        # stale entry can only fail a request (ChainMoved, and the entry is dropped), never fork.
        self._heads: dict[str, ChainHead] = {}
        self._certificates: dict[str, tuple[str, x509.Certificate]] = {}
        self._sellers: dict[str, bytes | None] = {}
        # Devices last seen here as active Model devices: their requests skip the early look-up
        # (the device is read again under its lock anyway); bounded by the fleet.
        self._model_devices: set[str] = set()

    # Model devices

    async def issue(self, device_id: str, body: bytes, vats: frozenset[str] | None = None) -> IssuedInvoice:
        """Sign, chain, store and (for standard documents) clear one Model invoice."""
        started = time.perf_counter()
        if device_id not in self._model_devices:
            await self._active_device(device_id, vats, model=True)  # refuse early, before decoding
        stored_seller = await self._stored_seller(device_id)
        try:
            model, body_digest = await decoded_model(body, stored_seller)
        except ValidationFailed:
            # What is wrong with the device (unknown, out of the key's scope, inactive, another
            # format) is answered before what is wrong with the body, as for an unknown device.
            await self._active_device(device_id, vats, model=True)
            raise
        # A retried Uuid is found by `append` (the stored invoice, or InvoiceConflict) in the same
        # transaction, so new invoices (nearly all) pay no look-up of their own; a retry only
        # costs a signature that is thrown away.
        # Once the lock is held, finish even if the POS goes away: the token and the database must
        # not see half an invoice, and a stored invoice must be enqueued (the same transaction).
        with anyio.CancelScope(shield=True):
            async with self._locks(device_id):
                # Read again under the lock: renewal or retirement may have changed the key and
                # certificate while this request waited for it.
                try:
                    device = await self._active_device(device_id, vats, model=True)
                except ApplianceError:
                    self._model_devices.discard(device_id)
                    raise
                self._model_devices.add(device_id)
                certificate = self._certificate(device)
                seller = SellerIdentity(vat=device.vat, name=device.organization_name)
                sign = self._keys.signer_in_worker(uuid_module.UUID(hex=device.key_id_hex))
                head = await self._head(device_id)

                def sign_document() -> tuple[bytes, str, str]:
                    unsigned = render_invoice(model, seller, icv=head.position + 1, pih=head.invoice_hash)
                    signed = stamp_invoice(unsigned, certificate, sign)
                    return signed.xml, signed.invoice_hash, signed.qr

                xml, invoice_hash, qr = await anyio.to_thread.run_sync(
                    sign_document, limiter=self._keys.limiter
                )
                outcome = await self._append(
                    NewInvoice(
                        invoice_id=str(uuid_module.uuid4()),
                        device_id=device_id,
                        icv=head.position + 1,
                        uuid=model.uuid,
                        invoice_number=model.invoice_number,
                        invoice_hash=invoice_hash,
                        pih=head.invoice_hash,
                        kind=f"{model.type}{model.kind}",
                        simplified=model.is_simplified,
                        signed_xml=xml,
                        qr=qr,
                        body_digest=body_digest,
                        source="model",
                    ),
                    expected_position=head.position,
                    device=device,
                )
        if not outcome.created:
            return IssuedInvoice(outcome.record, created=False)
        self._metrics.invoices_issued.labels(source="model", type=model.type).inc()
        self._metrics.invoice_seconds.observe(time.perf_counter() - started)
        log.info(
            "invoice signed and stored",
            extra={
                "device_id": device_id,
                "invoice_id": outcome.record.invoice_id,
                "icv": outcome.record.icv,
            },
        )
        return IssuedInvoice(await self._deliver(outcome.record), created=True)

    async def put_seller(
        self, device_id: str, seller: dict[str, Any], vats: frozenset[str] | None = None
    ) -> None:
        """Store the Seller object a device's models fall back to, after checking it like a model's."""
        await self._device(device_id, vats)
        try:
            decode_invoice_model({**_SELLER_PROBE, "Seller": seller})
        except ValidationFailed as exc:
            problems = [
                FieldProblem(p.field.removeprefix("Seller."), p.message, p.code)
                for p in exc.problems
                if p.field == "Seller" or p.field.startswith("Seller.")
            ]
            if problems:
                raise ValidationFailed(problems) from exc
        encoded = msgspec.json.encode(seller)
        await self._store.put_seller(device_id, encoded)
        self._sellers[device_id] = encoded

    async def _stored_seller(self, device_id: str) -> bytes | None:
        """The Seller object the device's models fall back to (JSON), if one was stored."""
        # This service is the only writer of sellers (put_seller), so what it read or wrote holds.
        if device_id in self._sellers:
            return self._sellers[device_id]
        seller = self._sellers[device_id] = await self._store.seller(device_id)
        return seller

    # Xml and Pdf devices

    async def submit(
        self, device_id: str, document: SubmittedDocument, vats: frozenset[str] | None = None
    ) -> IssuedInvoice:
        """Verify a POS-signed document with the device's certificate, chain it, store it, deliver it."""
        device = await self._active_device(device_id, vats, model=False)
        certificate = self._certificate(device)
        xml = document.signed_xml
        report, facts = await anyio.to_thread.run_sync(_verify_document, xml, certificate)
        failed = [check for check in report.failed if check.name != "pih"]
        if failed:
            raise ValidationFailed(
                [
                    FieldProblem(
                        "SignedXml",
                        f"check {check.name} failed: {check.reason}",
                        f"Invoice-Check-{check.name}",
                    )
                    for check in failed
                ]
            )
        if isinstance(facts, InvoiceDocumentError):
            raise ValidationFailed([FieldProblem("SignedXml", str(facts), "Invalid-XML")]) from facts
        problems = []
        if not _same_uuid(facts.uuid, document.uuid):
            problems.append(FieldProblem("Uuid", f"is not the document's cbc:UUID ({facts.uuid!r})"))
        if (facts.invoice_number or "").strip() != document.invoice_number:
            problems.append(
                FieldProblem("InvoiceNumber", f"is not the document's cbc:ID ({facts.invoice_number!r})")
            )
        if facts.icv is None or facts.pih is None:
            problems.append(FieldProblem("SignedXml", "the document carries no ICV or PIH reference"))
        if problems:
            raise ValidationFailed(problems)
        assert facts.icv is not None and facts.pih is not None
        digest = hashlib.sha256(xml).hexdigest()
        with anyio.CancelScope(shield=True):
            async with self._locks(device_id):
                # Read again under the lock (retired or renewed while this request waited?).
                current = await self._active_device(device_id, vats, model=False)
                if current.binary_security_token != device.binary_security_token:
                    raise DeviceNotActive(
                        f"device {device_id} was given a new certificate (renewed) while this document"
                        " was checked against the old one; sign it with the new certificate and submit"
                        " it again",
                        device_id,
                    )
                device = current
                head = await self._head(device_id)
                warnings = []
                if facts.icv != head.icv + 1:
                    warnings.append(
                        StoredMessage(
                            "WARNING",
                            "ICV-Not-Following",
                            "Appliance",
                            f"ICV {facts.icv} does not follow the last submitted ICV {head.icv}",
                        )
                    )
                if facts.pih != head.invoice_hash:
                    warnings.append(
                        StoredMessage(
                            "WARNING",
                            "PIH-Not-Following",
                            "Appliance",
                            "PIH is not the hash of the last document this device submitted",
                        )
                    )
                outcome = await self._append(
                    NewInvoice(
                        invoice_id=str(uuid_module.uuid4()),
                        device_id=device_id,
                        icv=facts.icv,
                        # The document's own text: what ZATCA compares the submission's uuid with.
                        uuid=(facts.uuid or document.uuid).strip(),
                        invoice_number=document.invoice_number,
                        invoice_hash=report.invoice_hash,
                        pih=facts.pih,
                        kind=f"{'Simplified' if report.is_simplified else 'Standard'}{facts.type_code or ''}",
                        simplified=report.is_simplified,
                        signed_xml=xml,
                        qr=facts.qr or "",
                        body_digest=digest,
                        source="submitted",
                        warnings=tuple(warnings),
                    ),
                    expected_position=head.position,
                    device=device,
                )
        if not outcome.created:
            return IssuedInvoice(outcome.record, created=False)
        self._metrics.invoices_issued.labels(
            source="submitted", type="Simplified" if report.is_simplified else "Standard"
        ).inc()
        return IssuedInvoice(await self._deliver(outcome.record), created=True)

    # Reading

    async def get(self, invoice_id: str, vats: frozenset[str] | None = None) -> InvoiceRecord:
        record = await self._store.get(invoice_id)
        try:
            await self._device(record.device_id, vats)
        except NotFound as exc:
            raise NotFound(f"no invoice {invoice_id}") from exc
        return record

    async def list_invoices(
        self,
        device_id: str,
        *,
        status: InvoiceStatus | None,
        offset: int,
        limit: int,
        vats: frozenset[str] | None = None,
    ) -> InvoicePage:
        await self._device(device_id, vats)
        return await self._store.list_invoices(device_id, status=status, offset=offset, limit=limit)

    # Shared steps

    async def _head(self, device_id: str) -> ChainHead:
        """The device's chain head; call with the device lock held."""
        head = self._heads.get(device_id)
        if head is None:
            head = self._heads[device_id] = await self._store.head(device_id, INITIAL_PIH)
        return head

    async def _append(
        self, new: NewInvoice, *, expected_position: int, device: DeviceRecord
    ) -> AppendOutcome:
        """`InvoiceStore.append`, keeping the cached head in step and handing a stored invoice to
        the outbox; call with the device lock held, shielded from cancellation (a committed
        invoice must reach the outbox in chain order)."""
        try:
            outcome = await self._store.append(new, expected_position=expected_position)
        except (ChainMoved, StorageError):
            # The stored head is not what this process thought, or unknown after a failed commit
            # (which may have stored the invoice: the outbox reads the device's entries again).
            self._heads.pop(new.device_id, None)
            self._outbox.resync(new.device_id)
            raise
        if outcome.created:
            record = outcome.record
            self._heads[new.device_id] = ChainHead(record.position, record.icv, record.invoice_hash)
            self._outbox.enqueue(record, device)
        return outcome

    async def _deliver(self, record: InvoiceRecord) -> InvoiceRecord:
        if record.simplified:
            return record
        delivered = await self._outbox.wait_for_delivery(
            record, self._config.invoicing.clearance_timeout_seconds
        )
        if delivered is not None:
            return delivered
        return await self._store.get(record.invoice_id)

    async def _device(self, device_id: str, vats: frozenset[str] | None) -> DeviceRecord:
        """The device, or NotFound, also when its VAT is outside the caller's scope."""
        try:
            uuid_module.UUID(device_id)
        except ValueError as exc:
            raise NotFound(f"no device {device_id!r}: device ids are UUIDs") from exc
        device = await self._registry.get(device_id)
        if vats is not None and device.vat not in vats:
            raise NotFound(f"no device {device_id}")
        return device

    async def _active_device(
        self, device_id: str, vats: frozenset[str] | None, *, model: bool
    ) -> DeviceRecord:
        device = await self._device(device_id, vats)
        if device.status is not DeviceStatus.ACTIVE:
            raise DeviceNotActive(
                f"device {device_id} is {device.status}; only an active device issues invoices", device_id
            )
        if device.credential_kind != "production":
            raise DeviceNotActive(
                f"device {device_id} holds only a compliance CSID (zatca.onboarding: compliance);"
                " invoices need a production CSID",
                device_id,
            )
        is_model = device.invoice_format is InvoiceFormat.MODEL
        if model and not is_model:
            raise DeviceFormatConflict(
                f"device {device_id} has invoice format {device.invoice_format}: it signs its own documents"
                " and sends them to /Invoices/Submit",
                device_id,
            )
        if not model and is_model:
            raise DeviceFormatConflict(
                f"device {device_id} has invoice format Model: the appliance signs its invoices; send the"
                " invoice model to /Invoices",
                device_id,
            )
        return device

    def _certificate(self, device: DeviceRecord) -> x509.Certificate:
        token = device.binary_security_token
        if token is None:
            raise DeviceNotActive(f"device {device.device_id} holds no certificate", device.device_id)
        cached = self._certificates.get(device.device_id)
        if cached is not None and cached[0] == token:
            return cached[1]
        certificate = x509.load_der_x509_certificate(decode_binary_security_token(token))
        self._certificates[device.device_id] = (token, certificate)
        return certificate


def _verify_document(
    xml: bytes, certificate: x509.Certificate
) -> tuple[VerificationReport, InvoiceFacts | InvoiceDocumentError]:
    """The checks and the facts of a submitted document, in one worker call."""
    report = verify_invoice(xml, certificate)
    try:
        return report, parse_invoice_facts(xml)
    except InvoiceDocumentError as exc:
        return report, exc


def _same_uuid(stated: str | None, sent: str) -> bool:
    """The document's cbc:UUID and the Uuid sent beside it name the same UUID (case and braces
    aside: both are compared as UUID values)."""
    try:
        return stated is not None and uuid_module.UUID(stated.strip()) == uuid_module.UUID(sent)
    except ValueError:
        return False
