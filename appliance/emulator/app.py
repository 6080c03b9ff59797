"""The emulator's HTTP face: ZATCA's three base paths, plus administration under `/emulator/`.

ZATCA endpoints (for each of developer-portal, simulation, core under `/e-invoicing/`):
    POST  /compliance            OTP + CSR -> compliance CSID
    POST  /production/csids      compliance CSID (Basic) -> production CSID
    PATCH /production/csids      production CSID (Basic) + OTP + CSR -> renewed CSID (200 or 428)
    POST  /compliance/invoices          compliance CSID (Basic) + signed document -> verdict
    POST  /invoices/reporting/single    production CSID (Basic) + simplified document -> verdict
    POST  /invoices/clearance/single    production CSID (Basic) + standard document -> cleared invoice

A pending fault hits the next ZATCA request (of its endpoint, if it names one) before anything
else is looked at (Accept-Version included); a request held by a `timeout` fault gets 504 after
`hang_seconds`, or 503 at shutdown; a `connection-drop` sends the status line and headers, then
closes the connection.

Administration (never affected by faults):
    GET    /emulator/health               readiness probe
    GET    /emulator/ca-certificate       the emulator CA, PEM, to verify issued certificates
    POST   /emulator/otps                 {"environment": "Simulation"|"Production", "vat"} -> {"otp"}
    GET    /emulator/faults               pending faults
    POST   /emulator/faults               {"kind", "count", "seconds"}: add a fault
    DELETE /emulator/faults               drop every pending fault
    POST   /emulator/compliance-steps     {"request_id", "steps"?}: mark compliance steps passed
    GET    /emulator/behaviour            the switches below
    PATCH  /emulator/behaviour            {"auto_pass_compliance_steps"?, "renewal_requires_compliance"?,
                                           "refuse_kind"?, "forget_kind"?: a document kind or "" for none}
    GET    /emulator/requests             how many requests each ZATCA endpoint received
    GET    /emulator/invoices             received documents and their verdicts (?request_id=CSID's)
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
from litestar import Litestar, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.daemon.files import make_private
from appliance.emulator import wire
from appliance.emulator.authority import EmulatorAuthority
from appliance.emulator.faults import FaultQueue, PendingFault
from appliance.emulator.gateway import ENVIRONMENTS, EmulatedGateway, EnvironmentProfile, unpassed_steps
from appliance.emulator.invoice_desk import InvoiceDesk, InvoiceEndpoint
from appliance.emulator.invoice_store import InvoiceFiles
from appliance.emulator.settings import EmulatorSettings, EndpointName, FaultSpec
from appliance.emulator.store import EmulatorStore

ADMIN_PREFIX = "/emulator"
ZATCA_PREFIX = "/e-invoicing/{environment:str}"

# What a ZATCA endpoint does once faults and Accept-Version are dealt with: (environment, body, wrong_key).
Operation = Callable[[EnvironmentProfile, bytes, bool], wire.Answer | Awaitable[wire.Answer]]
# A response carrying this header loses its body and its connection (a `connection-drop` fault).
DROP_HEADER = "x-emulator-drop-connection"


class OtpRequest(msgspec.Struct, forbid_unknown_fields=True):
    environment: str
    vat: str


class OtpAnswer(msgspec.Struct):
    otp: str


class ComplianceStepsRequest(msgspec.Struct, forbid_unknown_fields=True):
    request_id: int | str
    steps: list[str] | None = None


class ComplianceStepsAnswer(msgspec.Struct):
    request_id: int
    passed: list[str]
    missing: list[str]


class Behaviour(msgspec.Struct, forbid_unknown_fields=True):
    auto_pass_compliance_steps: bool | None = None
    renewal_requires_compliance: bool | None = None
    # A document kind (`simplified-credit-note`) the compliance check refuses; "" for none.
    refuse_kind: str | None = None
    # A document kind whose accepted compliance check is not credited to the CSID; "" for none.
    forget_kind: str | None = None


class InvoiceEntry(msgspec.Struct):
    uuid: str
    environment: str
    endpoint: str
    request_id: int
    kind: str | None
    invoice_hash: str | None
    http_status: int
    status: str
    xml_file: str
    verdict_file: str
    received_at: float


class RequestCounts(msgspec.Struct):
    total: int
    by_endpoint: dict[str, int]


class EmulatorRuntime:
    """Everything the handlers share; lives in `app.state.emulator`."""

    def __init__(self, settings: EmulatorSettings) -> None:
        data_dir = Path(settings.data_dir)
        self.settings = settings
        self.authority = EmulatorAuthority.load_or_create(data_dir)
        self.store = EmulatorStore(data_dir)
        # The state holds the CA key and minted OTPs' digests: owner-only, also for a directory
        # created by an older version or by hand (SQLite gives its WAL files the database's mode).
        make_private(data_dir)
        self.gateway = EmulatedGateway(settings, self.authority, self.store)
        self.invoices = InvoiceDesk(
            self.store,
            self.authority,
            InvoiceFiles(data_dir),
            refuse_kind=InvoiceDesk.checked_kind(settings.refuse_kind),
            forget_kind=InvoiceDesk.checked_kind(settings.forget_kind),
        )
        self.faults = FaultQueue(settings.faults)
        self.received: Counter[str] = Counter()
        # Set when the server starts shutting down, so that requests held by a `timeout` fault end
        # at once instead of being cancelled (with a traceback) when the grace period runs out.
        self._stopping = asyncio.Event()

    def release_held_requests(self) -> None:
        self._stopping.set()

    async def _hold(self) -> wire.Answer:
        with anyio.move_on_after(self.settings.hang_seconds):
            await self._stopping.wait()
            return wire.shutting_down()
        return wire.gateway_timeout()

    async def serve(
        self,
        request: Request[Any, Any, Any],
        environment: str,
        endpoint: EndpointName,
        operation: Operation,
    ) -> Response[bytes]:
        self.received[f"{request.method} {request.url.path}"] += 1
        profile = ENVIRONMENTS.get(environment)
        if profile is None:
            raise NotFoundException(f"unknown environment {environment!r}")
        wrong_key = False
        fault = self.faults.take(endpoint)
        if fault is not None:
            if fault.kind == "latency":
                await anyio.sleep(fault.delay_seconds)
            elif fault.kind == "error-500":
                return _response(wire.server_error())
            elif fault.kind == "malformed-json":
                return _response(wire.malformed_json())
            elif fault.kind == "timeout":
                return _response(await self._hold())
            elif fault.kind == "connection-drop":
                return _response(wire.server_error(), drop=True)
            else:
                wrong_key = True
        if request.headers.get("accept-version") != "V2":
            return _response(wire.unsupported_version())
        body = await request.body()
        answer = operation(profile, body, wrong_key)
        return _response(await answer if inspect.isawaitable(answer) else answer)


def _response(answer: wire.Answer, *, drop: bool = False) -> Response[bytes]:
    headers = {DROP_HEADER: "1"} if drop else None
    return Response(
        content=answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers
    )


def drop_connection_middleware(app: ASGIApp) -> ASGIApp:
    """Sends the status line and headers of a marked response, then nothing: the server closes the
    connection of a response it cannot complete, as a proxy or load balancer failing mid-answer would."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        dropping = False

        async def filtered_send(message: Message) -> None:
            nonlocal dropping
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kept = [(name, value) for name, value in headers if name.lower() != DROP_HEADER.encode()]
                dropping = len(kept) != len(headers)
                message = {**message, "headers": kept}
            elif message["type"] == "http.response.body" and dropping:
                return
            await send(message)

        await app(scope, receive, filtered_send)

    return middleware


