"""Invoices: Model documents signed by the appliance, Xml/Pdf documents submitted, seller, reads.

Status codes: 201 for an invoice stored by this request, 200 for a retry answered with the stored
invoice (same ICV, hash and bytes), 409 for a `Uuid` reused with another body.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter

from appliance.api.auth import api_key_scope, require_api_key, require_role
from appliance.api.invoice_schemas import InvoiceModelDocument, SellerDocument, SubmitDocument
from appliance.api.json_body import decode_json_object, require_json_content_type
from appliance.api.openapi import error_responses, json_body_operation
from appliance.app_state import Resources
from appliance.domain import ApiKeyRole
from appliance.errors import FieldProblem, Forbidden, ValidationFailed
from appliance.services.invoicing import IssuedInvoice, SubmittedDocument
from appliance.storage.invoices_models import InvoiceRecord, InvoiceStatus, StoredMessage

MAX_OFFSET = 1_000_000_000
XML_MEDIA_TYPE = "application/xml"

_ERRORS = error_responses(
    (400, "the model or document is invalid (every field or failed check named)"),
    (401, "missing or wrong API key"),
    (403, "the API key lacks the `invoice` role"),
    (404, "no such device or invoice"),
    (409, "device not active, wrong invoice format for this route, or Uuid reused with another body"),
    (413, "body over server.max_body_bytes"),
    (415, "the body is not sent as JSON (Content-Type)"),
    (503, "the PKCS#11 token or the database is unavailable"),
)


_MODEL_BODY = json_body_operation(
    InvoiceModelDocument,
    "The invoice model. Names match without regard to case; unknown names are refused by path; "
    "amounts are decimal strings or JSON numbers; the appliance computes every total.",
)
_SUBMIT_BODY = json_body_operation(SubmitDocument, "`SignedXml` is base64 of the signed UBL document.")
_SELLER_BODY = json_body_operation(SellerDocument, "The seller's address and identification.")
_MAY_INVOICE = require_role(ApiKeyRole.INVOICE)


class ZatcaMessageView(msgspec.Struct):
    type: str
    code: str
    category: str
    message: str
    status: str


class ZatcaView(msgspec.Struct):
    httpStatus: int | None  # noqa: N815 - the published API's casing
    infoMessages: list[ZatcaMessageView]  # noqa: N815
    warningMessages: list[ZatcaMessageView]  # noqa: N815
    errorMessages: list[ZatcaMessageView]  # noqa: N815


class InvoiceView(msgspec.Struct):
    invoiceId: str  # noqa: N815
    deviceId: str  # noqa: N815
    uuid: str
    invoiceNumber: str  # noqa: N815
    icv: int
    invoiceHash: str  # noqa: N815
    previousInvoiceHash: str  # noqa: N815
    qrCode: str  # noqa: N815
    signedXml: str | None  # noqa: N815 - base64; left out (null) in listings
    clearedXml: str | None  # noqa: N815
    status: InvoiceStatus
    zatca: ZatcaView
    kind: str
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815


class InvoicePageView(msgspec.Struct):
    items: list[InvoiceView]
    total: int
    offset: int
    limit: int


async def _may_read(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    scope = api_key_scope(connection)
    if not (scope.has_role(ApiKeyRole.INVOICE) or scope.has_role(ApiKeyRole.READ)):
        raise Forbidden("this API key has neither the `invoice` nor the `read` role")


class InvoicesController(Controller):
    path = "/v1"
    guards = [require_api_key]  # noqa: RUF012 - Litestar's declared class attribute
    tags = ["Invoices"]  # noqa: RUF012

    @post(
        "/Devices/{device_id:str}/Invoices",
        summary="Sign, chain and store a Model invoice; report it (simplified) or clear it (standard)",
        operation_class=_MODEL_BODY,
        responses=_ERRORS,
        guards=[_MAY_INVOICE],
    )
    async def issue(
        self, device_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> Response[InvoiceView]:
        require_json_content_type(request.headers.get("content-type"))
        issued = await resources.invoicing.issue(device_id, await request.body(), api_key_scope(request).vats)
        return _issued_response(issued)

    @post(
        "/Devices/{device_id:str}/Invoices/Submit",
        summary="Verify, chain and store a document an Xml/Pdf device signed; report or clear it",
        operation_class=_SUBMIT_BODY,
        responses=_ERRORS,
        guards=[_MAY_INVOICE],
    )
    async def submit(
        self, device_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> Response[InvoiceView]:
        require_json_content_type(request.headers.get("content-type"))
        document = decode_submission(await request.body())
        issued = await resources.invoicing.submit(device_id, document, api_key_scope(request).vats)
        return _issued_response(issued)

    @put(
        "/Devices/{device_id:str}/Seller",
        status_code=204,
        summary="Store the seller address and identification used when a model carries no Seller",
        operation_class=_SELLER_BODY,
        responses=_ERRORS,
        guards=[_MAY_INVOICE],
    )
    async def put_seller(self, device_id: str, request: Request[Any, Any, Any], resources: Resources) -> None:
        require_json_content_type(request.headers.get("content-type"))
        seller = decode_json_object(await request.body())
        await resources.invoicing.put_seller(device_id, seller, api_key_scope(request).vats)

    @get(
        "/Invoices/{invoice_id:str}",
        summary="One invoice; `Accept: application/xml` gives the signed (or cleared) document",
        responses=_ERRORS,
        guards=[_may_read],
    )
    async def get_invoice(
        self, invoice_id: str, request: Request[Any, Any, Any], resources: Resources
    ) -> Response[Any]:
        record = await resources.invoicing.get(invoice_id, api_key_scope(request).vats)
        accepted = request.headers.get("accept", "")
        if XML_MEDIA_TYPE in accepted or "text/xml" in accepted:
            document = record.cleared_xml if record.cleared_xml is not None else record.signed_xml
            return Response(document, media_type=XML_MEDIA_TYPE)
        return Response(invoice_view(record), media_type=MediaType.JSON)

    @get(
        "/Devices/{device_id:str}/Invoices",
        summary="A device's invoices, newest first (without the documents)",
        responses=_ERRORS,
        guards=[_may_read],
    )
    async def list_invoices(
        self,
        *,
        device_id: str,
        request: Request[Any, Any, Any],
        resources: Resources,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, default=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500, default=50)] = 50,
        status: InvoiceStatus | None = None,
    ) -> InvoicePageView:
        page = await resources.invoicing.list_invoices(
            device_id, status=status, offset=offset, limit=limit, vats=api_key_scope(request).vats
        )
        return InvoicePageView(
            items=[invoice_view(record, with_documents=False) for record in page.items],
            total=page.total,
            offset=page.offset,
            limit=page.limit,
        )


def _issued_response(issued: IssuedInvoice) -> Response[InvoiceView]:
    return Response(invoice_view(issued.record), status_code=201 if issued.created else 200)


def _messages(messages: tuple[StoredMessage, ...]) -> list[ZatcaMessageView]:
    return [ZatcaMessageView(m.type, m.code, m.category, m.message, m.status) for m in messages]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def invoice_view(record: InvoiceRecord, *, with_documents: bool = True) -> InvoiceView:
    return InvoiceView(
        invoiceId=record.invoice_id,
        deviceId=record.device_id,
        uuid=record.uuid,
        invoiceNumber=record.invoice_number,
        icv=record.icv,
        invoiceHash=record.invoice_hash,
        previousInvoiceHash=record.pih,
        qrCode=record.qr,
        signedXml=_b64(record.signed_xml) if with_documents else None,
        clearedXml=_b64(record.cleared_xml) if with_documents else None,
        status=record.status,
        zatca=ZatcaView(
            httpStatus=record.http_status,
            infoMessages=_messages(record.info_messages),
            warningMessages=_messages(record.warning_messages),
            errorMessages=_messages(record.error_messages),
        ),
        kind=record.kind,
        createdAt=record.created_at.isoformat(),
        updatedAt=record.updated_at.isoformat(),
    )


_SUBMIT_NAMES: dict[str, Literal["Uuid", "InvoiceNumber", "SignedXml"]] = {
    "uuid": "Uuid",
    "invoicenumber": "InvoiceNumber",
    "signedxml": "SignedXml",
}


def decode_submission(body: bytes) -> SubmittedDocument:
    """`{"Uuid", "InvoiceNumber", "SignedXml"}`, names without regard to case; every problem named."""
    document = decode_json_object(body)
    values: dict[str, Any] = {}
    problems = []
    for key, value in document.items():
        canonical = _SUBMIT_NAMES.get(key.lower())
        if canonical is None:
            problems.append(FieldProblem(key, "unknown field", "Unknown-Field"))
        elif canonical in values:
            problems.append(
                FieldProblem(canonical, "given more than once (names ignore case)", "Duplicate-Field")
            )
        else:
            values[canonical] = value
    for canonical in _SUBMIT_NAMES.values():
        value = values.get(canonical)
        if not isinstance(value, str) or not value.strip():
            problems.append(FieldProblem(canonical, "is required (a non-empty string)", "Missing-Field"))
    if problems:
        raise ValidationFailed(problems)
    # Kept as sent (case included): the service compares it with the document's cbc:UUID as UUIDs.
    uuid_text = values["Uuid"].strip()
    try:
        uuid.UUID(uuid_text)
    except ValueError:
        problems.append(FieldProblem("Uuid", "must be a UUID", "Invalid-Value"))
    xml = b""
    try:
        xml = base64.b64decode(values["SignedXml"], validate=True)
    except (binascii.Error, ValueError):
        problems.append(
            FieldProblem("SignedXml", "must be base64 of the signed XML document", "Invalid-Base64")
        )
    else:
        if not xml.lstrip().startswith(b"<"):
            problems.append(FieldProblem("SignedXml", "is not an XML document", "Invalid-XML"))
    if problems:
        raise ValidationFailed(problems)
    return SubmittedDocument(uuid=uuid_text, invoice_number=values["InvoiceNumber"].strip(), signed_xml=xml)
