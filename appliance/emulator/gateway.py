"""The emulated Fatoora onboarding endpoints, as plain functions from request parts to `Answer`s.

HTTP concerns (routing, Accept-Version, faults) stay in `app`; everything ZATCA decides about a
request it has accepted for processing happens here, in the order ZATCA appears to apply it:
credentials, OTP presence and validity, body, CSR, OTP-to-VAT binding, issuance.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from appliance.emulator import wire
from appliance.emulator.authority import CertificateContent, EmulatorAuthority
from appliance.emulator.csr_policy import (
    AcceptedCsr,
    CsrRefused,
    Refusal,
    check_csr,
    csr_der_from_request_value,
)
from appliance.emulator.settings import EmulatorSettings
from appliance.emulator.store import CsidRecord, EmulatorStore

logger = logging.getLogger("appliance.emulator")

# The developer portal has no OTPs of its own; ZATCA's examples use this one (zatca-protocol.md 4.1).
SANDBOX_OTP = "123345"
ALL_COMPLIANCE_STEPS = frozenset(step for steps in wire.COMPLIANCE_STEPS_BY_FLAG.values() for step in steps)
_FIFTEEN_DIGITS = re.compile(r"[0-9]{15}")


@dataclass(frozen=True, slots=True)
class EnvironmentProfile:
    path_name: str  # the base path segment: developer-portal, simulation, core
    name: str  # the appliance's name for it: Development, Simulation, Production
    template: str  # the certificate template its CA serves

    @property
    def has_fixed_otp(self) -> bool:
        return self.path_name == "developer-portal"


ENVIRONMENTS = {
    profile.path_name: profile
    for profile in (
        EnvironmentProfile("developer-portal", "Development", "TSTZATCA-Code-Signing"),
        EnvironmentProfile("simulation", "Simulation", "PREZATCA-Code-Signing"),
        EnvironmentProfile("core", "Production", "ZATCA-Code-Signing"),
    )
}
_OTP_ISSUING_ENVIRONMENTS = {
    profile.name: profile.path_name for profile in ENVIRONMENTS.values() if not profile.has_fixed_otp
}


class CsrBody(msgspec.Struct):
    csr: str | None = None


class ProductionCsidBody(msgspec.Struct):
    compliance_request_id: str | int | None = None


class _Refused(Exception):
    """Internal short-cut: stop processing and send this answer."""

    def __init__(self, answer: wire.Answer, reason: str) -> None:
        self.answer = answer
        self.reason = reason
        super().__init__(reason)


class EmulatedGateway:
    def __init__(
        self,
        settings: EmulatorSettings,
        authority: EmulatorAuthority,
        store: EmulatorStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority
        self.store = store
        self.otp_ttl_seconds = settings.otp_ttl_seconds
        self.auto_pass_compliance_steps = settings.auto_pass_compliance_steps
        self.renewal_requires_compliance = settings.renewal_requires_compliance
        self._clock = clock

    # ZATCA endpoints -------------------------------------------------------------------------------

    def request_compliance_csid(
        self, environment: EnvironmentProfile, otp: str | None, body: bytes, *, wrong_key: bool = False
    ) -> wire.Answer:
        """`POST /compliance`: OTP + CSR -> compliance CSID. The OTP is spent only when one is issued."""
        try:
            return self._compliance_csid(environment, otp, body, wrong_key)
        except _Refused as refused:
            return self._refused(environment, "compliance", refused)

    def request_production_csid(
        self,
        environment: EnvironmentProfile,
        authorization: str | None,
        body: bytes,
        *,
        wrong_key: bool = False,
    ) -> wire.Answer:
        """`POST /production/csids`: a compliance CSID that passed its steps -> production CSID.

        Every call with valid compliance credentials issues a fresh production CSID, so a client
        that lost an answer (a timeout) can simply ask again.
        """
        try:
            return self._production_csid(environment, authorization, body, wrong_key)
        except _Refused as refused:
            return self._refused(environment, "production csid", refused)

    def renew_production_csid(
        self,
        environment: EnvironmentProfile,
        authorization: str | None,
        otp: str | None,
        body: bytes,
        *,
        wrong_key: bool = False,
    ) -> wire.Answer:
        """`PATCH /production/csids`: production CSID + renewal OTP + new CSR.

        200 with a new production CSID, or (with `renewal_requires_compliance`) 428 with new
        compliance credentials that must pass the compliance steps and be exchanged again.
        """
        try:
            return self._renewal(environment, authorization, otp, body, wrong_key)
        except _Refused as refused:
            return self._refused(environment, "renewal", refused)

    def _compliance_csid(
        self, environment: EnvironmentProfile, otp: str | None, body: bytes, wrong_key: bool
    ) -> wire.Answer:
        otp_vat = self._usable_otp_vat(environment, otp)
        csr = self._accepted_csr(environment, body)
        _require_otp_for_vat(otp_vat, csr.vat)
        content = CertificateContent.from_csr(csr)
        certificate_der = self.authority.issue(content, production=False, wrong_key=wrong_key)
        self._spend_otp(environment, otp)
        return self._issue_compliance(environment, csr, certificate_der, wire.compliance_issued)

    def _production_csid(
        self, environment: EnvironmentProfile, authorization: str | None, body: bytes, wrong_key: bool
    ) -> wire.Answer:
        compliance = self._authenticated(authorization, "compliance")
        if compliance.environment != environment.path_name:
            raise _Refused(wire.invalid_current_ccsid(), "Invalid-CurrentCCSID (other environment)")
        if _requested_compliance_id(body) != compliance.request_id:
            raise _Refused(wire.invalid_compliance_request_id(), "Invalid-ComplianceRequestId")
        missing = unpassed_steps(compliance)
        if missing:
            raise _Refused(wire.missing_compliance_steps(missing), "Missing-ComplianceSteps")
        content = CertificateContent.from_certificate(compliance.certificate_der)
        certificate_der = self.authority.issue(content, production=True, wrong_key=wrong_key)
        return self._issue_production(environment, compliance.vat, compliance.invoice_type, certificate_der)

    def _renewal(
        self,
        environment: EnvironmentProfile,
        authorization: str | None,
        otp: str | None,
        body: bytes,
        wrong_key: bool,
    ) -> wire.Answer:
        current = self._authenticated(authorization, "production")
        if current.environment != environment.path_name:
            raise _Refused(wire.unauthorized(), "Unauthorized (production CSID of another environment)")
        otp_vat = self._usable_otp_vat(environment, otp)
        csr = self._accepted_csr(environment, body)
        _require_otp_for_vat(otp_vat, csr.vat)
        if csr.vat != current.vat:
            detail = "the renewal CSR's UID differs from the VAT of the CSID being renewed"
            raise _Refused(wire.invalid_csr(detail), "Invalid-CSR")
        production = not self.renewal_requires_compliance
        content = CertificateContent.from_csr(csr)
        certificate_der = self.authority.issue(content, production=production, wrong_key=wrong_key)
        self._spend_otp(environment, otp)
        if production:
            return self._issue_production(environment, csr.vat, csr.invoice_type, certificate_der)
        return self._issue_compliance(environment, csr, certificate_der, wire.renewal_needs_compliance)

    # Administration --------------------------------------------------------------------------------

    def mint_otp(self, environment_name: str, vat: str) -> str:
        """An OTP as the Fatoora portal would hand it out: one hour, one use, one VAT, one environment."""
        path_name = _OTP_ISSUING_ENVIRONMENTS.get(environment_name)
        if path_name is None:
            raise ValueError(
                f"OTPs are minted for Simulation or Production; the developer portal accepts {SANDBOX_OTP}"
            )
        if not _FIFTEEN_DIGITS.fullmatch(vat):
            raise ValueError("vat must be 15 digits")
        return self.store.mint_otp(path_name, vat, self.otp_ttl_seconds)

    def pass_compliance_steps(self, request_id: int, steps: Iterable[str] | None) -> CsidRecord:
        """Mark steps passed (all its title needs when `steps` is None), as `/compliance/invoices` would."""
        record = self.store.csid_by_request_id(request_id)
        if record is None or record.kind != "compliance":
            raise LookupError(f"no compliance CSID with requestID {request_id}")
        chosen = set(wire.required_compliance_steps(record.invoice_type) if steps is None else steps)
        unknown = chosen - ALL_COMPLIANCE_STEPS
        if unknown:
            raise ValueError(f"unknown compliance steps {sorted(unknown)}")
        updated = self.store.mark_steps_passed(request_id, chosen)
        assert updated is not None  # the record was just read
        return updated

    # Steps -----------------------------------------------------------------------------------------

    def _usable_otp_vat(self, environment: EnvironmentProfile, otp: str | None) -> str | None:
        """The VAT the OTP is bound to (None for the sandbox's fixed OTP), or a refusal."""
        if otp is None or not otp.strip():
            raise _Refused(wire.missing_otp(), "Missing-OTP")
        if environment.has_fixed_otp:
            if otp.strip() != SANDBOX_OTP:
                raise _Refused(wire.invalid_otp(), "Invalid-OTP")
            return None
        record = self.store.usable_otp(environment.path_name, otp.strip())
        if record is None:
            raise _Refused(wire.invalid_otp(), "Invalid-OTP (unknown, expired, used or other environment)")
        return record.vat

    def _spend_otp(self, environment: EnvironmentProfile, otp: str | None) -> None:
        if environment.has_fixed_otp or otp is None:
            return
        if not self.store.consume_otp(environment.path_name, otp.strip()):
            raise _Refused(wire.invalid_otp(), "Invalid-OTP (spent meanwhile)")

    def _accepted_csr(self, environment: EnvironmentProfile, body: bytes) -> AcceptedCsr:
        try:
            request = msgspec.json.decode(body, type=CsrBody)
        except msgspec.DecodeError as exc:
            raise _Refused(
                wire.invalid_request(f"body is not a JSON object with a csr string: {exc}"), "body"
            ) from exc
        if not request.csr:
            raise _Refused(wire.missing_csr(), "Missing-CSR")
        try:
            return check_csr(csr_der_from_request_value(request.csr), environment.template)
        except CsrRefused as refused:
            answers = {
                Refusal.INVALID_CSR: wire.invalid_csr,
                Refusal.INVOICE_TYPE: wire.invalid_invoice_type,
                Refusal.TEMPLATE_DENIED: wire.template_denied,
            }
            raise _Refused(answers[refused.refusal](refused.detail), refused.refusal.value) from refused

    def _authenticated(self, authorization: str | None, kind: str) -> CsidRecord:
        credentials = basic_credentials(authorization)
        record = None if credentials is None else self.store.csid_for_credentials(*credentials)
        if record is None or record.kind != kind:
            raise _Refused(wire.unauthorized(), f"Unauthorized (needs a {kind} CSID)")
        return record

    def _issue_compliance(
        self,
        environment: EnvironmentProfile,
        csr: AcceptedCsr,
        certificate_der: bytes,
        answer: Callable[[int, str, str], wire.Answer],
    ) -> wire.Answer:
        token, secret = _token_for(certificate_der), _new_secret()
        passed = wire.required_compliance_steps(csr.invoice_type) if self.auto_pass_compliance_steps else []
        request_id = self.store.add_csid(
            kind="compliance",
            environment=environment.path_name,
            token=token,
            secret=secret,
            vat=csr.vat,
            invoice_type=csr.invoice_type,
            certificate_der=certificate_der,
            passed_steps=passed,
        )
        logger.info("%s: issued compliance CSID %d", environment.path_name, request_id)
        return answer(request_id, token, secret)

    def _issue_production(
        self, environment: EnvironmentProfile, vat: str, invoice_type: str, certificate_der: bytes
    ) -> wire.Answer:
        token, secret = _token_for(certificate_der), _new_secret()
        request_id = self.store.add_csid(
            kind="production",
            environment=environment.path_name,
            token=token,
            secret=secret,
            vat=vat,
            invoice_type=invoice_type,
            certificate_der=certificate_der,
        )
        logger.info("%s: issued production CSID %d", environment.path_name, request_id)
        return wire.production_issued(request_id, token, secret)

    @staticmethod
    def _refused(environment: EnvironmentProfile, endpoint: str, refused: _Refused) -> wire.Answer:
        # Only the reason: never the OTP, the credentials or the CSR's content.
        logger.info("%s %s refused: %s", environment.path_name, endpoint, refused.reason)
        return refused.answer


def unpassed_steps(record: CsidRecord) -> list[str]:
    """The compliance steps `record`'s title obliges that it has not passed yet, in ZATCA's order."""
    return [
        step
        for step in wire.required_compliance_steps(record.invoice_type)
        if step not in record.passed_steps
    ]


def _require_otp_for_vat(otp_vat: str | None, csr_vat: str) -> None:
    """ZATCA checks the OTP against the VAT in the CSR's UID (SEC; zatca-protocol.md 8)."""
    if otp_vat is not None and otp_vat != csr_vat:
        raise _Refused(wire.invalid_otp(), "Invalid-OTP (issued for another VAT)")


def _requested_compliance_id(body: bytes) -> int | None:
    try:
        request = msgspec.json.decode(body, type=ProductionCsidBody)
    except msgspec.DecodeError:
        return None
    value = request.compliance_request_id
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return value if isinstance(value, int) else None


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    token, separator, secret = decoded.partition(":")
    return (token, secret) if separator and token and secret else None


def _token_for(certificate_der: bytes) -> str:
    """binarySecurityToken: base64 of the ASCII base64 of the DER certificate (zatca-protocol.md 2.1)."""
    return base64.b64encode(base64.b64encode(certificate_der)).decode("ascii")


def _new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")
