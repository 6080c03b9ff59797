"""ZatcaClient's invoice calls against httpx.MockTransport: wire format, verdicts, errors."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from appliance.config import ZatcaSettings
from appliance.domain import Environment
from appliance.errors import ZatcaRejected, ZatcaTimeout, ZatcaUnavailable
from appliance.zatca import Credentials, InvoiceResult, InvoiceSubmission, ZatcaClient

GATEWAY = "https://gw-fatoora.zatca.gov.sa/e-invoicing"
CREDENTIALS = Credentials("UFJPRFVDVElPTi1UT0tFTg==", "cHJvZHVjdGlvbi1zZWNyZXQ=")
# Bytes that a re-serialisation would change: a declaration, odd spacing, Arabic text.
XML = '<?xml version="1.0" encoding="UTF-8"?>\n<Invoice  a="1">\r\n  مرحبا </Invoice>\n'.encode()
SUBMISSION = InvoiceSubmission(
    invoice_hash="z5F9qsS6oWyDhehD8u8S0DaxV+2CUiUz9Y+UsR61JgQ=",
    uuid="3cf5ee18-ee25-44ea-a444-2c37ba7f28be",
    invoice_xml=XML,
)
PASS_INFO = {
    "type": "INFO",
    "code": "XSD_ZATCA_VALID",
    "category": "XSD validation",
    "message": "Complied with UBL 2.1 standards in line with ZATCA specifications",
    "status": "PASS",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, status: int, body: object = None, *, raw: bytes | None = None) -> None:
        self.status = status
        self.content = raw if raw is not None else json.dumps(body).encode()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return httpx.Response(self.status, content=self.content, headers={"Content-Type": "application/json"})


def client(recorder: httpx.AsyncBaseTransport) -> ZatcaClient:
    return ZatcaClient(ZatcaSettings(), transport=recorder)


def zatca_message(kind: str, code: str, category: str, message: str) -> dict[str, str]:
    """One of ZATCA's validation messages whose status is its type (WARNING, ERROR)."""
    return {"type": kind, "code": code, "category": category, "message": message, "status": kind}


def verdict(status: str, **extra: object) -> dict[str, object]:
    return {
        "validationResults": {
            "infoMessages": [PASS_INFO],
            "warningMessages": extra.pop("warnings", []),
            "errorMessages": extra.pop("errors", []),
            "status": status,
        },
        "reportingStatus": None,
        "clearanceStatus": None,
        "qrSellertStatus": None,
        "qrBuyertStatus": None,
        **extra,
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "path", "clearance_header"),
    [
        ("compliance", "/developer-portal/compliance/invoices", None),
        ("reporting", "/developer-portal/invoices/reporting/single", "0"),
        ("clearance", "/developer-portal/invoices/clearance/single", "1"),
    ],
)
async def test_request_carries_exact_bytes_hash_uuid_and_basic_auth(
    call: str, path: str, clearance_header: str | None
) -> None:
    recorder = Recorder(200, verdict("PASS"))
    async with client(recorder) as zatca:
        if call == "compliance":
            await zatca.submit_compliance_invoice(Environment.DEVELOPMENT, CREDENTIALS, SUBMISSION)
        elif call == "reporting":
            await zatca.report_invoice(Environment.DEVELOPMENT, CREDENTIALS, SUBMISSION)
        else:
            await zatca.clear_invoice(Environment.DEVELOPMENT, CREDENTIALS, SUBMISSION)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == GATEWAY + path
    body = json.loads(request.content)
    assert body == {
        "invoiceHash": SUBMISSION.invoice_hash,
        "uuid": SUBMISSION.uuid,
        "invoice": base64.b64encode(XML).decode(),
    }
    assert base64.b64decode(body["invoice"]) == XML
    pair = f"{CREDENTIALS.binary_security_token}:{CREDENTIALS.secret}".encode()
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(pair).decode()
    assert request.headers["Accept-Version"] == "V2"
    assert request.headers.get("Clearance-Status") == clearance_header


@pytest.mark.anyio
async def test_clearance_status_header_can_say_clearance_is_off() -> None:
    recorder = Recorder(200, verdict("PASS"))
    async with client(recorder) as zatca:
        await zatca.clear_invoice(Environment.SIMULATION, CREDENTIALS, SUBMISSION, clearance_status=False)
    assert recorder.requests[0].headers["Clearance-Status"] == "0"


@pytest.mark.anyio
async def test_200_pass_is_an_accepted_result_with_zatca_messages() -> None:
    recorder = Recorder(200, verdict("PASS", reportingStatus="REPORTED"))
    async with client(recorder) as zatca:
        result = await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert result.accepted and not result.duplicate
    assert (result.http_status, result.status, result.reporting_status) == (200, "PASS", "REPORTED")
    assert result.info_messages[0].code == "XSD_ZATCA_VALID"
    assert result.info_messages[0].category == "XSD validation"


@pytest.mark.anyio
async def test_202_warnings_are_accepted_and_kept() -> None:
    warning = zatca_message("WARNING", "BR-KSA-98", "KSA", "submit within 24 hours")
    recorder = Recorder(202, verdict("WARNING", warnings=[warning], reportingStatus="REPORTED"))
    async with client(recorder) as zatca:
        result = await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert result.accepted
    assert [(m.code, m.category, m.type) for m in result.warning_messages] == [
        ("BR-KSA-98", "KSA", "WARNING")
    ]


