"""Renew an active device's production CSID (zatca-protocol.md 3.4).

A new key in the token (the device's policy), a CSR with the device's registered fields,
`PATCH /production/csids` with the renewal OTP and the current production credentials. ZATCA
answers 200 with the new production CSID, or 428 with renewed compliance credentials: then the
compliance checks run with those (documents signed by the new key) and `POST /production/csids`
issues the production CSID. 428 is a normal path, not an error.

The old key and credentials stay in use until the new ones are stored; then the old key is
destroyed. The renewal's key id is noted in the row before the key exists, so a crash leaves
nothing reconciliation cannot name: an interrupted renewal loses its new key and the device
keeps its old key and credentials; a crash after the switch leaves the old key without a row,
which reconciliation destroys. Any failure leaves the device on its old credentials.

The switch (the new key and CSID stored, the old key destroyed) happens under the device's lock
(services/device_locks.py), not the ZATCA calls before it: invoicing waits only for the switch.
A device with invoices still waiting for ZATCA is not renewed: they are signed with the old
certificate, and the outbox would send them with the new CSID, which ZATCA rejects for good. The
renewal is refused before it starts, and again under the lock (abandoned: the new key is
destroyed, the device keeps its old credentials). Once the switch is committed, with its
`renewal.succeeded` record, the steps after it are best-effort: an Xml/Pdf POS must receive its
new key, the only copy, even if a later bookkeeping write fails.

The invoice chain (ICV, PIH) continues across a renewal: it belongs to the EGS unit (the device,
whose serial number and identity the renewed certificate keeps), not to a certificate. ZATCA
restarts the chain only on re-onboarding (a new device), and a restart here would reuse ICVs
for the same unit, which ZATCA forbids (zatca-invoice-signing.md 6).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import anyio
from cryptography import x509

from appliance.config import AppConfig
from appliance.domain import DeviceStatus
from appliance.errors import ApplianceError, Conflict, DeviceStateConflict, HsmError
from appliance.hsm import AsyncKeyStore, KeyPolicy
from appliance.invoices.model import SellerIdentity
from appliance.metrics import Metrics
from appliance.services.device_locks import DeviceLocks
from appliance.services.onboarding import ComplianceRun, StepClock, run_compliance_checks
from appliance.services.registration import (
    DEVICE_KEY_LABEL_PREFIX,
    RegistrationResult,
    activation_data,
    build_csr,
    certificate_for_key,
    failure_code,
    production_certificate,
    refresh_expiry_gauge,
    zatca_otp,
)
from appliance.storage import (
    AuditedDeviceRegistry,
    AuditEvent,
    AuditNote,
    ComplianceCsidData,
    DeviceRecord,
    RenewalData,
    api_key_actor,
    certificate_serial_text,
)
from appliance.storage.invoices import InvoiceStore
from appliance.zatca import PRODUCTION_CSID_RENEWAL, Credentials, CsidResponse, ZatcaClient

log = logging.getLogger("appliance.renewal")


class DeviceNotRenewable(Conflict):
    """Only an active device holding a production CSID can be renewed."""

    code = "Device-Not-Renewable"


class InvoicesAwaitingZatca(Conflict):
    """Invoices signed with the current certificate are still to be sent to ZATCA."""

    code = "Invoices-Awaiting-Zatca"

    def __init__(self, device_id: str, waiting: int) -> None:
        super().__init__(
            f"device {device_id} has {waiting} invoice(s) waiting to be sent to ZATCA, signed with its "
            "current certificate: renew once they are delivered (GET /v1/Invoices shows their status); "
            "the device keeps its current credentials",
            device_id,
        )


@dataclass(frozen=True, slots=True)
class _Obtained:
    """What the renewal got before the switch: ZATCA's answer and the row change it makes."""

    path: str  # "issued" or "compliance" (the 428 path)
    production: CsidResponse
    certificate: x509.Certificate
    data: RenewalData
    private_key_pem: str | None


