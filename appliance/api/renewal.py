"""`POST /v1/Devices/{deviceId}/Renew`: a new production CSID for an active device. Thin: decode,
check the key's scope, call the renewal service, answer in the registration's shape."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, post

from appliance.api.auth import api_key_scope, require_api_key, require_role
from appliance.api.devices import registration_response, visible_device
from appliance.api.json_body import decode_json_object, require_json_content_type
from appliance.api.openapi import error_responses
from appliance.api.schemas import RegisterDeviceResponse
from appliance.app_state import Resources
from appliance.domain import ApiKeyRole, Environment
from appliance.errors import FieldProblem, ValidationFailed

_SIX_DIGITS = re.compile(r"[0-9]{6}")

_ERRORS = error_responses(
    (400, "validation failed, or ZATCA refused the renewal or a compliance document (source ZATCA)"),
    (401, "missing or wrong API key"),
    (403, "the API key lacks the `register` role"),
    (404, "no such device (or not one this API key may see)"),
    (409, "the device is not active with a production CSID, or is being renewed already"),
    (415, "the body is not sent as `application/json`"),
    (502, "ZATCA unavailable or answered nonsense"),
    (503, "the PKCS#11 token is unavailable"),
    (504, "ZATCA did not answer in time"),
)


class RenewDeviceDocument(msgspec.Struct):
    """The request body (the name `OTP` is matched without regard to case)."""

    OTP: str


class RenewalController(Controller):
    path = "/v1/Devices"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's declared class attribute
    tags = ["Devices"]  # noqa: RUF012

    @post(
        "/{device_id:str}/Renew",
        status_code=200,
        summary="Renew a device's production CSID",
        description=(
            "A new key in the token, a new CSR and `PATCH /production/csids` with the renewal OTP. "
            "When ZATCA answers 428 the compliance checks run with the renewed compliance CSID "
            "before the production CSID is issued. The answer has the registration's shape: the new "
            "`csid` and `secret`, and `privateKey` (the new key) for Xml and Pdf devices only. Any "
            "failure leaves the device on its old key and credentials. The invoice chain continues."
        ),
        responses=_ERRORS,
        guards=[require_role(ApiKeyRole.REGISTER)],
        request_body=RenewDeviceDocument,
    )
    async def renew(
        self, device_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> RegisterDeviceResponse:
        require_json_content_type(request.headers.get("content-type"))
        otp = _otp(decode_json_object(await request.body()))
        scope = api_key_scope(request)
        record = await visible_device(device_id, scope, resources)
        if record.environment is not Environment.DEVELOPMENT and not _SIX_DIGITS.fullmatch(otp):
            raise ValidationFailed(
                [FieldProblem("OTP", f"must be the 6-digit renewal OTP from the {record.environment} portal")]
            )
        result = await resources.renewal.renew(device_id, otp, scope.key_id)
        return registration_response(result)


def _otp(document: dict[str, Any]) -> str:
    problems: list[FieldProblem] = []
    otp: object = None
    for name, value in document.items():
        if name.lower() == "otp" and otp is not None:
            problems.append(
                FieldProblem("OTP", "given more than once (names ignore case)", "Duplicate-Field")
            )
        elif name.lower() == "otp":
            otp = value
        else:
            problems.append(FieldProblem(name, "unknown field", "Unknown-Field"))
    if otp is None:
        problems.append(FieldProblem("OTP", "is required", "Missing-Field"))
    elif not isinstance(otp, str) or not otp.strip():
        problems.append(FieldProblem("OTP", "must be a non-empty string", "Invalid-Type"))
    if problems or not isinstance(otp, str):
        raise ValidationFailed(problems)
    return otp.strip()
