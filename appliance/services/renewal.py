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
from appliance.domain import Environment
from appliance.errors import ApplianceError, Conflict, DeviceStateConflict, HsmError
from appliance.hsm import AsyncKeyStore, KeyPolicy
from appliance.invoices.model import SellerIdentity
from appliance.metrics import Metrics
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
)
from appliance.storage import (
    AuditedDeviceRegistry,
    AuditEvent,
    ComplianceCsidData,
    DeviceRecord,
    RenewalData,
    api_key_actor,
    certificate_serial_text,
)
from appliance.zatca import PRODUCTION_CSID_RENEWAL, Credentials, CsidResponse, ZatcaClient

log = logging.getLogger("appliance.renewal")


class DeviceNotRenewable(Conflict):
    """Only an active device holding a production CSID can be renewed."""

    code = "Device-Not-Renewable"


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
    ) -> None:
        self._config = config
        self._keys = keys
        self._registry = registry
        self._zatca = zatca
        self._metrics = metrics

    async def renew(self, device_id: str, otp: str, actor: str | None) -> RegistrationResult:
        """The renewed credentials, in the registration's result shape (the key again for Xml/Pdf)."""
        record = await self._registry.get(device_id)
        if record.status.value != "active":
            raise DeviceStateConflict(device_id, record.status.value, "renewed")
        if record.credential_kind != "production" or record.secret_ciphertext is None:
            raise DeviceNotRenewable(
                f"device {device_id} holds a compliance CSID, not a production CSID: complete its "
                "onboarding (or register it again) before renewing",
                device_id,
            )
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
        policy = KeyPolicy.EXPORTABLE if record.invoice_format.key_leaves_token else KeyPolicy.SEALED
        clock = StepClock(self._metrics, "renewal")
        started = time.perf_counter()
        path = "error"
        try:
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
                    record.environment, current, csr_pem, self._otp_for(record.environment, otp)
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
            with clock.step("registry"):
                sealed = await self._keys.encrypt_secret(production.secret.encode())
                await self._registry.finish_renewal(
                    record.device_id,
                    RenewalData(
                        key_id_hex=new_key.key_id.bytes.hex(),
                        key_label=new_key.label,
                        activation=activation_data(csr_pem, production, sealed, certificate),
                        compliance=compliance_data,
                    ),
                )
        except BaseException as exc:
            await self._abandon(record, new_key, actor, exc)
            raise
        await self._retire_old_key(record, actor)
        self._metrics.onboarding_step_seconds.labels(operation="renewal", step="total").observe(
            time.perf_counter() - started
        )
        await self._audit(
            record,
            actor,
            AuditEvent.RENEWAL_SUCCEEDED,
            "ok",
            f"path={path} request_id={production.request_id} "
            f"serial={certificate_serial_text(certificate.serial_number)}",
        )
        await refresh_expiry_gauge(self._registry, self._metrics)
        log.info("renewal succeeded", extra={"device_id": record.device_id, "path": path})
        result = RegistrationResult(
            device_id=record.device_id,
            csid=production.binary_security_token,
            csr_pem=csr_pem,
            private_key_pem=private_key_pem,
            secret=production.secret,
            invoice_type=record.invoice_type,
        )
        return result, path

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
        old_key = uuid.UUID(hex=record.key_id_hex)
        try:
            if await self._keys.destroy_device_key(old_key):
                self._metrics.token_device_keys.dec()
                await self._audit(
                    record, actor, AuditEvent.KEY_DESTROYED, "ok", f"replaced by renewal: {record.key_label}"
                )
        except HsmError:
            # No row names the old key any more: reconciliation destroys it once the token is back.
            log.warning(
                "old key not destroyed; left for reconciliation", extra={"device_id": record.device_id}
            )

    def _otp_for(self, environment: Environment, otp: str) -> str:
        # As in registration: the developer portal has no real OTPs.
        return self._config.zatca.sandbox_otp if environment is Environment.DEVELOPMENT else otp

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
