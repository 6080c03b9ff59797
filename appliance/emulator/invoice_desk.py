"""The emulated invoice endpoints: compliance checks, reporting and clearance of single documents.

Order of business, as ZATCA appears to apply it: credentials (401), body (400 Invalid-Request), the
document's checks (`invoice_checks`, in a worker thread), then what the endpoint decides from the verdict:

- compliance: 200 / 202 (warnings) / 400 (errors); a document that passes credits its kind's
  compliance step to the CSID, so `POST /production/csids` follows once all the title's kinds passed.
  The chain is not judged: compliance documents carry whatever PIH they like (section 6).
- reporting: a standard document gets 303; a hash already reported or cleared gets 409.
- clearance: a simplified document gets 400; a hash already cleared gets 208 with the cleared
  invoice; 200/202 return `clearedInvoice`: the document re-stamped (stamp and QR) with the emulator
  CA's key and certificate, so its invoice hash is unchanged.
- PIH on reporting and clearance: a warning (not an error) unless the document's PIH is the hash of
  the last document received with that CSID (any verdict: ZATCA chains rejected documents too) or of
  the last one accepted; the first document of a CSID is not judged (a renewed CSID may continue its
  predecessor's chain).

Every received document is kept with its verdict (`invoice_store`). Store access happens on the event
loop only; two concurrent submissions with one CSID may both be judged against the same chain head.

The checks run on one dedicated worker thread: fatoora-rs pays ~0.14 s of set-up per new thread
(measured), so a pool would pay it again and again under a burst of registrations, while one warm
thread judges a document in ~15 ms.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

import msgspec

from appliance.emulator import wire
from appliance.emulator.authority import EmulatorAuthority
from appliance.emulator.gateway import EnvironmentProfile, basic_credentials
from appliance.emulator.invoice_checks import (
    DOCUMENT_KINDS,
    Finding,
    SigningCredential,
    Verdict,
    examine_invoice,
    step_for_kind,
)
from appliance.emulator.invoice_store import InvoiceFiles, file_stem_for
from appliance.emulator.store import CsidRecord, EmulatorStore, InvoiceRecord
from appliance.invoices.stamp import stamp_invoice

logger = logging.getLogger("appliance.emulator")

InvoiceEndpoint = Literal["compliance", "reporting", "clearance"]
_CSID_KIND: dict[InvoiceEndpoint, str] = {
    "compliance": "compliance",
    "reporting": "production",
    "clearance": "production",
}


class InvoiceBody(msgspec.Struct):
    invoice_hash: str | None = msgspec.field(default=None, name="invoiceHash")
    uuid: str | None = None
    invoice: str | None = None


class InvoiceDesk:
    def __init__(
        self,
        store: EmulatorStore,
        authority: EmulatorAuthority,
        files: InvoiceFiles,
        *,
        refuse_kind: str | None = None,
        forget_kind: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.authority = authority
        self.files = files
        self.refuse_kind = refuse_kind
        self.forget_kind = forget_kind
        self._clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-invoice-checks")

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _on_worker(self, function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function)

    @staticmethod
    def checked_kind(kind: str | None) -> str | None:
        if kind is not None and kind not in DOCUMENT_KINDS:
            raise ValueError(f"a document kind must be one of {', '.join(DOCUMENT_KINDS)}, got {kind!r}")
        return kind

    async def submit(
        self,
        environment: EnvironmentProfile,
        endpoint: InvoiceEndpoint,
        authorization: str | None,
        body: bytes,
    ) -> wire.Answer:
        csid = self._authenticated(environment, authorization, _CSID_KIND[endpoint])
        if csid is None:
            logger.info("%s %s invoice refused: Unauthorized", environment.path_name, endpoint)
            return wire.unauthorized()
        try:
            request = msgspec.json.decode(body, type=InvoiceBody)
            xml = base64.b64decode(request.invoice or "", validate=True)
        except (msgspec.DecodeError, ValueError, binascii.Error) as exc:
            return wire.invalid_request(f"body is not {{invoiceHash, uuid, invoice (base64)}}: {exc}")
        if not (xml and request.uuid and request.invoice_hash):
            return wire.invalid_request("invoiceHash, uuid and invoice are required")
        last_received, last_accepted = (
            (None, None) if endpoint == "compliance" else self.store.chain_hashes(csid.request_id)
        )
        received_at = self._clock()
        examine = partial(
            examine_invoice,
            xml,
            request_uuid=request.uuid,
            request_hash=request.invoice_hash,
            credential=SigningCredential(
                csid.certificate_der, csid.vat, csid.invoice_type, csid.kind == "production"
            ),
            evaluated_at=dt.datetime.fromtimestamp(received_at, dt.UTC),
        )
        verdict: Verdict = await self._on_worker(examine)
        verdict = self._with_chain_warning(verdict, last_received, last_accepted)
        if endpoint == "compliance":
            verdict = self._with_refusal(verdict)
        answer = await self._answer(environment, endpoint, verdict, xml)
        self._record(
            environment,
            endpoint,
            csid,
            request_uuid=request.uuid,
            xml=xml,
            verdict=verdict,
            answer=answer,
            received_at=received_at,
        )
        return answer

    def _authenticated(
        self, environment: EnvironmentProfile, authorization: str | None, kind: str
    ) -> CsidRecord | None:
        credentials = basic_credentials(authorization)
        record = None if credentials is None else self.store.csid_for_credentials(*credentials)
        if record is None or record.kind != kind or record.environment != environment.path_name:
            return None
        return record

    @staticmethod
    def _with_chain_warning(
        verdict: Verdict, last_received: str | None, last_accepted: str | None
    ) -> Verdict:
        if last_received is None or verdict.invoice_hash is None:
            return verdict
        if verdict.pih in (last_received, last_accepted):
            return verdict
        message = (
            "The previous invoice hash (PIH) is neither the hash of the last document received with"
            " this CSID nor of the last one accepted"
        )
        warning = Finding(
            "WARNING", "invalid-previous-invoice-hash", "INVOICE_HASHING_ERRORS", message, "WARNING"
        )
        return msgspec.structs.replace(verdict, warnings=[*verdict.warnings, warning])

    def _with_refusal(self, verdict: Verdict) -> Verdict:
        if self.refuse_kind is None or verdict.kind != self.refuse_kind:
            return verdict
        message = f"The emulator was told to refuse {self.refuse_kind} documents (refuse_kind)"
        refusal = Finding("ERROR", "EMULATOR-REFUSED-KIND", "KSA", message, "ERROR")
        return msgspec.structs.replace(verdict, errors=[*verdict.errors, refusal])

    async def _answer(
        self, environment: EnvironmentProfile, endpoint: InvoiceEndpoint, verdict: Verdict, xml: bytes
    ) -> wire.Answer:
        results = verdict.validation_results()
        passed = verdict.status != "ERROR"
        status = 400 if not passed else 202 if verdict.warnings else 200
        standard = verdict.kind is not None and not verdict.simplified
        if endpoint == "compliance":
            return wire.invoice_verdict(
                status,
                results,
                reportingStatus=None if standard else ("REPORTED" if passed else "NOT_REPORTED"),
                clearanceStatus=("CLEARED" if passed else "NOT_CLEARED") if standard else None,
                qrSellertStatus=None,
                qrBuyertStatus=None,
            )
        if endpoint == "reporting":
            if standard:
                return wire.clearance_required()
            if verdict.invoice_hash and self.store.accepted_invoice(
                environment.path_name, verdict.invoice_hash
            ):
                return wire.duplicate_reported()
            return wire.invoice_verdict(
                status, results, reportingStatus="REPORTED" if passed else "NOT_REPORTED"
            )
        if verdict.simplified:
            message = "Simplified invoices must be reported, not cleared"
            results = wire.single_error("invoice-reporting-required", "INVOICE_ERRORS", message)
            return wire.invoice_verdict(400, results, clearanceStatus="NOT_CLEARED", clearedInvoice=None)
        duplicate = verdict.invoice_hash is not None and (
            self.store.accepted_invoice(environment.path_name, verdict.invoice_hash) is not None
        )
        if not passed and not duplicate:
            return wire.invoice_verdict(400, results, clearanceStatus="NOT_CLEARED", clearedInvoice=None)
        cleared: str = await self._on_worker(partial(self._cleared, xml))
        return wire.invoice_verdict(
            208 if duplicate else status, results, clearanceStatus="CLEARED", clearedInvoice=cleared
        )

    def _cleared(self, xml: bytes) -> str:
        stamped = stamp_invoice(xml, self.authority.certificate_der, self.authority.sign_digest)
        return base64.b64encode(stamped.xml).decode("ascii")

    def _record(
        self,
        environment: EnvironmentProfile,
        endpoint: InvoiceEndpoint,
        csid: CsidRecord,
        *,
        request_uuid: str,
        xml: bytes,
        verdict: Verdict,
        answer: wire.Answer,
        received_at: float,
    ) -> None:
        stem = file_stem_for(request_uuid, verdict.uuid, xml)
        answered: dict[str, Any] = msgspec.json.decode(answer.body)
        answered.pop("clearedInvoice", None)  # the cleared document is ZATCA's to return, not to keep
        status = "ERROR" if answer.status >= 300 and answer.status not in (208,) else verdict.status
        self.files.keep(
            stem,
            xml,
            {
                "uuid": request_uuid,
                "environment": environment.path_name,
                "endpoint": endpoint,
                "csid_request_id": csid.request_id,
                "kind": verdict.kind,
                "invoice_hash": verdict.invoice_hash,
                "http_status": answer.status,
                "status": status,
                "received_at": received_at,
                "answer": answered,
            },
        )
        # Duplicates (208/409) are not new documents: they must not become the chain head or be counted.
        if answer.status in (208, 409):
            return
        self.store.add_invoice(
            InvoiceRecord(
                environment=environment.path_name,
                endpoint=endpoint,
                csid_request_id=csid.request_id,
                uuid=request_uuid,
                invoice_hash=verdict.invoice_hash,
                kind=verdict.kind,
                http_status=answer.status,
                status=status,
                file_stem=stem,
                received_at=received_at,
            )
        )
        credited = answer.status in (200, 202) and verdict.kind != self.forget_kind
        if endpoint == "compliance" and credited and verdict.kind is not None:
            self.store.mark_steps_passed(csid.request_id, [step_for_kind(verdict.kind)])
        logger.info(
            "%s %s invoice: HTTP %d %s", environment.path_name, endpoint, answer.status, verdict.kind or "?"
        )
