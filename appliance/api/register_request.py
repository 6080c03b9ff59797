"""Decode `POST /v1/Devices/Register` bodies: casing-tolerant names, every problem at once.

POS clients send both `InvoiceFormat` and `invoiceFormat`, and some send `DeviceDetails` for
`Device`. Field names are therefore matched without regard to case (and the two aliases), while
unknown names are refused by name so a typo never silently drops a value. Errors name fields by
their canonical dotted path (`Organization.Vat`) whatever casing the client used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from appliance.api.json_body import decode_json_object
from appliance.config import SolutionSettings
from appliance.domain import Environment, InvoiceFormat
from appliance.errors import FieldProblem, ValidationFailed
from appliance.services.requests import RegistrationRequest
from appliance.x509.fields import normalized_serial, parse_invoice_type, validate_registration_fields

_TOP_LEVEL = {
    "device": "Device",
    "devicedetails": "Device",
    "organization": "Organization",
    "organizationdetails": "Organization",
    "environment": "Environment",
    "otp": "OTP",
    "invoiceformat": "InvoiceFormat",
}
_DEVICE = {name.lower(): name for name in ("EgsSerialNumber", "Location", "Industry", "InvoiceType")}
_ORGANIZATION = {
    name.lower(): name for name in ("Vat", "OrganizationName", "OrganizationUnitName", "CountryCode")
}
_REQUIRED_TOP = ("Device", "Organization", "OTP", "Environment", "InvoiceFormat")
_REQUIRED_DEVICE = ("EgsSerialNumber", "Location", "Industry")
_REQUIRED_ORGANIZATION = ("Vat", "OrganizationName", "OrganizationUnitName", "CountryCode")

# This API's names for the text fields, and what appliance.x509.fields calls them.
_LOGICAL_FIELD = {
    "Device.EgsSerialNumber": "egs_serial",
    "Device.Location": "location",
    "Device.Industry": "industry",
    "Organization.Vat": "vat",
    "Organization.OrganizationName": "organization_name",
    "Organization.OrganizationUnitName": "organization_unit",
    "Organization.CountryCode": "country",
}
_API_FIELD = {logical: api_field for api_field, logical in _LOGICAL_FIELD.items()} | {
    "common_name": "Device.EgsSerialNumber",
    "invoice_type": "Device.InvoiceType",
}
_SIX_DIGITS = re.compile(r"[0-9]{6}")
_Choice = TypeVar("_Choice", Environment, InvoiceFormat)
_DEFAULT_INVOICE_TYPE = "1100"


def decode_register_request(body: bytes, solution: SolutionSettings) -> RegistrationRequest:
    """Turn the raw body into a validated request or raise ValidationFailed listing every problem."""
    document = decode_json_object(body)
    problems: list[FieldProblem] = []

    top = _canonical_keys(document, _TOP_LEVEL, "", problems)
    device = _section(top, "Device", _DEVICE, problems)
    organization = _section(top, "Organization", _ORGANIZATION, problems)
    _require(top, _REQUIRED_TOP, "", problems)
    if device is not None:
        _require(device, _REQUIRED_DEVICE, "Device.", problems)
    if organization is not None:
        _require(organization, _REQUIRED_ORGANIZATION, "Organization.", problems)

    environment = _enum_value(top, "Environment", Environment, problems)
    invoice_format = _enum_value(top, "InvoiceFormat", InvoiceFormat, problems)
    otp = _string(top, "OTP", problems)
    if (
        environment not in (None, Environment.DEVELOPMENT)
        and otp is not None
        and not _SIX_DIGITS.fullmatch(otp)
    ):
        problems.append(FieldProblem("OTP", f"must be the 6-digit OTP from the {environment} portal"))

    strings = {
        f"{prefix}.{name}": _string(section or {}, name, problems, prefix)
        for prefix, section, names in (
            ("Device", device, _DEVICE.values()),
            ("Organization", organization, _ORGANIZATION.values()),
        )
        for name in names
    }
    invoice_type_text = strings["Device.InvoiceType"]
    invoice_type = (
        _DEFAULT_INVOICE_TYPE if invoice_type_text is None else parse_invoice_type(invoice_type_text)
    )
    if invoice_type is None:
        problems.append(
            FieldProblem(
                "Device.InvoiceType",
                "must be 1000 (Standard), 0100 (Simplified), 1100 (Both) or one of those names",
            )
        )

    fields = {logical: (strings[api_field] or "").strip() for api_field, logical in _LOGICAL_FIELD.items()}
    # The serial is the unit's identity: one Unicode form, so `Café-1` is one unit however typed.
    fields["egs_serial"] = normalized_serial(fields["egs_serial"])
    # Fields that are present are judged even when others are missing (those are reported as
    # missing or mistyped already, and their empty stand-ins are not judged again).
    reported = {problem.field for problem in problems} | {
        api_field for api_field in _LOGICAL_FIELD if strings[api_field] is None
    }
    for problem in validate_registration_fields(
        **fields,
        invoice_type=invoice_type or _DEFAULT_INVOICE_TYPE,
        solution_name=solution.name,
        solution_version=solution.version,
    ):
        api_field = _API_FIELD.get(problem.field, problem.field)
        if api_field not in reported:
            problems.append(FieldProblem(api_field, problem.message, problem.code))
            reported.add(api_field)

    if problems or environment is None or invoice_format is None or otp is None or invoice_type is None:
        raise ValidationFailed(problems)
    return RegistrationRequest(
        environment=environment, invoice_format=invoice_format, otp=otp, invoice_type=invoice_type, **fields
    )


def _canonical_keys(
    raw: Mapping[str, Any], names: Mapping[str, str], prefix: str, problems: list[FieldProblem]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = names.get(key.lower())
        if canonical is None:
            problems.append(FieldProblem(f"{prefix}{key}", "unknown field", "Unknown-Field"))
        elif canonical in result:
            problems.append(
                FieldProblem(
                    f"{prefix}{canonical}", "given more than once (names ignore case)", "Duplicate-Field"
                )
            )
        else:
            result[canonical] = value
    return result


def _section(
    top: dict[str, Any], name: str, names: Mapping[str, str], problems: list[FieldProblem]
) -> dict[str, Any] | None:
    value = top.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(FieldProblem(name, "must be a JSON object", "Invalid-Type"))
        return None
    return _canonical_keys(value, names, f"{name}.", problems)


def _require(
    section: Mapping[str, Any], names: tuple[str, ...], prefix: str, problems: list[FieldProblem]
) -> None:
    for name in names:
        if section.get(name) is None:
            problems.append(FieldProblem(f"{prefix}{name}", "is required", "Missing-Field"))


def _string(
    section: Mapping[str, Any], name: str, problems: list[FieldProblem], prefix: str = ""
) -> str | None:
    value = section.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(
            FieldProblem(f"{prefix}.{name}" if prefix else name, "must be a string", "Invalid-Type")
        )
        return None
    return value


def _enum_value(
    top: Mapping[str, Any], name: str, enum_type: type[_Choice], problems: list[FieldProblem]
) -> _Choice | None:
    text = _string(top, name, problems)
    if text is None:
        return None
    for member in enum_type:
        if member.value.lower() == text.strip().lower():
            return member
    allowed = ", ".join(member.value for member in enum_type)
    problems.append(FieldProblem(name, f"must be one of {allowed}", "Invalid-Value"))
    return None
