"""Wire formats of the HTTP API (msgspec Structs; Litestar documents them in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from appliance.domain import DeviceStatus, Environment, InvoiceFormat, InvoiceTypeName


class ErrorItem(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One problem. `field` (omitted when not about one field) names the request field."""

    code: str
    message: str
    source: Literal["Appliance", "ZATCA"]
    field: str | None = None


class ErrorBody(msgspec.Struct):
    errorList: list[ErrorItem]  # noqa: N815 - the published API's casing
    status: Literal["Failed"] = "Failed"


class RegisterDeviceResponse(msgspec.Struct):
    """The published 200 answer; `privateKey` is set only for Xml and Pdf formats."""

    deviceId: str  # noqa: N815
    csid: str
    CSR: str
    privateKey: str | None  # noqa: N815
    secret: str
    invoiceType: InvoiceTypeName  # noqa: N815
    status: Literal["Success"] = "Success"
    errorList: list[ErrorItem] = msgspec.field(default_factory=list)  # noqa: N815


class CertificateView(msgspec.Struct):
    """The certificate the device signs with; `kind` says whether it is the production CSID's."""

    serialNumber: str  # noqa: N815
    notBefore: datetime  # noqa: N815
    notAfter: datetime  # noqa: N815
    kind: Literal["compliance", "production"] | None = None


class DeviceView(msgspec.Struct):
    """What an operator may see of a device: never a secret, token or key."""

    deviceId: str  # noqa: N815
    status: DeviceStatus
    environment: Environment
    invoiceFormat: InvoiceFormat  # noqa: N815
    invoiceType: InvoiceTypeName  # noqa: N815
    egsSerialNumber: str  # noqa: N815
    vat: str
    organizationName: str  # noqa: N815
    organizationUnitName: str  # noqa: N815
    countryCode: str  # noqa: N815
    location: str
    industry: str
    keyId: str  # noqa: N815
    keyLabel: str  # noqa: N815
    keySealed: bool  # noqa: N815
    createdAt: datetime  # noqa: N815
    updatedAt: datetime  # noqa: N815
    certificate: CertificateView | None
    failureCode: str | None  # noqa: N815
    failureMessage: str | None  # noqa: N815
    retiredAt: datetime | None = None  # noqa: N815
    retiredBy: str | None = None  # noqa: N815 - an actor: `apikey:<key id>` or `cli`


class DevicePageView(msgspec.Struct):
    items: list[DeviceView]
    total: int
    offset: int
    limit: int


class RegisterDeviceDocument(msgspec.Struct):
    """The request body as documented. Decoding is casing-tolerant (see register_request.py);
    this Struct only feeds the OpenAPI document."""

    Device: RegisterDeviceDetails
    Organization: RegisterOrganizationDetails
    Environment: Environment
    OTP: str
    InvoiceFormat: InvoiceFormat


class RegisterDeviceDetails(msgspec.Struct):
    EgsSerialNumber: str
    Location: str
    Industry: str
    InvoiceType: str = "1100"


class RegisterOrganizationDetails(msgspec.Struct):
    Vat: str
    OrganizationName: str
    OrganizationUnitName: str
    CountryCode: str