@pytest.mark.anyio
async def test_400_with_validation_results_is_a_rejection_result_not_an_exception() -> None:
    error = zatca_message(
        "ERROR",
        "invalid-invoice-hash",
        "INVOICE_HASHING_ERRORS",
        "The invoice hash API body does not match the (calculated) Hash of the XML",
    )
    recorder = Recorder(400, verdict("ERROR", errors=[error], clearanceStatus="NOT_CLEARED"))
    async with client(recorder) as zatca:
        result = await zatca.clear_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert not result.accepted
    assert result.status == "ERROR" and result.clearance_status == "NOT_CLEARED"
    assert [(m.code, m.category) for m in result.error_messages] == [
        ("invalid-invoice-hash", "INVOICE_HASHING_ERRORS")
    ]


@pytest.mark.anyio
async def test_clearance_returns_the_cleared_invoice_bytes() -> None:
    cleared = XML.replace(b"</Invoice>", b"<Stamp/></Invoice>")
    body = verdict("PASS", clearanceStatus="CLEARED", clearedInvoice=base64.b64encode(cleared).decode())
    async with client(Recorder(200, body)) as zatca:
        result = await zatca.clear_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert result.cleared_invoice == cleared and result.clearance_status == "CLEARED"


@pytest.mark.anyio
async def test_208_on_clearance_is_a_duplicate_success_with_the_cleared_invoice() -> None:
    body = verdict("PASS", clearanceStatus="CLEARED", clearedInvoice=base64.b64encode(XML).decode())
    async with client(Recorder(208, body)) as zatca:
        result = await zatca.clear_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert result.duplicate and result.accepted and result.cleared_invoice == XML


@pytest.mark.anyio
async def test_409_duplicate_on_reporting_is_a_duplicate_success() -> None:
    body = {
        "code": "Invoice-Errors",
        "category": "Duplicate-Invoice",
        "message": "Invoice was already reported successfully earlier.",
        "reportingStatus": "NOT_REPORTED",
    }
    async with client(Recorder(409, body)) as zatca:
        result = await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert result.duplicate and result.accepted
    assert [(m.code, m.category) for m in result.error_messages] == [("Invoice-Errors", "Duplicate-Invoice")]


@pytest.mark.anyio
async def test_409_on_compliance_is_not_a_duplicate_but_a_rejection() -> None:
    async with client(Recorder(409, {"code": "Conflict", "message": "x"})) as zatca:
        with pytest.raises(ZatcaRejected) as raised:
            await zatca.submit_compliance_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.status_code == 409


@pytest.mark.anyio
async def test_303_raises_a_rejection_that_says_to_use_clearance() -> None:
    async with client(Recorder(303, raw=b"")) as zatca:
        with pytest.raises(ZatcaRejected) as raised:
            await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.status_code == 303
    assert raised.value.messages[0].code == "Clearance-Required"
    assert "clearance" in str(raised.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"timestamp": 1, "status": 401, "error": "Unauthorized", "message": ""}),
        (400, {"errors": [{"code": "Invalid-Request", "message": "Invalid Request"}]}),
        (406, None),
    ],
)
async def test_answers_without_a_verdict_raise_rejected(status: int, body: object) -> None:
    raw = b"This Version is not supported or not provided in the header." if body is None else None
    async with client(Recorder(status, body, raw=raw)) as zatca:
        with pytest.raises(ZatcaRejected) as raised:
            await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.status_code == status


@pytest.mark.anyio
async def test_500_is_unavailable_server_error() -> None:
    body = {"code": "Invalid-Request", "message": "System failed to process your request"}
    async with client(Recorder(500, body)) as zatca:
        with pytest.raises(ZatcaUnavailable) as raised:
            await zatca.clear_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.reason == "server-error" and raised.value.status_code == 500


@pytest.mark.anyio
@pytest.mark.parametrize("raw", [b'{"validationResults": {"status": "PA', b"[]"])
async def test_unusable_success_answer_is_a_bad_response(raw: bytes) -> None:
    async with client(Recorder(200, raw=raw)) as zatca:
        with pytest.raises(ZatcaUnavailable) as raised:
            await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.reason == "bad-response"


class Failing(httpx.AsyncBaseTransport):
    def __init__(self, error: type[httpx.TransportError]) -> None:
        self.error = error

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.error("simulated", request=request)


@pytest.mark.anyio
async def test_timeouts_and_dropped_connections_keep_the_onboarding_error_mapping() -> None:
    async with client(Failing(httpx.ReadTimeout)) as zatca:
        with pytest.raises(ZatcaTimeout):
            await zatca.report_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    async with client(Failing(httpx.RemoteProtocolError)) as zatca:
        with pytest.raises(ZatcaUnavailable) as raised:
            await zatca.clear_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.reason == "bad-response"
    async with client(Failing(httpx.ConnectError)) as zatca:
        with pytest.raises(ZatcaUnavailable) as raised:
            await zatca.submit_compliance_invoice(Environment.PRODUCTION, CREDENTIALS, SUBMISSION)
    assert raised.value.reason == "connect"


def test_submission_refuses_empty_parts_and_hides_bytes_in_repr() -> None:
    with pytest.raises(ValueError, match="uuid"):
        InvoiceSubmission(invoice_hash="x", uuid=" ", invoice_xml=b"<a/>")
    with pytest.raises(ValueError, match="invoice_xml"):
        InvoiceSubmission(invoice_hash="x", uuid="u", invoice_xml=b"")
    assert "مرحبا" not in repr(SUBMISSION)


def test_result_accepted_follows_status_and_duplicate() -> None:
    assert not InvoiceResult(http_status=200, status="ERROR").accepted
    assert InvoiceResult(http_status=409, status="", duplicate=True).accepted
