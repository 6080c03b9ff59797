"""The compliance checks of onboarding (and of a renewal ZATCA answered with 428).

One sample document per kind the certificate's `title` covers (zatca-protocol.md 6, 7): rendered
from the invoice core's built-in sample model with the registering organisation as seller,
signed through the token with the compliance certificate, and sent to `/compliance/invoices`
with the compliance credentials. Every verdict is recorded; the first refusal ends the run.

The documents' ICV/PIH form their own little chain (ICV 1.., PIH starting at the initial PIH):
ZATCA does not record compliance documents, and they never start the device's invoice chain
(zatca-invoice-signing.md 6).
"""

from __future__ import annotations

import base64
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar, cast

import anyio
import anyio.to_thread

from appliance.domain import Environment
from appliance.errors import ZatcaMessage, ZatcaRejected
from appliance.hsm import AsyncKeyStore
from appliance.invoices import INITIAL_PIH
from appliance.invoices.model import InvoiceKind, InvoiceType, SellerIdentity
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_model
from appliance.invoices.stamp import Presigned, presign, stamp_invoice
from appliance.metrics import Metrics
from appliance.storage import AuditedDeviceRegistry, AuditEvent, AuditNote, ComplianceCheckRecord
from appliance.zatca import Credentials, ZatcaClient
from appliance.zatca.invoices import InvoiceResult, InvoiceSubmission

log = logging.getLogger("appliance.onboarding")

COMPLIANCE_INVOICE_ENDPOINT = "compliance-invoice"

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class ComplianceKind:
    """One compliance step: the document it needs and ZATCA's name for it."""

    type: InvoiceType
    kind: InvoiceKind
    step: str


_STANDARD = (
    ComplianceKind("Standard", "Invoice", "standard-compliant"),
    ComplianceKind("Standard", "CreditNote", "standard-credit-note-compliant"),
    ComplianceKind("Standard", "DebitNote", "standard-debit-note-compliant"),
)
_SIMPLIFIED = (
    ComplianceKind("Simplified", "Invoice", "simplified-compliant"),
    ComplianceKind("Simplified", "CreditNote", "simplified-credit-note-compliant"),
    ComplianceKind("Simplified", "DebitNote", "simplified-debit-note-compliant"),
)


def compliance_kinds(invoice_type: str) -> tuple[ComplianceKind, ...]:
    """The kinds a `title` (TSCZ flags) obliges: `1100` all six, `1000` standard, `0100` simplified."""
    standard, simplified = invoice_type[:1] == "1", invoice_type[1:2] == "1"
    if not (standard or simplified):
        raise ValueError(f"invoice type {invoice_type!r} covers no document kind")
    return (_STANDARD if standard else ()) + (_SIMPLIFIED if simplified else ())


class ComplianceDocumentRefused(ZatcaRejected):
    """ZATCA refused a compliance document; `messages` carry its codes, prefixed by the kind."""

    code = "ZATCA-Compliance-Check-Failed"


class StepClock:
    """Times the steps of one registration or renewal into `zatca_appliance_onboarding_step_seconds`.

    It also keeps `zatca_wait`: the wall time during which at least one ZATCA call of this
    operation was outstanding (overlapping calls count once). Total minus that is the service's
    own time, the figure issue 12 compares with the raw token work.
    """

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self._metrics = metrics
        self._operation = operation
        self._outstanding = 0
        self._waiting_since = 0.0
        self.zatca_wait = 0.0

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._observe(name, time.perf_counter() - started)

    @contextmanager
    def zatca(self) -> Iterator[None]:
        """Around one ZATCA call (inside its step)."""
        if self._outstanding == 0:
            self._waiting_since = time.perf_counter()
        self._outstanding += 1
        try:
            yield
        finally:
            self._outstanding -= 1
            if self._outstanding == 0:
                self.zatca_wait += time.perf_counter() - self._waiting_since

    def finish(self, total_seconds: float) -> None:
        """Observe the operation's total and its time waiting for ZATCA."""
        self._observe("total", total_seconds)
        self._observe("zatca-wait", self.zatca_wait)

    def _observe(self, step: str, seconds: float) -> None:
        self._metrics.onboarding_step_seconds.labels(operation=self._operation, step=step).observe(seconds)


