"""Register a POS device: pending row -> key in the token -> CSR signed in the token -> compliance
CSID -> compliance checks -> production CSID -> active (zatca-protocol.md 3.1-3.3).

The order is what keeps the registry and the token consistent through every failure:
the pending row exists before the key, so a crash at any later point leaves a row that the
reconciler (appliance.services.reconcile) can resolve. Each step that ZATCA answered is stored
before the next begins (`pending` -> `compliance` -> `compliant` -> `active`), so the registry
shows how far a registration got. Every outcome in which we do not end with the production
credentials ends with the key destroyed and the row `failed`: without the `secret` from ZATCA's
answer a certificate is useless to us, so an unknown outcome (timeout) is a failure the POS
retries with a fresh OTP. With `zatca.onboarding: compliance` the registration ends `active`
with the compliance CSID, as before the onboarding steps existed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.config import AppConfig
from appliance.domain import DeviceStatus, Environment
from appliance.errors import (
    ApplianceError,
    Conflict,
    HsmError,
    ZatcaRejected,
    ZatcaTimeout,
    ZatcaUnavailable,
)
from appliance.hsm import AsyncKeyStore, KeyPolicy
from appliance.invoices.model import SellerIdentity
from appliance.metrics import Metrics
from appliance.services.onboarding import (
    ComplianceRun,
    PreparedDocument,
    StepClock,
    prepare_compliance_documents,
    run_compliance_checks,
    together,
)
from appliance.services.requests import RegistrationRequest
from appliance.storage import (
    ActivationData,
    AuditedDeviceRegistry,
    AuditEvent,
    AuditNote,
    ComplianceCsidData,
    DeviceRecord,
    api_key_actor,
    certificate_serial_text,
)
from appliance.x509.csr import build_zatca_csr, csr_to_pem
from appliance.x509.fields import CsrFields, egs_serial_number
from appliance.zatca import COMPLIANCE_CSID, PRODUCTION_CSID, CsidResponse, ZatcaClient

log = logging.getLogger("appliance.registration")

DEVICE_KEY_LABEL_PREFIX = "zatca-device-"


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    device_id: str
    csid: str
    csr_pem: str
    private_key_pem: str | None
    secret: str
    invoice_type: str

    def __repr__(self) -> str:
        return f"RegistrationResult(device_id={self.device_id})"


class CertificateMismatch(ZatcaUnavailable):
    """ZATCA answered 200 with a certificate that is not for the key we sent."""

    code = "ZATCA-Certificate-Mismatch"


class RegistrationService:
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

    async def register(
        self, request: RegistrationRequest, actor: str | None, *, registrations_per_hour: int | None = None
    ) -> RegistrationResult:
        """`actor`: the API key id (kept as `created_by`); `registrations_per_hour`: its quota."""
        outcome = "error"
        try:
            result = await self._register(request, actor, registrations_per_hour)
        except ApplianceError as exc:
            outcome = _outcome_label(exc)
            raise
        else:
            outcome = "success"
            return result
        finally:
            self._metrics.registrations.labels(
                environment=str(request.environment), format=str(request.invoice_format), outcome=outcome
            ).inc()

    async def _register(
        self, request: RegistrationRequest, actor: str | None, registrations_per_hour: int | None
    ) -> RegistrationResult:
        device_id = uuid.uuid4()
        record = self._pending_record(request, device_id, actor)
        await self._registry.create_pending(record, registrations_per_hour=registrations_per_hour)
        log.info(
            "registration started",
            extra={"device_id": record.device_id, "environment": str(request.environment)},
        )
        # Once the row is pending, finish the bookkeeping even if the caller goes away or the
        # service is asked to stop: a half-done registration is exactly what must not happen.
        with anyio.CancelScope(shield=True):
            result = await self._complete(request, record, device_id)
        # Returned outside the scope: a cancel scope may swallow exceptions, so mypy (rightly)
        # does not treat a `return` inside it as the only way out.
        return result  # noqa: RET504

    async def _complete(
        self, request: RegistrationRequest, record: DeviceRecord, device_id: uuid.UUID
    ) -> RegistrationResult:
        policy = KeyPolicy.EXPORTABLE if request.invoice_format.key_leaves_token else KeyPolicy.SEALED
        clock = StepClock(self._metrics, "registration")
        started = time.perf_counter()
        try:
            with clock.step("keygen"):
                public_key_der = await self._keys.generate_device_key(device_id, policy, record.key_label)
            self._metrics.token_device_keys.inc()

            async def csr() -> str:
                with clock.step("csr"):
                    return await build_csr(self._keys, record, device_id, public_key_der)

            # The audit record's commit (an fsync in the writer thread) overlaps the CSR's CPU and
            # token work; both end before anything leaves the appliance.
            _, csr_pem = await together(
                functools.partial(self._audit, record, AuditEvent.KEY_GENERATED, "ok", f"policy={policy}"),
                csr,
            )
            private_key_pem = None
            if request.invoice_format.key_leaves_token:
                with clock.step("export"):
                    private_key_pem = await self._keys.export_private_key(device_id, public_key_der)
                await self._audit(record, AuditEvent.KEY_EXPORTED, "ok", "wrapped in the token, sent once")
            onboarding = self._config.zatca.onboarding == "production"

            async def compliance_csid() -> CsidResponse:
                with clock.step("compliance-csid"), clock.zatca():
                    return await self._zatca.request_compliance_csid(
                        request.environment,
                        csr_pem,
                        zatca_otp(self._config, request.environment, request.otp),
                    )

            async def prepare() -> list[PreparedDocument]:
                # A compliance document's rendering and token signature need no certificate, so
                # the first is done while ZATCA issues it (the others are built while their
                # predecessor is with ZATCA). All six here took longer than the call itself.
                if not onboarding:
                    return []
                with clock.step("prepare-documents"):
                    return await prepare_compliance_documents(
                        self._keys, device_id, public_key_der, _seller(request), request.invoice_type, count=1
                    )

            compliance, prepared = await together(compliance_csid, prepare)
            compliance_certificate = certificate_for_key(compliance, public_key_der, COMPLIANCE_CSID.name)
            if not onboarding:
                issued = compliance
                issued_certificate = compliance_certificate
                with clock.step("registry"):
                    await self._activate_compliance_only(record, csr_pem, compliance, compliance_certificate)
                self._counted(self._succeeded(record, compliance))
            else:
                issued, issued_certificate = await self._onboard(
                    request,
                    record=record,
                    device_id=device_id,
                    public_key_der=public_key_der,
                    csr_pem=csr_pem,
                    compliance=compliance,
                    compliance_certificate=compliance_certificate,
                    clock=clock,
                    prepared=prepared,
                )
        except BaseException as exc:
            await self._abandon(record, device_id, exc)
            raise
        clock.finish(time.perf_counter() - started)
        # From the activated certificate in memory: an activation can only lower the gauge.
        self._metrics.note_activation_expiry(str(request.environment), issued_certificate.not_valid_after_utc)
        log.info("registration succeeded", extra={"device_id": record.device_id})
        return RegistrationResult(
            device_id=record.device_id,
            csid=issued.binary_security_token,
            csr_pem=csr_pem,
            private_key_pem=private_key_pem,
            secret=issued.secret,
            invoice_type=request.invoice_type,
        )

    async def _activate_compliance_only(
        self, record: DeviceRecord, csr_pem: str, csid: CsidResponse, certificate: x509.Certificate
    ) -> None:
        # Sealing the secret needs the token and activation needs the registry: until both
        # are done we do not hold ZATCA's credentials, so a failure here abandons as well.
        secret_ciphertext = await self._keys.encrypt_secret(csid.secret.encode())
        await self._registry.activate_compliance_only(
            record.device_id,
            activation_data(csr_pem, csid, secret_ciphertext, certificate),
            audit=(self._succeeded(record, csid),),
        )

    async def _onboard(
        self,
        request: RegistrationRequest,
        *,
        record: DeviceRecord,
        device_id: uuid.UUID,
        public_key_der: bytes,
        csr_pem: str,
        compliance: CsidResponse,
        compliance_certificate: x509.Certificate,
        clock: StepClock,
        prepared: list[PreparedDocument],
    ) -> tuple[CsidResponse, x509.Certificate]:
        """compliance CSID stored -> checks -> compliant -> production CSID -> active; returns the
        production CSID and its certificate. Each registry step starts before the ZATCA call that
        follows it (see `run_compliance_checks`)."""

        async def store_compliance_csid() -> None:
            # Runs while the first compliance document is stamped and with ZATCA.
            with clock.step("registry"):
                sealed = await self._keys.encrypt_secret(compliance.secret.encode())
                await self._registry.store_compliance_csid(
                    record.device_id,
                    ComplianceCsidData(
                        csr_pem=csr_pem,
                        request_id=compliance.request_id,
                        binary_security_token=compliance.binary_security_token,
                        secret_ciphertext=sealed,
                        certificate_serial=certificate_serial_text(compliance_certificate.serial_number),
                    ),
                )

        run = ComplianceRun(
            device_id=record.device_id,
            environment=request.environment,
            invoice_type=request.invoice_type,
            seller=_seller(request),
            key_id=device_id,
            certificate_der=compliance.certificate_der,
            credentials=compliance.credentials,
            compliance_request_id=compliance.request_id,
        )
        issued: list[CsidResponse] = []

        async def request_production_csid() -> None:
            # Runs while the verdicts and `compliant` are written.
            with clock.step("production-csid"), clock.zatca():
                issued.append(
                    await self._zatca.request_production_csid(
                        request.environment, compliance.credentials, compliance.request_id
                    )
                )

        with clock.step("compliance-documents"):
            await run_compliance_checks(
                run,
                self._keys,
                self._zatca,
                self._registry,
                then_compliant=True,
                clock=clock,
                audit_actor=_actor(record),
                alongside_first=store_compliance_csid,
                alongside_verdicts=request_production_csid,
                prepared=prepared,
            )
        self._metrics.audit_records.labels(event=str(AuditEvent.COMPLIANCE_CHECKED)).inc()
        (production,) = issued
        certificate = production_certificate(production, public_key_der, request.environment)
        with clock.step("registry"):
            sealed = await self._keys.encrypt_secret(production.secret.encode())
            succeeded = self._succeeded(record, production)
            await self._registry.activate_production(
                record.device_id,
                activation_data(csr_pem, production, sealed, certificate),
                audit=(succeeded,),
            )
        self._counted(succeeded)
        return production, certificate

    def _succeeded(self, record: DeviceRecord, issued: CsidResponse) -> AuditNote:
        # Appended in the activation's own transaction: no active device without its record.
        detail = f"request_id={issued.request_id} onboarding={self._config.zatca.onboarding}"
        return AuditNote(_actor(record), AuditEvent.REGISTRATION_SUCCEEDED, "ok", record.device_id, detail)

    def _counted(self, note: AuditNote) -> None:
        self._metrics.audit_records.labels(event=str(note.event)).inc()

    def _pending_record(
        self, request: RegistrationRequest, device_id: uuid.UUID, actor: str | None
    ) -> DeviceRecord:
        now = datetime.now(UTC)
        solution = self._config.solution
        return DeviceRecord(
            device_id=str(device_id),
            environment=request.environment,
            invoice_format=request.invoice_format,
            status=DeviceStatus.PENDING,
            vat=request.vat,
            egs_serial=request.egs_serial,
            common_name=request.egs_serial,
            serial_number=egs_serial_number(request.egs_serial, solution.name, solution.version),
            organization_name=request.organization_name,
            organization_unit=request.organization_unit,
            country=request.country,
            location=request.location,
            industry=request.industry,
            invoice_type=request.invoice_type,
            key_label=f"{DEVICE_KEY_LABEL_PREFIX}{device_id}",
            key_id_hex=device_id.bytes.hex(),
            created_at=now,
            updated_at=now,
            created_by=actor,
        )

    async def _abandon(self, record: DeviceRecord, device_id: uuid.UUID, cause: BaseException) -> None:
        """Destroy the key (if it was made) and mark the row failed. The key goes first so a crash
        in between leaves a pending row without a key, which the reconciler closes."""
        code = failure_code(cause)
        try:
            if await self._keys.destroy_device_key(device_id):
                self._metrics.token_device_keys.dec()
                await self._audit(record, AuditEvent.KEY_DESTROYED, "ok", f"registration failed: {code}")
        except HsmError:
            # The token is gone, so the key most likely never came to be; if it did, the
            # reconciler destroys the keys of failed devices once the token is back.
            log.warning("key not destroyed; left for reconciliation", extra={"device_id": record.device_id})
        failed = AuditNote(_actor(record), AuditEvent.REGISTRATION_FAILED, "failed", record.device_id, code)
        await self._registry.mark_failed(record.device_id, code, _failure_text(cause), audit=(failed,))
        self._counted(failed)
        log.info("registration failed", extra={"device_id": record.device_id, "code": code})

    async def _audit(self, record: DeviceRecord, event: AuditEvent, outcome: str, detail: str) -> None:
        await self._registry.append_audit(
            actor=_actor(record), event=event, outcome=outcome, device_id=record.device_id, detail=detail
        )
        self._metrics.audit_records.labels(event=str(event)).inc()


def zatca_otp(config: AppConfig, environment: Environment, otp: str) -> str:
    """The OTP to send: the developer portal has no real OTPs, so any OTP the POS sent stands for
    its sandbox one."""
    return config.zatca.sandbox_otp if environment is Environment.DEVELOPMENT else otp


def _seller(request: RegistrationRequest) -> SellerIdentity:
    return SellerIdentity(vat=request.vat, name=request.organization_name)


def _actor(record: DeviceRecord) -> str:
    return api_key_actor(record.created_by) if record.created_by else "system"


async def build_csr(
    keys: AsyncKeyStore, record: DeviceRecord, key_id: uuid.UUID, public_key_der: bytes
) -> str:
    """The device's CSR (its registered fields) for the key `key_id`, signed in the token."""
    fields = CsrFields(
        environment=record.environment,
        common_name=record.common_name,
        serial_number=record.serial_number,
        vat=record.vat,
        organization_name=record.organization_name,
        organization_unit=record.organization_unit,
        country=record.country,
        invoice_type=record.invoice_type,
        location=record.location,
        industry=record.industry,
    )
    # The ASN.1 work is CPU-bound and the signature is a token call: both stay off the loop.
    sign = keys.signer_in_worker(key_id)

    def build() -> bytes:
        return build_zatca_csr(fields, public_key_der, sign)

    der = await anyio.to_thread.run_sync(build, limiter=keys.limiter)
    return csr_to_pem(der)


