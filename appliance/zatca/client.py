"""ZatcaClient: the one way the appliance talks to the ZATCA gateway (or its emulator).

Errors, all raised `from` the exception that caused them:

    ZatcaRejected      4xx: ZATCA refused the request; `messages` keep ZATCA's codes. Invoice
                       calls: 303 (a standard document sent to reporting) too, but not a 400
                       with validationResults, which is an InvoiceResult with status ERROR
    ZatcaUnavailable   reason "connect": no connection (refused, DNS, proxy, dropped mid-call)
                       reason "server-error": 5xx, ZATCA's message kept in `detail`
                       reason "bad-response": an answer that cannot be used (unparseable JSON,
                       no token, a token without a certificate, a 3xx, a broken HTTP exchange)
    ZatcaTimeout       an httpx timeout, or the whole call outlived its deadline
    ValueError         refused before sending: an OTP that could end up as header injection,
                       a CSR that is not PEM, empty credentials

Logs (logger `appliance.zatca`) carry the endpoint name, environment, status and latency only:
never the OTP, the secret, the token or the CSR.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
import httpx
import msgspec

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ConfigError, ZatcaTimeout, ZatcaUnavailable
from appliance.zatca.errors import error_for_status
from appliance.zatca.invoices import (
    InvoiceResult,
    InvoiceSubmission,
    clearance_required,
    decode_result_wire,
    has_verdict,
    result_from_wire,
)
from appliance.zatca.models import Credentials, CsidResponse, CsidWire, RenewalOutcome
from appliance.zatca.token import decode_binary_security_token

logger = logging.getLogger("appliance.zatca")

# observe(endpoint_name, status_label, seconds): status_label is the HTTP status ("200", "428")
# or what went wrong before one arrived ("timeout", "connect", "network", "protocol").
CallObserver = Callable[[str, str, float], None]


@dataclass(frozen=True, slots=True)
class ZatcaEndpoint:
    name: str
    method: str
    path: str


COMPLIANCE_CSID = ZatcaEndpoint("compliance-csid", "POST", "/compliance")
PRODUCTION_CSID = ZatcaEndpoint("production-csid", "POST", "/production/csids")
PRODUCTION_CSID_RENEWAL = ZatcaEndpoint("production-csid-renewal", "PATCH", "/production/csids")
COMPLIANCE_INVOICE = ZatcaEndpoint("compliance-invoice", "POST", "/compliance/invoices")
REPORTING = ZatcaEndpoint("reporting", "POST", "/invoices/reporting/single")
CLEARANCE = ZatcaEndpoint("clearance", "POST", "/invoices/clearance/single")

# Header values must not be able to smuggle CR/LF or other control bytes into the request.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_CSR_ARMOUR = ("-----BEGIN CERTIFICATE REQUEST-----", "-----BEGIN NEW CERTIFICATE REQUEST-----")


def _checked_otp(otp: str) -> str:
    if not _HEADER_SAFE.fullmatch(otp):
        raise ValueError("OTP must be non-empty printable ASCII without spaces or control characters")
    return otp


def _csr_request_value(csr_pem: str) -> str:
    """ZATCA wants base64 of the PEM *text* (zatca-protocol.md 5.4), not of the DER."""
    if not any(armour in csr_pem for armour in _CSR_ARMOUR):
        raise ValueError("CSR must be PEM text (-----BEGIN CERTIFICATE REQUEST-----)")
    return base64.b64encode(csr_pem.encode("ascii")).decode("ascii")


def _basic_authorization(credentials: Credentials) -> str:
    if not credentials.binary_security_token or not credentials.secret:
        raise ValueError("credentials need both a binarySecurityToken and a secret")
    # The username is the token exactly as ZATCA returned it, not the certificate (SEC section 5).
    pair = f"{credentials.binary_security_token}:{credentials.secret}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _validated_base_urls(settings: ZatcaSettings) -> dict[Environment, str]:
    urls: dict[Environment, str] = {}
    for environment in Environment:
        raw = settings.base_urls.for_environment(environment)
        setting = f"zatca.base_urls.{environment.value.lower()}"
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"{setting}: not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host or url.query or url.fragment:
            raise ConfigError(f"{setting}: expected http(s)://host/path without query, got {raw!r}")
        # Paths are appended verbatim; a base without its last `/` must not eat the path's.
        urls[environment] = raw.rstrip("/")
    return urls


class ZatcaClient:
    """Calls to ZATCA: onboarding (compliance CSID, production CSID, renewal) and invoices
    (compliance checks, reporting, clearance)."""

    def __init__(
        self,
        settings: ZatcaSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self._base_urls = _validated_base_urls(settings)
        self._observe = observe
        # httpx's read timeout bounds each socket read, not the call; this deadline bounds the call,
        # so a trickling server (or a transport that ignores timeouts) cannot hold a registration.
        self._deadline = (
            settings.connect_timeout + settings.write_timeout + settings.read_timeout + settings.pool_timeout
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.write_timeout,
                pool=settings.pool_timeout,
            ),
            limits=httpx.Limits(max_connections=settings.max_connections),
            headers={
                "Accept-Version": "V2",
                "Accept-Language": settings.accept_language,
                "Accept": "application/json",
                "User-Agent": "zatca-appliance",
            },
            follow_redirects=False,
        )

    async def request_compliance_csid(self, environment: Environment, csr_pem: str, otp: str) -> CsidResponse:
        """`POST /compliance`: a compliance CSID for the CSR, paid for with a one-time OTP."""
        response = await self._call(
            COMPLIANCE_CSID,
            environment,
            {"csr": _csr_request_value(csr_pem)},
            {"OTP": _checked_otp(otp)},
        )
        self._raise_for_error(COMPLIANCE_CSID, response)
        return self._csid_from(COMPLIANCE_CSID, response)

    async def request_production_csid(
        self, environment: Environment, credentials: Credentials, compliance_request_id: str
    ) -> CsidResponse:
        """`POST /production/csids` with the compliance credentials and their request id."""
        if not compliance_request_id:
            raise ValueError("compliance_request_id must not be empty")
        response = await self._call(
            PRODUCTION_CSID,
            environment,
            {"compliance_request_id": compliance_request_id},
            {"Authorization": _basic_authorization(credentials)},
        )
        self._raise_for_error(PRODUCTION_CSID, response)
        return self._csid_from(PRODUCTION_CSID, response)

    async def renew_production_csid(
        self, environment: Environment, credentials: Credentials, csr_pem: str, otp: str
    ) -> RenewalOutcome:
        """`PATCH /production/csids` with the current production credentials and a renewal OTP.

        428 is not an error: ZATCA renewed the CSID as a compliance one (see RenewalOutcome).
        """
        response = await self._call(
            PRODUCTION_CSID_RENEWAL,
            environment,
            {"csr": _csr_request_value(csr_pem)},
            {"OTP": _checked_otp(otp), "Authorization": _basic_authorization(credentials)},
        )
        if response.status_code == 428:
            return RenewalOutcome(issued=False, csid=self._csid_from(PRODUCTION_CSID_RENEWAL, response))
        self._raise_for_error(PRODUCTION_CSID_RENEWAL, response)
        return RenewalOutcome(issued=True, csid=self._csid_from(PRODUCTION_CSID_RENEWAL, response))

    async def submit_compliance_invoice(
        self, environment: Environment, credentials: Credentials, submission: InvoiceSubmission
    ) -> InvoiceResult:
        """`POST /compliance/invoices` with the compliance credentials: one compliance check."""
        return await self._submit_invoice(COMPLIANCE_INVOICE, environment, credentials, submission, {})

    async def report_invoice(
        self, environment: Environment, credentials: Credentials, submission: InvoiceSubmission
    ) -> InvoiceResult:
        """`POST /invoices/reporting/single` (simplified documents) with the production credentials.

        409 (hash already reported) is a result with `duplicate=True`; 303 raises ZatcaRejected.
        """
        headers = {"Clearance-Status": "0"}
        return await self._submit_invoice(REPORTING, environment, credentials, submission, headers)

    async def clear_invoice(
        self,
        environment: Environment,
        credentials: Credentials,
        submission: InvoiceSubmission,
        *,
        clearance_status: bool = True,
    ) -> InvoiceResult:
        """`POST /invoices/clearance/single` (standard documents) with the production credentials.

        208 (hash already cleared) is a result with `duplicate=True`, with the cleared invoice.
        """
        headers = {"Clearance-Status": "1" if clearance_status else "0"}
        return await self._submit_invoice(CLEARANCE, environment, credentials, submission, headers)

    async def _submit_invoice(
        self,
        endpoint: ZatcaEndpoint,
        environment: Environment,
        credentials: Credentials,
        submission: InvoiceSubmission,
        extra_headers: dict[str, str],
    ) -> InvoiceResult:
        headers = {"Authorization": _basic_authorization(credentials), **extra_headers}
        response = await self._call(endpoint, environment, submission.request_body(), headers)
        status = response.status_code
        duplicate = (endpoint is CLEARANCE and status == 208) or (endpoint is REPORTING and status == 409)
        if status in (200, 202) or duplicate:
            wire = decode_result_wire(endpoint.name, status, response.content)
            return result_from_wire(endpoint.name, status, wire, duplicate=duplicate)
        if status == 303:
            raise clearance_required(endpoint.name, response.content)
        if status == 400:
            try:
                rejection = decode_result_wire(endpoint.name, status, response.content)
            except ZatcaUnavailable:
                rejection = None
            if rejection is not None and has_verdict(rejection):
                return result_from_wire(endpoint.name, status, rejection)
        self._raise_for_error(endpoint, response)
        raise ZatcaUnavailable(endpoint.name, "bad-response", f"unexpected HTTP {status}", status)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(
        self,
        endpoint: ZatcaEndpoint,
        environment: Environment,
        body: dict[str, str],
        extra_headers: dict[str, str],
    ) -> httpx.Response:
        url = self._base_urls[environment] + endpoint.path
        headers = {"Content-Type": "application/json", **extra_headers}
        started = time.perf_counter()
        try:
            with anyio.fail_after(self._deadline):
                response = await self._http.request(
                    endpoint.method, url, content=msgspec.json.encode(body), headers=headers
                )
        except httpx.TimeoutException as exc:
            self._finished(endpoint, environment, "timeout", started)
            raise ZatcaTimeout(endpoint.name, f"{type(exc).__name__}: {exc}") from exc
        except TimeoutError as exc:
            self._finished(endpoint, environment, "timeout", started)
            raise ZatcaTimeout(endpoint.name, f"no answer within {self._deadline:g} s") from exc
        except (httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol) as exc:
            self._finished(endpoint, environment, "connect", started)
            raise ZatcaUnavailable(endpoint.name, "connect", f"{type(exc).__name__}: {exc}") from exc
        except httpx.NetworkError as exc:
            self._finished(endpoint, environment, "network", started)
            raise ZatcaUnavailable(endpoint.name, "connect", f"{type(exc).__name__}: {exc}") from exc
        except httpx.RequestError as exc:
            self._finished(endpoint, environment, "protocol", started)
            raise ZatcaUnavailable(endpoint.name, "bad-response", f"{type(exc).__name__}: {exc}") from exc
        self._finished(endpoint, environment, str(response.status_code), started)
        return response

    def _finished(
        self, endpoint: ZatcaEndpoint, environment: Environment, status: str, started: float
    ) -> None:
        seconds = time.perf_counter() - started
        failed = not status.isdigit() or int(status) >= 500
        logger.log(
            logging.WARNING if failed else logging.INFO,
            "ZATCA %s (%s): %s in %.3f s",
            endpoint.name,
            environment.value,
            status,
            seconds,
            extra={
                "zatca_endpoint": endpoint.name,
                "zatca_environment": environment.value,
                "zatca_status": status,
                "latency_seconds": seconds,
            },
        )
        if self._observe is not None:
            self._observe(endpoint.name, status, seconds)

    @staticmethod
    def _raise_for_error(endpoint: ZatcaEndpoint, response: httpx.Response) -> None:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            content_type = response.headers.get("content-type", "")
            raise error_for_status(
                endpoint.name, response.status_code, response.content, content_type
            ) from exc

    @staticmethod
    def _csid_from(endpoint: ZatcaEndpoint, response: httpx.Response) -> CsidResponse:
        status = response.status_code
        try:
            wire = msgspec.json.decode(response.content, type=CsidWire)
        except msgspec.DecodeError as exc:
            raise ZatcaUnavailable(
                endpoint.name, "bad-response", f"not a CSID answer: {exc}", status
            ) from exc
        missing = [
            name
            for name, value in (
                ("requestID", wire.request_id),
                ("binarySecurityToken", wire.binary_security_token),
                ("secret", wire.secret),
            )
            if value is None or value == ""
        ]
        if missing or wire.binary_security_token is None or wire.secret is None:
            raise ZatcaUnavailable(
                endpoint.name, "bad-response", f"answer lacks {', '.join(missing)}", status
            )
        try:
            certificate_der = decode_binary_security_token(wire.binary_security_token)
        except ValueError as exc:
            raise ZatcaUnavailable(endpoint.name, "bad-response", str(exc), status) from exc
        return CsidResponse(
            request_id=str(wire.request_id),
            disposition_message=wire.disposition_message or "",
            binary_security_token=wire.binary_security_token,
            secret=wire.secret,
            token_type=wire.token_type,
            certificate_der=certificate_der,
        )
