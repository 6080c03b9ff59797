"""`/v1/Devices`: register a POS and look devices up. Thin: decode, call a service, render."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter

from appliance.api.auth import api_key_scope, require_api_key, require_role
from appliance.api.json_body import require_json_content_type
from appliance.api.openapi import RegisterOperation, error_responses
from appliance.api.register_request import decode_register_request
from appliance.api.schemas import (
    CertificateView,
    DevicePageView,
    DeviceView,
    RegisterDeviceResponse,
)
from appliance.app_state import Resources
from appliance.domain import INVOICE_TYPE_NAME_BY_CODE, ApiKeyRole, DeviceStatus, Environment
from appliance.errors import Forbidden, NotFound
from appliance.services.registration import RegistrationResult
from appliance.services.retirement import retire_device
from appliance.storage import ApiKeyScope, DeviceRecord

# SQLite integers are 64-bit, and no registry holds a billion devices.
MAX_OFFSET = 1_000_000_000

_ERRORS = error_responses(
    (400, "validation failed, or ZATCA rejected the request (source ZATCA)"),
    (401, "missing or wrong API key"),
    (403, "the API key lacks the role, or the VAT is outside its scope"),
    (404, "no such device (or not one this API key may see)"),
    (409, "the same device (environment, VAT, EGS serial) is already active or being registered"),
    (415, "the body is not sent as `application/json`"),
    (429, "the API key used up its registrations for this hour"),
    (502, "ZATCA unavailable or answered nonsense"),
    (503, "the PKCS#11 token is unavailable"),
    (504, "ZATCA did not answer in time"),
)


class DevicesController(Controller):
    path = "/v1/Devices"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's declared class attribute
    tags = ["Devices"]  # noqa: RUF012

    @post(
        "/Register",
        status_code=200,
        summary="Register a POS device with ZATCA",
        operation_class=RegisterOperation,
        responses=_ERRORS,
        guards=[require_role(ApiKeyRole.REGISTER)],
    )
    async def register(self, request: Request[Any, Any, Any], resources: Resources) -> RegisterDeviceResponse:
        require_json_content_type(request.headers.get("content-type"))
        registration = decode_register_request(await request.body(), resources.config.solution)
        scope = api_key_scope(request)
        if not scope.sees_vat(registration.vat):
            raise Forbidden(f"this API key may not register devices of VAT {registration.vat}")
        result = await resources.registration.register(
            registration, scope.key_id, registrations_per_hour=scope.registrations_per_hour
        )
        return registration_response(result)

    @get(
        "/{device_id:str}",
        summary="One device (never its secrets or key)",
        responses=_ERRORS,
        guards=[require_role(ApiKeyRole.READ)],
    )
    async def get_device(
        self, device_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> DeviceView:
        return device_view(await visible_device(device_id, api_key_scope(request), resources))

    @delete(
        "/{device_id:str}",
        status_code=200,
        summary="Retire a device: its key is destroyed in the token, its records are kept",
        description=(
            "Allowed to an `admin` key and to the key that registered the device. The EGS serial "
            "may then register again."
        ),
        responses=_ERRORS,
    )
    async def retire(
        self, device_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> DeviceView:
        scope = api_key_scope(request)
        record = await visible_device(device_id, scope, resources)
        if not scope.has_role(ApiKeyRole.ADMIN) and record.created_by != scope.key_id:
            raise Forbidden("only an admin key or the key that registered the device may retire it")
        result = await retire_device(
            resources.keys,
            resources.registry,
            device_id,
            actor=scope.actor,
            locks=resources.locks,
            metrics=resources.metrics,
        )
        return device_view(result.record)

    @get("/", summary="Devices, newest first", responses=_ERRORS, guards=[require_role(ApiKeyRole.READ)])
    async def list_devices(
        self,
        *,
        request: Request[Any, Any, Any],
        resources: Resources,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, default=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500, default=50)] = 50,
        status: DeviceStatus | None = None,
        environment: Environment | None = None,
    ) -> DevicePageView:
        page = await resources.registry.list_devices(
            offset=offset,
            limit=limit,
            status=status,
            environment=environment,
            vats=api_key_scope(request).vats,
        )
        return DevicePageView(
            items=[device_view(record) for record in page.items],
            total=page.total,
            offset=page.offset,
            limit=page.limit,
        )


async def visible_device(device_id: str, scope: ApiKeyScope, resources: Resources) -> DeviceRecord:
    """The device, or NotFound, also when it belongs to a VAT outside the key's scope."""
    try:
        uuid.UUID(device_id)
    except ValueError as exc:
        raise NotFound(f"no device {device_id!r}: device ids are UUIDs") from exc
    record = await resources.registry.get(device_id)
    if not scope.sees_vat(record.vat):
        raise NotFound(f"no device {device_id}")
    return record


def registration_response(result: RegistrationResult) -> RegisterDeviceResponse:
    """The answer of a registration, and of a renewal (same shape)."""
    return RegisterDeviceResponse(
        deviceId=result.device_id,
        csid=result.csid,
        CSR=result.csr_pem,
        privateKey=result.private_key_pem,
        secret=result.secret,
        invoiceType=INVOICE_TYPE_NAME_BY_CODE[result.invoice_type],
    )


def device_view(record: DeviceRecord) -> DeviceView:
    certificate = None
    if record.certificate_serial and record.certificate_not_before and record.certificate_not_after:
        certificate = CertificateView(
            serialNumber=record.certificate_serial,
            notBefore=record.certificate_not_before,
            notAfter=record.certificate_not_after,
            kind=record.credential_kind,
        )
    return DeviceView(
        deviceId=record.device_id,
        status=record.status,
        environment=record.environment,
        invoiceFormat=record.invoice_format,
        invoiceType=INVOICE_TYPE_NAME_BY_CODE.get(record.invoice_type, "Both"),
        egsSerialNumber=record.egs_serial,
        vat=record.vat,
        organizationName=record.organization_name,
        organizationUnitName=record.organization_unit,
        countryCode=record.country,
        location=record.location,
        industry=record.industry,
        keyId=record.key_id_hex,
        keyLabel=record.key_label,
        keySealed=not record.invoice_format.key_leaves_token,
        createdAt=record.created_at,
        updatedAt=record.updated_at,
        certificate=certificate,
        failureCode=record.failure_code,
        failureMessage=record.failure_message,
        retiredAt=record.retired_at,
        retiredBy=record.retired_by,
    )
