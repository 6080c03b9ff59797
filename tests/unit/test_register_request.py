"""The register body as POS clients really send it: casing, aliases, and every problem at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.api.register_request import decode_register_request
from appliance.config import SolutionSettings
from appliance.domain import Environment, InvoiceFormat
from appliance.errors import ValidationFailed

SOLUTION = SolutionSettings()


def published_example() -> dict[str, Any]:
    return {
        "Device": {
            "EgsSerialNumber": "SN123456789",
            "Location": "Headquarters",
            "Industry": "Retail",
            "InvoiceType": "1100",
        },
        "Organization": {
            "Vat": "399999999900003",
            "OrganizationName": "Tech Innovations Inc.",
            "OrganizationUnitName": "Riyadh Branch 2814",
            "CountryCode": "SA",
        },
        "Environment": "Simulation",
        "OTP": "233582",
        "InvoiceFormat": "Xml",
    }


def decode(document: Any) -> Any:
    return decode_register_request(json.dumps(document).encode(), SOLUTION)


def problems_of(document: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        decode(document)
    return {problem.field: problem.message for problem in caught.value.problems}


def test_the_published_example_decodes() -> None:
    request = decode(published_example())
    assert request.environment is Environment.SIMULATION
    assert request.invoice_format is InvoiceFormat.XML
    assert (request.vat, request.egs_serial, request.invoice_type) == (
        "399999999900003",
        "SN123456789",
        "1100",
    )


def test_field_names_ignore_case_and_accept_the_detail_aliases() -> None:
    example = published_example()
    document = {
        "deviceDetails": {key[0].lower() + key[1:]: value for key, value in example["Device"].items()},
        "ORGANIZATIONDETAILS": {key.upper(): value for key, value in example["Organization"].items()},
        "environment": "Simulation",
        "otp": "233582",
        "invoiceFormat": "Model",
    }
    request = decode(document)
    assert request.invoice_format is InvoiceFormat.MODEL
    assert request.organization_name == "Tech Innovations Inc."


def test_unknown_fields_are_refused_by_name_at_every_level() -> None:
    document = published_example()
    document["Colour"] = "blue"
    document["Device"]["Serial"] = "x"
    problems = problems_of(document)
    assert problems["Colour"] == "unknown field"
    assert problems["Device.Serial"] == "unknown field"


def test_every_problem_is_reported_at_once() -> None:
    document = published_example()
    del document["OTP"]
    document["Environment"] = "Staging"
    document["Organization"]["Vat"] = "123"
    document["Device"]["Location"] = "   "
    document["Device"]["InvoiceType"] = "0000"
    problems = problems_of(document)
    assert {"OTP", "Environment", "Organization.Vat", "Device.Location", "Device.InvoiceType"} <= set(
        problems
    )


@pytest.mark.parametrize("missing", ["Device", "Organization", "OTP", "Environment", "InvoiceFormat"])
def test_mandatory_top_level_fields(missing: str) -> None:
    document = published_example()
    del document[missing]
    assert problems_of(document)[missing] == "is required"


def test_invoice_type_defaults_to_both_and_accepts_names() -> None:
    document = published_example()
    del document["Device"]["InvoiceType"]
    assert decode(document).invoice_type == "1100"
    document["Device"]["InvoiceType"] = "Simplified"
    assert decode(document).invoice_type == "0100"


def test_otp_must_be_six_digits_outside_development() -> None:
    document = published_example()
    document["OTP"] = "12345"
    assert "OTP" in problems_of(document)
    document["Environment"] = "Development"
    document["OTP"] = "anything at all"
    assert decode(document).otp == "anything at all"


def test_numbers_where_strings_belong_are_named() -> None:
    document = published_example()
    document["Organization"]["Vat"] = 399999999900003
    assert problems_of(document)["Organization.Vat"] == "must be a string"


def test_group_vat_requires_a_ten_digit_tin_as_unit() -> None:
    document = published_example()
    document["Organization"]["Vat"] = "311111111111113"
    assert "Organization.OrganizationUnitName" in problems_of(document)
    document["Organization"]["OrganizationUnitName"] = "3111111111"
    assert decode(document).organization_unit == "3111111111"


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b"\xff\xfe"])
def test_bodies_that_are_not_a_json_object(body: bytes) -> None:
    with pytest.raises(ValidationFailed) as caught:
        decode_register_request(body, SOLUTION)
    assert caught.value.problems[0].field == "body"


def test_duplicate_names_differing_only_in_case_are_refused() -> None:
    document = published_example()
    document["otp"] = "111111"
    assert "OTP" in problems_of(document)