def certificate_for_key(csid: CsidResponse, public_key_der: bytes, endpoint: str) -> x509.Certificate:
    """ZATCA's certificate, refused unless it certifies the key we sent."""
    certificate = x509.load_der_x509_certificate(csid.certificate_der)
    issued_for = _certified_key(certificate)
    if issued_for != public_key_der:
        raise CertificateMismatch(
            endpoint,
            "bad-response",
            "the issued certificate is for another public key (SHA-256 "
            f"{hashlib.sha256(issued_for).hexdigest()[:16]}...), refused",
        )
    return certificate


def production_certificate(
    csid: CsidResponse, public_key_der: bytes, environment: Environment
) -> x509.Certificate:
    """The production certificate. The developer portal hands every caller one shared certificate
    (zatca-protocol.md 4.5), so there a certificate for another key is kept, with a warning."""
    if environment is Environment.DEVELOPMENT:
        certificate = x509.load_der_x509_certificate(csid.certificate_der)
        if _certified_key(certificate) != public_key_der:
            log.warning("the developer portal's production certificate is not for the device key (shared)")
        return certificate
    return certificate_for_key(csid, public_key_der, PRODUCTION_CSID.name)


def _certified_key(certificate: x509.Certificate) -> bytes:
    """The certified public key as DER SubjectPublicKeyInfo (the form the token hands out)."""
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def activation_data(
    csr_pem: str, csid: CsidResponse, secret_ciphertext: bytes, certificate: x509.Certificate
) -> ActivationData:
    return ActivationData(
        csr_pem=csr_pem,
        request_id=csid.request_id,
        binary_security_token=csid.binary_security_token,
        secret_ciphertext=secret_ciphertext,
        certificate_serial=certificate_serial_text(certificate.serial_number),
        certificate_not_before=certificate.not_valid_before_utc,
        certificate_not_after=certificate.not_valid_after_utc,
    )


async def refresh_expiry_gauge(registry: AuditedDeviceRegistry, metrics: Metrics) -> None:
    """Recompute the earliest-expiry gauge (after an activation, a renewal, at start-up)."""
    expiries = await registry.earliest_expiry()
    metrics.set_earliest_expiry({str(environment): moment for environment, moment in expiries.items()})


def _outcome_label(exc: ApplianceError) -> str:
    for kind, label in (
        (ZatcaTimeout, "zatca-timeout"),
        (ZatcaRejected, "zatca-rejected"),
        (ZatcaUnavailable, "zatca-unavailable"),
        (HsmError, "hsm-unavailable"),
        (Conflict, "conflict"),
    ):
        if isinstance(exc, kind):
            return label
    return "error"


def failure_code(cause: BaseException) -> str:
    code = cause.code if isinstance(cause, ApplianceError) else "Internal-Error"
    if isinstance(cause, ZatcaRejected) and cause.messages and cause.messages[0].code:
        code = cause.messages[0].code
    return code


def _failure_text(cause: BaseException) -> str:
    # Exception texts in this code base never carry secrets; cap them for the registry column.
    return (str(cause) or type(cause).__name__)[:500]