def _runtime(state: State) -> EmulatorRuntime:
    runtime: EmulatorRuntime = state.emulator
    return runtime


# ZATCA endpoints ----------------------------------------------------------------------------------


@post(f"{ZATCA_PREFIX}/compliance", status_code=HTTP_200_OK)
async def compliance(request: Request[Any, Any, Any], environment: str, state: State) -> Response[bytes]:
    runtime = _runtime(state)
    return await runtime.serve(
        request,
        environment,
        "compliance",
        lambda profile, body, wrong_key: runtime.gateway.request_compliance_csid(
            profile, request.headers.get("otp"), body, wrong_key=wrong_key
        ),
    )


@post(f"{ZATCA_PREFIX}/production/csids", status_code=HTTP_200_OK)
async def production_csids(
    request: Request[Any, Any, Any], environment: str, state: State
) -> Response[bytes]:
    runtime = _runtime(state)
    return await runtime.serve(
        request,
        environment,
        "production-csids",
        lambda profile, body, wrong_key: runtime.gateway.request_production_csid(
            profile, request.headers.get("authorization"), body, wrong_key=wrong_key
        ),
    )


@patch(f"{ZATCA_PREFIX}/production/csids", status_code=HTTP_200_OK)
async def renew_production_csids(
    request: Request[Any, Any, Any], environment: str, state: State
) -> Response[bytes]:
    runtime, headers = _runtime(state), request.headers
    return await runtime.serve(
        request,
        environment,
        "renewal",
        lambda profile, body, wrong_key: runtime.gateway.renew_production_csid(
            profile, headers.get("authorization"), headers.get("otp"), body, wrong_key=wrong_key
        ),
    )