@dataclass(frozen=True, slots=True)
class ComplianceRun:
    """What the checks need: whose documents, signed by which key, sent with which credentials."""

    device_id: str
    environment: Environment
    invoice_type: str
    seller: SellerIdentity
    key_id: uuid.UUID
    certificate_der: bytes
    credentials: Credentials
    compliance_request_id: str


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A compliance document rendered and signed before its certificate is known (see `Presigned`)."""

    kind: ComplianceKind
    uuid: str
    unsigned_xml: bytes
    presigned: Presigned


async def prepare_compliance_documents(
    keys: AsyncKeyStore,
    key_id: uuid.UUID,
    public_key_der: bytes,
    seller: SellerIdentity,
    invoice_type: str,
    *,
    count: int,
) -> list[PreparedDocument]:
    """Render, chain and sign the first `count` documents of the run, in one thread hop.

    Each signature is verified here with the key's public key, so the stamp, which waits for the
    certificate, only compares that key with the certified one."""
    sign = keys.signer_in_worker(key_id)

    def prepare() -> list[PreparedDocument]:
        prepared: list[PreparedDocument] = []
        pih = INITIAL_PIH
        for icv, kind in enumerate(compliance_kinds(invoice_type)[:count], start=1):
            model = sample_model(kind.kind, kind.type, seller_vat=seller.vat)
            unsigned = render_invoice(model, seller, icv=icv, pih=pih)
            presigned = presign(unsigned, public_key_der, sign)
            prepared.append(PreparedDocument(kind, model.uuid, unsigned, presigned))
            pih = base64.b64encode(presigned.raw_hash).decode("ascii")
        return prepared

    return await anyio.to_thread.run_sync(prepare, limiter=keys.limiter)


async def run_compliance_checks(
    run: ComplianceRun,
    keys: AsyncKeyStore,
    zatca: ZatcaClient,
    registry: AuditedDeviceRegistry,
    *,
    then_compliant: bool = False,
    clock: StepClock | None = None,
    audit_actor: str | None = None,
    alongside_first: Callable[[], Awaitable[object]] | None = None,
    alongside_verdicts: Callable[[], Awaitable[object]] | None = None,
    prepared: Sequence[PreparedDocument] = (),
) -> list[ComplianceCheckRecord]:
    """Sign and submit one document per kind; raise ComplianceDocumentRefused at the first refusal.

    Pipelined: while document n is with ZATCA, document n+1 is rendered and signed (its PIH is
    document n's hash, known before n is sent). Documents still go out one at a time and in
    order, so the first refusal ends the run before another document is sent; at most one
    document is signed and never sent. `prepared` documents (`prepare_compliance_documents`:
    the run's first kinds) are only stamped.

    The verdicts are stored in one write at the end, whatever the outcome (with `then_compliant`,
    a full pass also moves the device from compliance to compliant in that write, and with
    `audit_actor` the `compliance.checked` record is appended in it too).
    ZatcaUnavailable/ZatcaTimeout and token errors pass through: the caller abandons either way.

    Two steps of the caller run alongside, each started first and ended before the run goes on:
    `alongside_first` (storing the compliance CSID) while the first document is stamped and with
    ZATCA, ended before its verdict counts; `alongside_verdicts` (the production CSID request)
    with the verdicts' write after a full pass. A write takes about a millisecond, a ZATCA call
    far longer, so the registry is all but always a step ahead of ZATCA; a crash in between is
    an interrupted registration either way (reconciliation destroys the key, the row fails).
    """
    kinds = compliance_kinds(run.invoice_type)
    if tuple(document.kind for document in prepared) != kinds[: len(prepared)]:
        raise ValueError("the prepared documents are not the first of this run's kinds")
    ready = {document.kind: document for document in prepared}
    checks: list[ComplianceCheckRecord] = []
    passed = False
    try:
        first = functools.partial(
            _signed_document, run, keys, kinds[0], 1, INITIAL_PIH, prepared=ready.get(kinds[0])
        )
        built: InvoiceSubmission | Exception = await first()
        for icv, kind in enumerate(kinds, start=1):
            if isinstance(built, Exception):
                raise built
            submission = built
            alongside = alongside_first if icv == 1 else None
            send = functools.partial(_submit, zatca, run, submission, clock, alongside)
            if icv < len(kinds):
                following = functools.partial(
                    _try_signed_document,
                    run,
                    keys,
                    kinds[icv],
                    icv + 1,
                    submission.invoice_hash,
                    prepared=ready.get(kinds[icv]),
                )
                result, built = await together(send, following)
            else:
                result = await send()
            checks.append(
                ComplianceCheckRecord(
                    device_id=run.device_id,
                    compliance_request_id=run.compliance_request_id,
                    kind=kind.step,
                    uuid=submission.uuid,
                    invoice_hash=submission.invoice_hash,
                    http_status=result.http_status,
                    status=result.status,
                    messages=_message_lines(result),
                    checked_at=datetime.now(UTC),
                )
            )
            if not result.accepted:
                log.info(
                    "compliance document refused",
                    extra={"device_id": run.device_id, "kind": kind.step, "http_status": result.http_status},
                )
                raise _refusal(kind, result)
        passed = True
    finally:
        if checks or passed:
            audit: tuple[AuditNote, ...] = ()
            if passed and audit_actor is not None:
                detail = f"passed={','.join(check.kind for check in checks)}"
                audit = (AuditNote(audit_actor, AuditEvent.COMPLIANCE_CHECKED, "ok", run.device_id, detail),)
            record = functools.partial(
                registry.record_compliance_checks,
                checks,
                then_compliant=run.device_id if passed and then_compliant else None,
                audit=audit,
            )
            if passed and alongside_verdicts is not None:
                await together(record, alongside_verdicts)
            else:
                await record()
    return checks


async def _submit(
    zatca: ZatcaClient,
    run: ComplianceRun,
    submission: InvoiceSubmission,
    clock: StepClock | None,
    alongside: Callable[[], Awaitable[object]] | None = None,
) -> InvoiceResult:
    async def call() -> InvoiceResult:
        with clock.zatca() if clock is not None else nullcontext():
            return await zatca.submit_compliance_invoice(run.environment, run.credentials, submission)

    if alongside is None:
        return await call()
    result, _ = await together(call, alongside)
    return result


async def _try_signed_document(
    run: ComplianceRun,
    keys: AsyncKeyStore,
    kind: ComplianceKind,
    icv: int,
    pih: str,
    *,
    prepared: PreparedDocument | None,
) -> InvoiceSubmission | Exception:
    # Built while the previous document is with ZATCA: its failure is raised only after that
    # document's verdict is recorded.
    try:
        return await _signed_document(run, keys, kind, icv, pih, prepared=prepared)
    except Exception as exc:  # noqa: BLE001 - handed back and raised by the caller
        return exc


async def together(first: Callable[[], Awaitable[T]], second: Callable[[], Awaitable[U]]) -> tuple[T, U]:
    """Run both to the end (neither cancels the other); raise the first one's error, else the second's."""
    outcomes: list[tuple[bool, object]] = [(False, None), (False, None)]

    async def run(index: int, call: Callable[[], Awaitable[object]]) -> None:
        try:
            outcomes[index] = (True, await call())
        except Exception as exc:  # noqa: BLE001 - re-raised below, without an ExceptionGroup
            outcomes[index] = (False, exc)

    async with anyio.create_task_group() as group:
        group.start_soon(run, 0, first)
        group.start_soon(run, 1, second)
    for succeeded, value in outcomes:
        if not succeeded:
            assert isinstance(value, Exception)
            raise value
    return cast("T", outcomes[0][1]), cast("U", outcomes[1][1])


async def _signed_document(
    run: ComplianceRun,
    keys: AsyncKeyStore,
    kind: ComplianceKind,
    icv: int,
    pih: str,
    *,
    prepared: PreparedDocument | None = None,
) -> InvoiceSubmission:
    # Rendering and stamping are CPU work and the signature a token call: one thread hop for all.
    sign = keys.signer_in_worker(run.key_id)

    def build() -> InvoiceSubmission:
        if prepared is not None:
            signed = stamp_invoice(prepared.unsigned_xml, run.certificate_der, prepared.presigned)
            return InvoiceSubmission(
                invoice_hash=signed.invoice_hash, uuid=prepared.uuid, invoice_xml=signed.xml
            )
        model = sample_model(kind.kind, kind.type, seller_vat=run.seller.vat)
        unsigned = render_invoice(model, run.seller, icv=icv, pih=pih)
        signed = stamp_invoice(unsigned, run.certificate_der, sign)
        return InvoiceSubmission(invoice_hash=signed.invoice_hash, uuid=model.uuid, invoice_xml=signed.xml)

    return await anyio.to_thread.run_sync(build, limiter=keys.limiter)


def _message_lines(result: InvoiceResult) -> list[str]:
    return [
        f"{message.type}: {message.code or message.category}: {message.message}"[:500]
        for message in (*result.error_messages, *result.warning_messages)
    ]


def _refusal(kind: ComplianceKind, result: InvoiceResult) -> ComplianceDocumentRefused:
    messages = [
        ZatcaMessage(message.code or message.category, f"{kind.step}: {message.message}")
        for message in result.error_messages
    ] or [ZatcaMessage(f"HTTP-{result.http_status}", f"{kind.step}: refused without a message")]
    return ComplianceDocumentRefused(COMPLIANCE_INVOICE_ENDPOINT, result.http_status, messages)
