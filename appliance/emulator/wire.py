"""ZATCA's answers, shaped exactly as the gateway sends them (zatca-protocol.md 2 and 3).

Every answer is an `Answer`: status, body bytes and media type, so the HTTP layer only copies it.
Where ZATCA's shape is known, field names, order and null/empty conventions follow the samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

TOKEN_TYPE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"  # noqa: S105
UNSUPPORTED_VERSION_TEXT = "This Version is not supported or not provided in the header."
INVALID_CSR_MESSAGE = "The provided Certificate Signing Request (CSR) is invalid."
COMPLIANCE_STEPS_BY_FLAG = {
    # title position 0 (T): standard documents; position 1 (S): simplified ones (zatca-protocol.md 6).
    0: ("standard-compliant", "standard-credit-note-compliant", "standard-debit-note-compliant"),
    1: ("simplified-compliant", "simplified-credit-note-compliant", "simplified-debit-note-compliant"),
}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    media_type: str = "application/json"

    def __repr__(self) -> str:
        # Success bodies carry a token and secret; a repr must never show them.
        return f"Answer(status={self.status}, body=<{len(self.body)} bytes>, media_type={self.media_type!r})"


def json_answer(status: int, document: Any) -> Answer:
    return Answer(status, msgspec.json.encode(document))


def unsupported_version() -> Answer:
    return Answer(406, UNSUPPORTED_VERSION_TEXT.encode(), "text/plain")


def coded_errors(code: str, message: str, status: int = 400) -> Answer:
    """`{"errors":[{"code","message"}]}`: the shape of Missing-OTP and Invalid-OTP."""
    return json_answer(status, {"errors": [{"code": code, "message": message}]})


def missing_otp() -> Answer:
    return coded_errors("Missing-OTP", "OTP is required field")


def invalid_otp() -> Answer:
    return coded_errors("Invalid-OTP", "The provided OTP is invalid")


def missing_csr() -> Answer:
    return coded_errors("Missing-CSR", "CSR is required field")


def invalid_request(detail: str) -> Answer:
    """A body that is not the JSON object the endpoint expects (ZATCA: "Invalid Request")."""
    return json_answer(
        400, {"errors": [{"code": "Invalid-Request", "message": "Invalid Request"}], "emulatorDetail": detail}
    )


def invalid_csr(detail: str) -> Answer:
    """ZATCA's Invalid-CSR shape; `emulatorDetail` (not sent by ZATCA) says what was wrong."""
    return json_answer(
        400,
        {
            "errorCode": "400",
            "errorCategory": "Invalid-CSR",
            "errorMessage": INVALID_CSR_MESSAGE,
            "emulatorDetail": detail,
        },
    )


def invalid_invoice_type(title: str) -> Answer:
    """The CA layer's answer to a `title` it does not know (sevaske/php-zatca-xml#2)."""
    message = f"Invoice type is not valid: {title!r}; allowed values are 1000, 0100 and 1100"
    return json_answer(
        400,
        {
            "requestID": -1,
            "dispositionMessage": "NOT_COMPLIANT",
            "binarySecurityToken": "",
            "secret": "",
            "errors": [message],
        },
    )


def template_denied(template: str) -> Answer:
    """The Microsoft CA's policy module refusing a template it does not serve (ERPGulf#74)."""
    message = (
        "unable to submit and sign the csr in zatca side, caused : Denied by Policy Module 0x80094800, "
        "The request was for a certificate template that is not supported by the Active Directory "
        f"Certificate Services policy: {template}.\r\n"
    )
    return json_answer(
        400,
        {
            "requestID": -2,
            "tokenType": None,
            "dispositionMessage": "NOT_COMPLIANT",
            "binarySecurityToken": None,
            "secret": None,
            "errors": [message],
        },
    )


def unauthorized() -> Answer:
    return json_answer(
        401, {"timestamp": int(time.time() * 1000), "status": 401, "error": "Unauthorized", "message": ""}
    )


def invalid_current_ccsid() -> Answer:
    return json_answer(
        400, {"code": "Invalid-CurrentCCSID", "message": "The provided CurrentCCSID is invalid"}
    )