async def _serve_invoice(
    request: Request[Any, Any, Any],
    environment: str,
    state: State,
    endpoint: EndpointName,
    desk_endpoint: InvoiceEndpoint,
) -> Response[bytes]:
    runtime, authorization = _runtime(state), request.headers.get("authorization")
    return await runtime.serve(
        request,
        environment,
        endpoint,
        lambda profile, body, _wrong_key: runtime.invoices.submit(
            profile, desk_endpoint, authorization, body
        ),
    )


@post(f"{ZATCA_PREFIX}/compliance/invoices", status_code=HTTP_200_OK)
async def compliance_invoices(
    request: Request[Any, Any, Any], environment: str, state: State
) -> Response[bytes]:
    return await _serve_invoice(request, environment, state, "compliance-invoices", "compliance")


@post(f"{ZATCA_PREFIX}/invoices/reporting/single", status_code=HTTP_200_OK)
async def reporting(request: Request[Any, Any, Any], environment: str, state: State) -> Response[bytes]:
    return await _serve_invoice(request, environment, state, "reporting", "reporting")


@post(f"{ZATCA_PREFIX}/invoices/clearance/single", status_code=HTTP_200_OK)
async def clearance(request: Request[Any, Any, Any], environment: str, state: State) -> Response[bytes]:
    return await _serve_invoice(request, environment, state, "clearance", "clearance")


# Administration -----------------------------------------------------------------------------------