@dataclass(frozen=True, slots=True)
class RenewalKey:
    key_id: uuid.UUID
    label: str

    @classmethod
    def new(cls, device_id: str) -> RenewalKey:
        key_id = uuid.uuid4()
        # The device id stays readable in `pkcs11-tool --list-objects`; the suffix tells keys apart.
        return cls(key_id, f"{DEVICE_KEY_LABEL_PREFIX}{device_id}-{key_id.hex[:8]}")


class RenewalService:
    def __init__(
        self,
        config: AppConfig,
        keys: AsyncKeyStore,
        registry: AuditedDeviceRegistry,
        zatca: ZatcaClient,
        metrics: Metrics,
        *,
        invoices: InvoiceStore,
        locks: DeviceLocks,
    ) -> None:
        self._config = config
        self._keys = keys
        self._registry = registry
        self._zatca = zatca
        self._metrics = metrics
        self._invoices = invoices
        self._locks = locks

    async def renew(self, device_id: str, otp: str, actor: str | None) -> RegistrationResult:
        """The renewed credentials, in the registration's result shape (the key again for Xml/Pdf)."""
        record = await self._registry.get(device_id)
        self._check_renewable(record)
        # Before any ZATCA call; checked again under the device's lock before the switch.
        await self._refuse_while_invoices_wait(device_id)
        path = "error"
        outcome = "error"
        try:
            result, path = await self._renew(record, otp, actor)
        except ApplianceError as exc:
            outcome = failure_code(exc)
            raise
        else:
            outcome = "success"
            return result
        finally:
            self._metrics.renewals.labels(
                environment=str(record.environment), path=path, outcome=outcome
            ).inc()

    async def _renew(
        self, record: DeviceRecord, otp: str, actor: str | None
    ) -> tuple[RegistrationResult, str]:
        assert record.binary_security_token is not None and record.secret_ciphertext is not None
        current = Credentials(
            record.binary_security_token, (await self._keys.decrypt_secret(record.secret_ciphertext)).decode()
        )
        new_key = RenewalKey.new(record.device_id)
        await self._registry.begin_renewal(record.device_id, new_key.key_id.bytes.hex(), new_key.label)
        log.info("renewal started", extra={"device_id": record.device_id})
        # From here the renewal finishes its bookkeeping even if the caller goes away.
        with anyio.CancelScope(shield=True):
            result = await self._complete(record, new_key, current, otp, actor)
        return result  # noqa: RET504 - see RegistrationService._register

    async def _complete(
        self, record: DeviceRecord, new_key: RenewalKey, current: Credentials, otp: str, actor: str | None
    ) -> tuple[RegistrationResult, str]:
        clock = StepClock(self._metrics, "renewal")
        started = time.perf_counter()
        try:
            obtained = await self._obtain(record, new_key, current, otp, actor=actor, clock=clock)
        except BaseException as exc:
            await self._abandon(record, new_key, actor, exc)
            raise
        succeeded = AuditNote(
            api_key_actor(actor) if actor else "system",
            AuditEvent.RENEWAL_SUCCEEDED,
            "ok",
            record.device_id,
            f"path={obtained.path} request_id={obtained.production.request_id} "
            f"serial={certificate_serial_text(obtained.certificate.serial_number)}",
        )
        async with self._locks(record.device_id):
            try:
                # Invoicing waits here: no invoice is signed with the old key from now on.
                self._check_renewable(await self._registry.get(record.device_id))
                await self._refuse_while_invoices_wait(record.device_id)
                with clock.step("registry"):
                    await self._registry.finish_renewal(record.device_id, obtained.data, audit=[succeeded])
            except BaseException as exc:
                await self._abandon(record, new_key, actor, exc)
                raise
            self._metrics.audit_records.labels(event=str(succeeded.event)).inc()
            await self._retire_old_key(record, actor)
        # Committed: nothing below may fail the renewal (the POS must get its new key once).
        self._metrics.onboarding_step_seconds.labels(operation="renewal", step="total").observe(
            time.perf_counter() - started
        )
        try:
            await refresh_expiry_gauge(self._registry, self._metrics)
        except ApplianceError as exc:
            log.warning(
                "expiry gauge not refreshed after renewal",
                extra={"device_id": record.device_id, "error": str(exc)},
            )
        log.info("renewal succeeded", extra={"device_id": record.device_id, "path": obtained.path})
        result = RegistrationResult(
            device_id=record.device_id,
            csid=obtained.production.binary_security_token,
            csr_pem=obtained.data.activation.csr_pem,
            private_key_pem=obtained.private_key_pem,
            secret=obtained.production.secret,
            invoice_type=record.invoice_type,
        )
        return result, obtained.path

    async def _obtain(
        self,
        record: DeviceRecord,
        new_key: RenewalKey,
        current: Credentials,
        otp: str,
        *,
        actor: str | None,
        clock: StepClock,
    ) -> _Obtained:
        """The new key and ZATCA's new production CSID, without touching the device's credentials."""
        policy = KeyPolicy.EXPORTABLE if record.invoice_format.key_leaves_token else KeyPolicy.SEALED
        with clock.step("keygen"):
            public_key_der = await self._keys.generate_device_key(new_key.key_id, policy, new_key.label)
        self._metrics.token_device_keys.inc()
        await self._audit(record, actor, AuditEvent.KEY_GENERATED, "ok", f"renewal key {new_key.label}")
        with clock.step("csr"):
            csr_pem = await build_csr(self._keys, record, new_key.key_id, public_key_der)
        private_key_pem = None
        if record.invoice_format.key_leaves_token:
            with clock.step("export"):
                private_key_pem = await self._keys.export_private_key(new_key.key_id, public_key_der)
            await self._audit(record, actor, AuditEvent.KEY_EXPORTED, "ok", "renewal key, sent once")
        with clock.step("renewal-csid"):
            renewed = await self._zatca.renew_production_csid(
                record.environment, current, csr_pem, zatca_otp(self._config, record.environment, otp)
            )
        compliance_data = None
        if renewed.issued:
            path = "issued"
            production = renewed.csid
        else:
            path = "compliance"
            production, compliance_data = await self._through_compliance(
                record,
                new_key=new_key,
                public_key_der=public_key_der,
                csr_pem=csr_pem,
                compliance=renewed.csid,
                clock=clock,
            )
        certificate = production_certificate(production, public_key_der, record.environment)
        sealed = await self._keys.encrypt_secret(production.secret.encode())
        data = RenewalData(
            key_id_hex=new_key.key_id.bytes.hex(),
            key_label=new_key.label,
            activation=activation_data(csr_pem, production, sealed, certificate),
            compliance=compliance_data,
        )
        return _Obtained(path, production, certificate, data, private_key_pem)

    def _check_renewable(self, record: DeviceRecord) -> None:
        if record.status is not DeviceStatus.ACTIVE:
            raise DeviceStateConflict(record.device_id, record.status.value, "renewed")
        if record.credential_kind != "production" or record.secret_ciphertext is None:
            raise DeviceNotRenewable(
                f"device {record.device_id} holds a compliance CSID, not a production CSID: complete "
                "its onboarding (or register it again) before renewing",
                record.device_id,
            )

    async def _refuse_while_invoices_wait(self, device_id: str) -> None:
        waiting = await self._invoices.undelivered_count(device_id)
        if waiting:
            raise InvoicesAwaitingZatca(device_id, waiting)

    async def _through_compliance(
        self,
        record: DeviceRecord,
        *,
        new_key: RenewalKey,
        public_key_der: bytes,
        csr_pem: str,
        compliance: CsidResponse,
        clock: StepClock,
    ) -> tuple[CsidResponse, ComplianceCsidData]:
        """428: the checks with the returned credentials, then `POST /production/csids`."""
        compliance_certificate: x509.Certificate = certificate_for_key(
            compliance, public_key_der, PRODUCTION_CSID_RENEWAL.name
        )
        run = ComplianceRun(
            device_id=record.device_id,
            environment=record.environment,
            invoice_type=record.invoice_type,
            seller=SellerIdentity(vat=record.vat, name=record.organization_name),
            key_id=new_key.key_id,
            certificate_der=compliance.certificate_der,
            credentials=compliance.credentials,
            compliance_request_id=compliance.request_id,
        )
        with clock.step("compliance-documents"):
            checks = await run_compliance_checks(run, self._keys, self._zatca, self._registry)
        await self._audit(
            record,
            None,
            AuditEvent.COMPLIANCE_CHECKED,
            "ok",
            f"renewal passed={','.join(c.kind for c in checks)}",
        )
        with clock.step("production-csid"):
            production = await self._zatca.request_production_csid(
                record.environment, compliance.credentials, compliance.request_id
            )
        sealed = await self._keys.encrypt_secret(compliance.secret.encode())
        data = ComplianceCsidData(
            csr_pem=csr_pem,
            request_id=compliance.request_id,
            binary_security_token=compliance.binary_security_token,
            secret_ciphertext=sealed,
            certificate_serial=certificate_serial_text(compliance_certificate.serial_number),
        )
        return production, data

    async def _abandon(
        self, record: DeviceRecord, new_key: RenewalKey, actor: str | None, cause: BaseException
    ) -> None:
        """Destroy the new key, then forget the renewal: the device keeps its old key and CSID."""
        code = failure_code(cause)
        try:
            if await self._keys.destroy_device_key(new_key.key_id):
                self._metrics.token_device_keys.dec()
                await self._audit(record, actor, AuditEvent.KEY_DESTROYED, "ok", f"renewal failed: {code}")
        except HsmError:
            # The renewal stays noted, so reconciliation destroys the key once the token is back.
            log.warning(
                "renewal key not destroyed; left for reconciliation", extra={"device_id": record.device_id}
            )
            await self._audit(record, actor, AuditEvent.RENEWAL_FAILED, "failed", code)
            return
        await self._registry.abandon_renewal(record.device_id, new_key.key_id.bytes.hex())
        await self._audit(record, actor, AuditEvent.RENEWAL_FAILED, "failed", code)
        log.info("renewal failed", extra={"device_id": record.device_id, "code": code})

    async def _retire_old_key(self, record: DeviceRecord, actor: str | None) -> None:
        """Best-effort, after the switch committed: a failure here must not fail the renewal."""
        old_key = uuid.UUID(hex=record.key_id_hex)
        try:
            destroyed = await self._keys.destroy_device_key(old_key)
        except HsmError:
            # No row names the old key any more: reconciliation destroys it once the token is back.
            log.warning(
                "old key not destroyed; left for reconciliation", extra={"device_id": record.device_id}
            )
            return
        if not destroyed:
            return
        self._metrics.token_device_keys.dec()
        try:
            await self._audit(
                record, actor, AuditEvent.KEY_DESTROYED, "ok", f"replaced by renewal: {record.key_label}"
            )
        except ApplianceError as exc:
            log.warning(
                "old key destroyed but its audit record not written",
                extra={"device_id": record.device_id, "error": str(exc)},
            )

    async def _audit(
        self, record: DeviceRecord, actor: str | None, event: AuditEvent, outcome: str, detail: str
    ) -> None:
        await self._registry.append_audit(
            actor=api_key_actor(actor) if actor else "system",
            event=event,
            outcome=outcome,
            device_id=record.device_id,
            detail=detail,
        )
        self._metrics.audit_records.labels(event=str(event)).inc()
