"""Every error shape ZATCA is documented to send reaches the caller as the right error, codes kept.

Shapes from zatca-protocol.md sections 2, 3.1, 3.3 and 3.4; bodies copied from there.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ZatcaMessage, ZatcaRejected, ZatcaTimeout, ZatcaUnavailable
from appliance.zatca import Credentials, ZatcaClient
from appliance.zatca.errors import messages_from_error_body

CSR_PEM = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
CREDENTIALS = Credentials("VE9LRU4=", "c2VjcmV0")

Call = Callable[[ZatcaClient], Awaitable[object]]


def compliance(client: ZatcaClient) -> Awaitable[object]:
    return client.request_compliance_csid(Environment.SIMULATION, CSR_PEM, "123345")


def production(client: ZatcaClient) -> Awaitable[object]:
    return client.request_production_csid(Environment.SIMULATION, CREDENTIALS, "1234567890123")


def renewal(client: ZatcaClient) -> Awaitable[object]:
    return client.renew_production_csid(Environment.SIMULATION, CREDENTIALS, CSR_PEM, "123345")


ENDPOINT_NAME: dict[Call, str] = {
    compliance: "compliance-csid",
    production: "production-csid",
    renewal: "production-csid-renewal",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def as_json(document: object) -> bytes:
    return json.dumps(document).encode()


DENIED_BY_POLICY = (
    "unable to submit and sign the csr in zatca side, caused : Denied by Policy Module 0x80094800, "
    "The request was for a certificate template that is not supported by the Active Directory "
    "Certificate Services policy: PREZATCA-Code-Signing.\r\n"
)

REJECTIONS = [
    pytest.param(
        compliance,
        400,
        as_json({"errors": [{"code": "Missing-OTP", "message": "OTP is required field"}]}),
        "application/json",
        [("Missing-OTP", "OTP is required field")],
        id="compliance-missing-otp",
    ),
    pytest.param(
        compliance,
        400,
        as_json({"errors": [{"code": "Invalid-OTP", "message": "The provided OTP is invalid"}]}),
        "application/json",
        [("Invalid-OTP", "The provided OTP is invalid")],
        id="compliance-invalid-otp",
    ),
    pytest.param(
        compliance,
        400,
        as_json(
            {
                "errorCode": "400",
                "errorCategory": "Invalid-CSR",
                "errorMessage": "The provided Certificate Signing Request (CSR) is invalid.",
            }
        ),
        "application/json",
        [("Invalid-CSR", "The provided Certificate Signing Request (CSR) is invalid.")],
        id="compliance-error-category",
    ),
    pytest.param(
        compliance,
        400,
        as_json(
            {
                "requestID": -1,
                "dispositionMessage": "NOT_COMPLIANT",
                "binarySecurityToken": "",
                "secret": "",
                "errors": ["Invoice type is bla…", "Second problem"],
            }
        ),
        "application/json",
        [("NOT_COMPLIANT", "Invoice type is bla…"), ("NOT_COMPLIANT", "Second problem")],
        id="compliance-not-compliant-strings",
    ),
    pytest.param(
        compliance,
        400,
        as_json(
            {
                "requestID": -2,
                "tokenType": None,
                "dispositionMessage": "NOT_COMPLIANT",
                "binarySecurityToken": None,
                "errors": [DENIED_BY_POLICY],
            }
        ),
        "application/json",
        [("NOT_COMPLIANT", DENIED_BY_POLICY.strip())],
        id="compliance-denied-by-policy-module",
    ),
    pytest.param(
        compliance,
        400,
        b"Invalid Request",
        "text/plain",
        [("HTTP-400", "Invalid Request")],
        id="compliance-plain-invalid-request",
    ),
    pytest.param(
        compliance,
        400,
        as_json({"errors": ["bare message without disposition"]}),
        "application/json",
        [("HTTP-400", "bare message without disposition")],
        id="compliance-bare-strings",
    ),
    pytest.param(
        compliance,
        400,
        as_json({"requestID": -1, "dispositionMessage": "NOT_COMPLIANT", "errors": None}),
        "application/json",
        [("NOT_COMPLIANT", "")],
        id="compliance-errors-null-with-disposition",
    ),
    pytest.param(
        compliance,
        400,
        as_json({"errors": None}),
        "application/json",
        [("HTTP-400", "HTTP 400 without details")],
        id="compliance-errors-null-alone",
    ),
    pytest.param(
        compliance,
        406,
        b"This Version is not supported or not provided in the header.",
        "text/plain",
        [("Unsupported-Version", "This Version is not supported or not provided in the header.")],
        id="compliance-406-plain-text",
    ),
    pytest.param(
        production,
        400,
        as_json(
            {
                "code": "Missing-ComplianceSteps",
                "message": "The compliance certificate is not done with the following compliance steps yet "
                "[standard-compliant,simplified-compliant]",
            }
        ),
        "application/json",
        [
            (
                "Missing-ComplianceSteps",
                "The compliance certificate is not done with the following compliance steps yet "
                "[standard-compliant,simplified-compliant]",
            )
        ],
        id="production-missing-compliance-steps-top-level",
    ),
    pytest.param(
        production,
        400,
        as_json(
            {
                "errors": [
                    {
                        "code": "Missing-ComplianceSteps",
                        "message": "Compliance steps for this CSID are not yet complete",
                    }
                ]
            }
        ),
        "application/json",
        [("Missing-ComplianceSteps", "Compliance steps for this CSID are not yet complete")],
        id="production-missing-compliance-steps-swagger",
    ),
    pytest.param(
        production,
        400,
        as_json({"code": "Invalid-CurrentCCSID", "message": "The provided CurrentCCSID is invalid"}),
        "application/json",
        [("Invalid-CurrentCCSID", "The provided CurrentCCSID is invalid")],
        id="production-invalid-current-ccsid",
    ),
    pytest.param(
        production,
        401,
        as_json({"timestamp": 1700000000000, "status": 401, "error": "Unauthorized", "message": ""}),
        "application/json",
        [("HTTP-401", "Unauthorized")],
        id="production-401-spring",
    ),
    pytest.param(
        production,
        403,
        b"You are not authorized to use this api endpoint",
        "text/plain",
        [("HTTP-403", "You are not authorized to use this api endpoint")],
        id="production-not-authorized-text",
    ),
    pytest.param(
        production,
        406,
        b"This Version is not supported or not provided in the header.",
        "",
        [("Unsupported-Version", "This Version is not supported or not provided in the header.")],
        id="production-406-no-content-type",
    ),
    pytest.param(
        renewal,
        400,
        as_json({"errors": [{"code": "Missing-OTP", "message": "OTP is required field"}]}),
        "application/json",
        [("Missing-OTP", "OTP is required field")],
        id="renewal-missing-otp",
    ),
    pytest.param(
        renewal,
        401,
        b"",
        "",
        [("HTTP-401", "HTTP 401 with an empty body")],
        id="renewal-401-empty-body",
    ),
    pytest.param(
        renewal,
        400,
        b"<html><head><title>400 Bad Request</title></head><body><h1>Bad</h1></body></html>",
        "text/html",
        [("HTTP-400", "HTML page: 400 Bad Request")],
        id="renewal-400-html",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "status", "body", "content_type", "expected"), REJECTIONS)
async def test_4xx_shapes_become_zatca_rejected_with_zatcas_codes(
    call: Call, status: int, body: bytes, content_type: str, expected: list[tuple[str, str]]
) -> None:
    transport = httpx.MockTransport(
        lambda _request: httpx.Response(status, content=body, headers={"Content-Type": content_type})
    )
    async with ZatcaClient(ZatcaSettings(), transport=transport) as client:
        with pytest.raises(ZatcaRejected) as caught:
            await call(client)

    error = caught.value
    assert error.status_code == status
    assert error.endpoint == ENDPOINT_NAME[call]
    assert error.messages == [ZatcaMessage(code, message) for code, message in expected]
    assert isinstance(error.__cause__, httpx.HTTPStatusError)
    assert error.__cause__.response.status_code == status


SERVER_ERRORS = [
    pytest.param(
        500,
        as_json({"code": "Invalid-Request", "message": "System failed to process your request"}),
        "application/json",
        "Invalid-Request: System failed to process your request",
        id="500-invalid-request",
    ),
    pytest.param(
        500,
        as_json(
            {
                "category": "HTTP-Errors",
                "code": "500",
                "message": "Something went wrong and caused an Internal Server Error.",
            }
        ),
        "application/json",
        "500: Something went wrong and caused an Internal Server Error.",
        id="500-http-errors",
    ),
    pytest.param(
        502,
        b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>",
        "text/html",
        "HTML page: 502 Bad Gateway",
        id="502-html",
    ),
    pytest.param(503, b"", "", "HTTP 503 with an empty body", id="503-empty"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("call", [compliance, production, renewal])
@pytest.mark.parametrize(("status", "body", "content_type", "detail"), SERVER_ERRORS)
async def test_5xx_shapes_become_server_error_keeping_zatcas_message(
    call: Call, status: int, body: bytes, content_type: str, detail: str
) -> None:
    transport = httpx.MockTransport(
        lambda _request: httpx.Response(status, content=body, headers={"Content-Type": content_type})
    )
    async with ZatcaClient(ZatcaSettings(), transport=transport) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await call(client)

    error = caught.value
    assert not isinstance(error, ZatcaTimeout)
    assert error.reason == "server-error"
    assert error.status_code == status
    assert error.endpoint == ENDPOINT_NAME[call]
    assert detail in error.detail
    assert isinstance(error.__cause__, httpx.HTTPStatusError)


@pytest.mark.anyio
async def test_redirect_is_not_followed_and_is_a_bad_response() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/login"})

    async with ZatcaClient(ZatcaSettings(), transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ZatcaUnavailable) as caught:
            await compliance(client)

    assert caught.value.reason == "bad-response"
    assert caught.value.status_code == 302
    assert len(seen) == 1


def test_huge_error_bodies_are_clipped() -> None:
    [message] = messages_from_error_body(400, b"x" * 100_000, "text/plain")

    assert message.code == "HTTP-400"
    assert 0 < len(message.message) <= 500


def test_html_without_title_does_not_dump_markup() -> None:
    [message] = messages_from_error_body(404, b"<html><body><p>" + b"a" * 2000 + b"</p></body></html>")

    assert message == ZatcaMessage("HTTP-404", "HTML page without a title")


def test_error_objects_without_code_get_the_status_code() -> None:
    messages = messages_from_error_body(400, as_json({"errors": [{"message": "no code here"}, {}, None]}))

    assert messages == [ZatcaMessage("HTTP-400", "no code here")]