@get(f"{ADMIN_PREFIX}/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(f"{ADMIN_PREFIX}/ca-certificate", media_type="application/x-pem-file")
async def ca_certificate(state: State) -> bytes:
    return _runtime(state).authority.certificate_pem


@post(f"{ADMIN_PREFIX}/otps")
async def mint_otp(data: OtpRequest, state: State) -> OtpAnswer:
    try:
        return OtpAnswer(otp=_runtime(state).gateway.mint_otp(data.environment, data.vat))
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


@get(f"{ADMIN_PREFIX}/faults")
async def list_faults(state: State) -> list[PendingFault]:
    return _runtime(state).faults.pending()


@post(f"{ADMIN_PREFIX}/faults")
async def add_fault(data: FaultSpec, state: State) -> list[PendingFault]:
    faults = _runtime(state).faults
    faults.add(data)
    return faults.pending()


@delete(f"{ADMIN_PREFIX}/faults", status_code=HTTP_204_NO_CONTENT)
async def clear_faults(state: State) -> None:
    _runtime(state).faults.clear()


@post(f"{ADMIN_PREFIX}/compliance-steps", status_code=HTTP_200_OK)
async def pass_compliance_steps(data: ComplianceStepsRequest, state: State) -> ComplianceStepsAnswer:
    try:
        record = _runtime(state).gateway.pass_compliance_steps(int(data.request_id), data.steps)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return ComplianceStepsAnswer(
        request_id=record.request_id, passed=sorted(record.passed_steps), missing=unpassed_steps(record)
    )


def _behaviour(runtime: EmulatorRuntime) -> Behaviour:
    gateway = runtime.gateway
    return Behaviour(
        gateway.auto_pass_compliance_steps,
        gateway.renewal_requires_compliance,
        runtime.invoices.refuse_kind or "",
        runtime.invoices.forget_kind or "",
    )


@get(f"{ADMIN_PREFIX}/behaviour")
async def get_behaviour(state: State) -> Behaviour:
    return _behaviour(_runtime(state))


@patch(f"{ADMIN_PREFIX}/behaviour")
async def set_behaviour(data: Behaviour, state: State) -> Behaviour:
    runtime = _runtime(state)
    gateway = runtime.gateway
    if data.refuse_kind is not None:
        try:
            runtime.invoices.refuse_kind = InvoiceDesk.checked_kind(data.refuse_kind or None)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
    if data.forget_kind is not None:
        try:
            runtime.invoices.forget_kind = InvoiceDesk.checked_kind(data.forget_kind or None)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
    if data.auto_pass_compliance_steps is not None:
        gateway.auto_pass_compliance_steps = data.auto_pass_compliance_steps
    if data.renewal_requires_compliance is not None:
        gateway.renewal_requires_compliance = data.renewal_requires_compliance
    return _behaviour(runtime)


@get(f"{ADMIN_PREFIX}/requests")
async def request_counts(state: State) -> RequestCounts:
    received = _runtime(state).received
    return RequestCounts(total=sum(received.values()), by_endpoint=dict(received))


@get(f"{ADMIN_PREFIX}/invoices")
async def list_invoices(state: State, request_id: int | None = None) -> list[InvoiceEntry]:
    runtime = _runtime(state)
    directory = runtime.invoices.files.directory
    return [
        InvoiceEntry(
            uuid=record.uuid,
            environment=record.environment,
            endpoint=record.endpoint,
            request_id=record.csid_request_id,
            kind=record.kind,
            invoice_hash=record.invoice_hash,
            http_status=record.http_status,
            status=record.status,
            xml_file=str(directory / f"{record.file_stem}.xml"),
            verdict_file=str(directory / f"{record.file_stem}.json"),
            received_at=record.received_at,
        )
        for record in runtime.store.invoices(request_id)
    ]


def create_emulator_app(settings: EmulatorSettings) -> Litestar:
    """The emulator as an ASGI app; creates (or reopens) its CA and database in `settings.data_dir`."""
    runtime = EmulatorRuntime(settings)

    async def close_store() -> None:
        runtime.invoices.close()
        runtime.store.close()

    shutdown: list[Callable[[], Awaitable[None]]] = [close_store]
    return Litestar(
        route_handlers=[
            compliance,
            production_csids,
            renew_production_csids,
            compliance_invoices,
            reporting,
            clearance,
            health,
            ca_certificate,
            mint_otp,
            list_faults,
            add_fault,
            clear_faults,
            pass_compliance_steps,
            get_behaviour,
            set_behaviour,
            request_counts,
            list_invoices,
        ],
        middleware=[drop_connection_middleware],
        state=State({"emulator": runtime}),
        on_shutdown=shutdown,
        openapi_config=None,
    )
