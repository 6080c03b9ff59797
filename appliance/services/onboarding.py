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

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import anyio.to_thread

from appliance.domain import Environment
from appliance.errors import ZatcaMessage, ZatcaRejected
from appliance.hsm import AsyncKeyStore
from appliance.invoices import INITIAL_PIH
from appliance.invoices.model import InvoiceKind, InvoiceType, SellerIdentity
from appliance.invoices.render import render_invoice
from appliance.invoices.samples import sample_model
from appliance.invoices.stamp import stamp_invoice
from appliance.metrics import Metrics
from appliance.storage import AuditedDeviceRegistry, ComplianceCheckRecord
from appliance.zatca import Credentials, ZatcaClient
from appliance.zatca.invoices import InvoiceResult, InvoiceSubmission

log = logging.getLogger("appliance.onboarding")

COMPLIANCE_INVOICE_ENDPOINT = "compliance-invoice"


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
    """Times the steps of one registration or renewal into `zatca_appliance_onboarding_step_seconds`."""

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self._metrics = metrics
        self._operation = operation

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._metrics.onboarding_step_seconds.labels(operation=self._operation, step=name).observe(
                time.perf_counter() - started
            )


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


async def run_compliance_checks(
    run: ComplianceRun,
    keys: AsyncKeyStore,
    zatca: ZatcaClient,
    registry: AuditedDeviceRegistry,
    *,
    then_compliant: bool = False,
) -> list[ComplianceCheckRecord]:
    """Sign and submit one document per kind; raise ComplianceDocumentRefused at the first refusal.

    The verdicts are stored in one write at the end, whatever the outcome (with `then_compliant`,
    a full pass also moves the device from compliance to compliant in that write).
    ZatcaUnavailable/ZatcaTimeout and token errors pass through: the caller abandons either way.
    """
    checks: list[ComplianceCheckRecord] = []
    passed = False
    try:
        previous_hash = INITIAL_PIH
        for icv, kind in enumerate(compliance_kinds(run.invoice_type), start=1):
            submission = await _signed_document(run, keys, kind, icv, previous_hash)
            previous_hash = submission.invoice_hash
            result = await zatca.submit_compliance_invoice(run.environment, run.credentials, submission)
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
            await registry.record_compliance_checks(
                checks, then_compliant=run.device_id if passed and then_compliant else None
            )
    return checks


async def _signed_document(
    run: ComplianceRun, keys: AsyncKeyStore, kind: ComplianceKind, icv: int, pih: str
) -> InvoiceSubmission:
    # Rendering and stamping are CPU work and the signature a token call: one thread hop for all.
    sign = keys.signer_in_worker(run.key_id)

    def build() -> InvoiceSubmission:
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
