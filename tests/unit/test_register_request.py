"""The register body as POS clients really send it: casing, aliases, and every problem at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.api.json_body import decode_json_object, duplicate_field_paths, require_json_content_type
from appliance.api.register_request import decode_register_request
from appliance.config import SolutionSettings
from appliance.domain import Environment, InvoiceFormat
from appliance.errors import UnsupportedMediaType, ValidationFailed
from appliance.x509.fields import egs_serial_number

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


# Issue 13 -------------------------------------------------------------------------------------


def raw_problems(body: bytes) -> dict[str, tuple[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        decode_register_request(body, SOLUTION)
    return {problem.field: (problem.code, problem.message) for problem in caught.value.problems}


def test_an_exact_duplicate_field_is_refused_not_last_one_wins() -> None:
    """Item 3: `"InvoiceFormat": "Model", "InvoiceFormat": "Xml"` registered an Xml device."""
    body = json.dumps(published_example())[:-1] + ', "InvoiceFormat": "Model"}'
    assert raw_problems(body.encode())["InvoiceFormat"][0] == "Duplicate-Field"


def test_a_duplicate_inside_a_section_is_named_by_its_path() -> None:
    text = json.dumps(published_example()).replace(
        '"Vat": "399999999900003"', '"Vat": "not-a-vat", "Vat": "399999999900003"'
    )
    assert raw_problems(text.encode()) == {
        "Organization.Vat": ("Duplicate-Field", "given more than once; send each field once")
    }


def test_duplicates_are_found_at_any_depth_with_array_indexes() -> None:
    body = b'{"a": [{"x": 1}, {"y": {"z": 1, "z": 2}}], "b": 1, "b": 2}'
    assert duplicate_field_paths(body) == ["b", "a[1].y.z"]
    with pytest.raises(ValidationFailed) as caught:
        decode_json_object(body)
    assert {problem.field for problem in caught.value.problems} == {"b", "a[1].y.z"}


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/problem+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        (None, False),
    ],
)
def test_only_json_media_types_are_read(content_type: str | None, accepted: bool) -> None:
    if accepted:
        require_json_content_type(content_type)
    else:
        with pytest.raises(UnsupportedMediaType):
            require_json_content_type(content_type)


def test_a_missing_field_does_not_hide_the_problems_of_the_others() -> None:
    """Item 3: a body missing `Industry` with `"Vat": "123"` reported only the missing field."""
    document = published_example()
    del document["Device"]["Industry"]
    document["Organization"]["Vat"] = "123"
    problems = problems_of(document)
    assert problems["Device.Industry"] == "is required"
    assert "Organization.Vat" in problems
    assert len(problems) == 2


def test_the_serial_is_stored_in_nfc() -> None:
    """Item 4: NFC `Café-1` and NFD `Cafe\u0301-1` were two units."""
    document = published_example()
    document["Device"]["EgsSerialNumber"] = "Cafe\u0301-1"
    assert decode(document).egs_serial == "Caf\u00e9-1"


def test_a_full_form_serial_with_extra_segments_is_refused() -> None:
    """Item 5: `1-x|2-y|3-z|1-Evil|2-9|3-q` went into the SN and CN."""
    document = published_example()
    document["Device"]["EgsSerialNumber"] = "1-x|2-y|3-z|1-Evil|2-9|3-q"
    assert "exactly three segments; got 6" in problems_of(document)["Device.EgsSerialNumber"]


def test_a_bare_serial_gets_the_configured_solution_and_a_full_one_is_kept() -> None:
    assert egs_serial_number("DUPX-1", "Shop POS", "4.2") == "1-Shop POS|2-4.2|3-DUPX-1"
    assert egs_serial_number("1-ZatcaAppliance|2-1.0|3-DUPX-1", "Shop POS", "4.2") == (
        "1-ZatcaAppliance|2-1.0|3-DUPX-1"
    )
    assert egs_serial_number("Cafe\u0301-1", "n", "v") == "1-n|2-v|3-Caf\u00e9-1"