def invalid_compliance_request_id() -> Answer:
    """Not documented by ZATCA; the emulator's answer to a request id that is not the CCSID's own."""
    return json_answer(
        400,
        {
            "code": "Invalid-ComplianceRequestId",
            "message": "The provided compliance_request_id does not belong to the authenticated CCSID",
        },
    )


def missing_compliance_steps(missing_steps: list[str]) -> Answer:
    steps = ",".join(missing_steps)
    message = f"The compliance certificate is not done with the following compliance steps yet [{steps}]"
    return json_answer(400, {"code": "Missing-ComplianceSteps", "message": message})


def server_error() -> Answer:
    return json_answer(500, {"code": "Invalid-Request", "message": "System failed to process your request"})


def gateway_timeout() -> Answer:
    """What a held (`timeout` fault) request finally gets, if its client is still waiting."""
    return json_answer(
        504,
        {"category": "HTTP-Errors", "code": "504", "message": "The upstream service did not answer in time."},
    )


def shutting_down() -> Answer:
    """What a held request gets when the emulator stops before `hang_seconds` are over."""
    message = "The emulator is shutting down."
    return json_answer(503, {"category": "HTTP-Errors", "code": "503", "message": message})


def malformed_json() -> Answer:
    """A 200 whose JSON breaks off mid-document, as a truncated proxy answer would."""
    return Answer(200, b'{"requestID": 1234567890123, "dispositionMessage": "ISSU')


def compliance_issued(request_id: int, token: str, secret: str) -> Answer:
    return json_answer(
        200,
        {
            "requestID": request_id,
            "dispositionMessage": "ISSUED",
            "binarySecurityToken": token,
            "secret": secret,
            "errors": None,
        },
    )


def production_issued(request_id: int, token: str, secret: str) -> Answer:
    return json_answer(
        200,
        {
            "requestID": request_id,
            "tokenType": TOKEN_TYPE,
            "dispositionMessage": "ISSUED",
            "binarySecurityToken": token,
            "secret": secret,
        },
    )


def renewal_needs_compliance(request_id: int, token: str, secret: str) -> Answer:
    """428: renewed, but as a compliance CSID that must pass the checks again (DISC 524, 3178)."""
    return json_answer(
        428,
        {
            "requestID": request_id,
            "tokenType": None,
            "dispositionMessage": "NOT_COMPLIANT",
            "binarySecurityToken": token,
            "secret": secret,
            "errors": None,
        },
    )


def required_compliance_steps(invoice_type: str) -> list[str]:
    """The step names a `title` obliges, in the order ZATCA lists them."""
    return [
        step
        for position, steps in COMPLIANCE_STEPS_BY_FLAG.items()
        if invoice_type[position] == "1"
        for step in steps
    ]


def invoice_verdict(status: int, validation_results: dict[str, Any], **statuses: object) -> Answer:
    """Compliance, reporting and clearance answers: validationResults, then the endpoint's statuses."""
    return json_answer(status, {"validationResults": validation_results, **statuses})


def duplicate_reported() -> Answer:
    """409 on reporting: the hash was already reported (zatca-invoice-signing.md 6, DISC 3932)."""
    return json_answer(
        409,
        {
            "code": "Invoice-Errors",
            "category": "Duplicate-Invoice",
            "message": "Invoice was already reported successfully earlier.",
            "reportingStatus": "NOT_REPORTED",
        },
    )


def single_error(code: str, category: str, message: str) -> dict[str, Any]:
    """validationResults holding one error, for refusals decided before the document is judged."""
    entry = {"type": "ERROR", "code": code, "category": category, "message": message, "status": "ERROR"}
    return {"infoMessages": [], "warningMessages": [], "errorMessages": [entry], "status": "ERROR"}


def clearance_required() -> Answer:
    """303: a standard document sent to reporting while clearance is on (DISC 991)."""
    message = "Standard invoices must be sent to clearance: clearance is activated for this taxpayer"
    results = single_error("invoice-clearance-required", "INVOICE_ERRORS", message)
    return invoice_verdict(303, results, reportingStatus="NOT_REPORTED")
