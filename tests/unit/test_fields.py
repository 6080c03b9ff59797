"""Registration-field rules: every refusal names its field and says what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.domain import Environment
from appliance.errors import FieldProblem, ValidationFailed
from appliance.x509.countries import ISO_3166_ALPHA2
from appliance.x509.fields import (
    MAX_TEXT_CHARS,
    build_csr_fields,
    egs_serial_number,
    parse_invoice_type,
    validate_registration_fields,
)

VALID: dict[str, Any] = {
    "vat": "399999999900003",
    "organization_name": "Maximum Speed Tech Supply LTD",
    "organization_unit": "Riyadh Branch",
    "country": "SA",
    "egs_serial": "ed22f1d8-e6a2-1118-9b58-d9a8f11e445f",
    "location": "RRRD2929",
    "industry": "Supply activities",
    "invoice_type": "1100",
    "common_name": "TST-886431145-399999999900003",
    "solution_name": "TST",
    "solution_version": "TST",
}

DN_TEXT_FIELDS = ["common_name", "organization_name", "organization_unit", "location", "industry"]
TEXT_FIELDS = [*DN_TEXT_FIELDS, "egs_serial"]


def problems_for(**overrides: Any) -> list[FieldProblem]:
    return validate_registration_fields(**(VALID | overrides))


def fields_named(problems: list[FieldProblem]) -> list[str]:
    return [problem.field for problem in problems]


def test_the_reference_registration_is_valid() -> None:
    assert problems_for() == []


def test_arabic_values_are_accepted() -> None:
    assert (
        problems_for(
            organization_name="ABCD المحدودة",
            organization_unit="فرع الرياض",
            location="الرياض - حي العليا (مبنى 7)",
            industry="الأنشطة العقارية",
            common_name="جهاز-1",
        )
        == []
    )


@pytest.mark.parametrize(
    ("vat", "why"),
    [
        ("39999999990000", "14 digits"),
        ("3999999999000033", "16 digits"),
        ("299999999900003", "does not start with 3"),
        ("399999999900002", "does not end with 3"),
        ("39999999990000A3", "a letter"),
        ("3999 9999900003", "a space inside"),
        ("٣٩٩٩٩٩٩٩٩٩٠٠٠٠٣", "Arabic-Indic digits"),
        ("", "blank"),
    ],
)
def test_vat_must_be_15_ascii_digits_starting_and_ending_with_3(vat: str, why: str) -> None:
    problems = problems_for(vat=vat)
    assert fields_named(problems) == ["vat"], why
    assert "15 digits" in problems[0].message
    assert "start and end with 3" in problems[0].message


def test_vat_is_trimmed() -> None:
    assert problems_for(vat="  399999999900003 ") == []


def test_group_vat_requires_the_member_tin_as_organization_unit() -> None:
    group_vat = "311111111111113"  # 11th digit 1: a VAT group (SDK example)
    problems = problems_for(vat=group_vat, organization_unit="Riyadh Branch")
    assert fields_named(problems) == ["organization_unit"]
    assert "10-digit TIN" in problems[0].message
    assert "11th digit" in problems[0].message
    assert fields_named(problems_for(vat=group_vat, organization_unit="311111111")) == ["organization_unit"]
    assert fields_named(problems_for(vat=group_vat, organization_unit="31111111111")) == ["organization_unit"]
    assert problems_for(vat=group_vat, organization_unit="3111111111") == []


def test_non_group_vat_takes_a_branch_name_as_organization_unit() -> None:
    assert problems_for(vat="311111111101113", organization_unit="Jeddah Branch") == []


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("1000", "1000"),
        ("0100", "0100"),
        ("1100", "1100"),
        ("Standard", "1000"),
        ("Simplified", "0100"),
        ("Both", "1100"),
        ("both", "1100"),
        (" 0100 ", "0100"),
    ],
)
def test_invoice_type_codes_and_names(given: str, code: str) -> None:
    assert parse_invoice_type(given) == code
    assert problems_for(invoice_type=given) == []


@pytest.mark.parametrize(
    "given", ["0000", "1111", "1110", "1101", "0010", "0001", "2000", "100", "11000", "", "B2B"]
)
def test_invoice_type_refuses_anything_else(given: str) -> None:
    assert parse_invoice_type(given) is None
    problems = problems_for(invoice_type=given)
    assert fields_named(problems) == ["invoice_type"]
    assert "1000 (Standard), 0100 (Simplified) or 1100 (Both)" in problems[0].message


def test_invoice_type_that_lost_its_leading_zero_gets_a_hint() -> None:
    (problem,) = problems_for(invoice_type="100")
    assert "'0100'" in problem.message


def test_country_codes_are_the_assigned_iso_3166_alpha2_set() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert all(len(code) == 2 and code.isupper() and code.isascii() for code in ISO_3166_ALPHA2)
    assert {"SA", "AE", "BH", "KW", "OM", "QA", "EG", "US", "GB", "SS", "BQ"} <= ISO_3166_ALPHA2
    assert not {"XK", "EU", "UK", "ZZ", "AN"} & ISO_3166_ALPHA2


@pytest.mark.parametrize("country", ["SAU", "KSA", "XX", "EU", "S", "", "S1"])
def test_country_must_be_an_assigned_alpha2_code(country: str) -> None:
    problems = problems_for(country=country)
    assert fields_named(problems) == ["country"]
    assert "ISO 3166-1 alpha-2" in problems[0].message


def test_lower_case_country_is_refused_with_the_code_to_use() -> None:
    (problem,) = problems_for(country="sa")
    assert problem.field == "country"
    assert "did you mean 'SA'" in problem.message


def test_other_assigned_countries_are_accepted() -> None:
    assert problems_for(country="AE") == []


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_text_fields_must_not_be_blank(field: str, blank: str) -> None:
    problems = problems_for(**{field: blank})
    assert fields_named(problems) == [field]
    assert "must not be blank" in problems[0].message


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_text_fields_allow_64_characters_and_no_more(field: str) -> None:
    at_limit = "A" * MAX_TEXT_CHARS
    over_limit = "A" * (MAX_TEXT_CHARS + 1)
    # The bare EGS serial gets "1-TST|2-TST|3-" in front, so give it in full form to test it alone.
    if field == "egs_serial":
        at_limit = "1-A|2-B|3-" + "C" * (MAX_TEXT_CHARS - 10)
        over_limit = at_limit + "C"
    assert problems_for(**{field: at_limit}) == []
    problems = problems_for(**{field: over_limit})
    assert fields_named(problems) == [field]
    assert "65 characters" in problems[0].message
    assert "at most 64" in problems[0].message


def test_arabic_length_counts_characters_not_bytes() -> None:
    arabic_64 = "ع" * 64  # 128 bytes in UTF-8, still 64 characters
    assert problems_for(organization_name=arabic_64) == []


def test_serial_number_built_from_the_solution_must_fit_64_characters() -> None:
    serial = "S" * 60  # fits alone, but "1-TST|2-TST|3-" makes 74
    problems = problems_for(egs_serial=serial)
    assert fields_named(problems) == ["egs_serial"]
    assert "74 characters" in problems[0].message


@pytest.mark.parametrize("field", DN_TEXT_FIELDS)
@pytest.mark.parametrize("char", list('=,+"\\<>;#'))
def test_dn_special_characters_are_refused(field: str, char: str) -> None:
    problems = problems_for(**{field: f"Value {char} here"})
    assert fields_named(problems) == [field]
    assert repr(char) in problems[0].message
    assert "Arabic included" in problems[0].message


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize(
    "char",
    ["\x00", "\x07", "\n", "\r", "\x7f", "\u200b", "\u202e", "\u2028", "\u00a0"],
    ids=["nul", "bell", "newline", "cr", "del", "zero-width-space", "rtl-override", "line-separator", "nbsp"],
)
def test_control_and_invisible_characters_are_refused(field: str, char: str) -> None:
    value = f"1-A|2-B|3-C{char}D" if field == "egs_serial" else f"Name{char}Value"
    problems = problems_for(**{field: value})
    assert fields_named(problems) == [field]
    assert f"U+{ord(char):04X}" in problems[0].message


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("emoji", ["😀", "🇸🇦", "❤️", "1️⃣", "👍🏽"])
def test_emoji_are_refused(field: str, emoji: str) -> None:
    value = f"1-A|2-B|3-C{emoji}" if field == "egs_serial" else f"Shop {emoji}"
    problems = problems_for(**{field: value})
    assert fields_named(problems) == [field]
    assert "emoji" in problems[0].message


def test_punctuation_useful_in_names_and_addresses_is_allowed() -> None:
    assert (
        problems_for(
            organization_name="Al-Amal Trading Co. (Branch/2) & Sons' Ltd",
            location="https://shop.example.sa/branch_2",
            industry="Food & beverages: retail",
        )
        == []
    )


def test_egs_serial_refuses_equals_sign() -> None:
    problems = problems_for(egs_serial="serial=42")
    assert fields_named(problems) == ["egs_serial"]
    assert "'='" in problems[0].message


def test_egs_serial_refuses_a_pipe_outside_the_full_form() -> None:
    (problem,) = problems_for(egs_serial="1-TST|2-TST")
    assert problem.field == "egs_serial"
    assert "1-<solution>|2-<version>|3-<serial>" in problem.message


def test_egs_serial_in_full_form_needs_three_non_blank_parts() -> None:
    (problem,) = problems_for(egs_serial="1-TST|2- |3-42")
    assert problem.field == "egs_serial"
    assert "all three parts" in problem.message


def test_egs_serial_may_carry_dn_characters_when_a_common_name_is_given() -> None:
    assert problems_for(egs_serial="SN#42,A") == []


def test_egs_serial_used_as_common_name_follows_the_common_name_rules() -> None:
    (problem,) = problems_for(egs_serial="SN#42", common_name=None)
    assert problem.field == "egs_serial"
    assert "common name" in problem.message
    assert "'#'" in problem.message


def test_a_refused_character_in_the_egs_serial_is_reported_once() -> None:
    (problem,) = problems_for(egs_serial="SN=42", common_name=None)
    assert problem.field == "egs_serial"
    assert "'='" in problem.message


def test_bare_egs_serial_needs_the_configured_solution_name_and_version() -> None:
    problems = problems_for(solution_name="", solution_version="  ")
    assert fields_named(problems) == ["egs_serial", "egs_serial"]
    assert "solution.name" in problems[0].message
    assert "solution.version" in problems[1].message
    assert problems_for(egs_serial="1-Acme|2-3.1|3-42", solution_name="", solution_version="") == []


def test_solution_name_with_a_pipe_cannot_build_the_serial_number() -> None:
    (problem,) = problems_for(solution_name="Acme|POS")
    assert problem.field == "egs_serial"
    assert "solution.name" in problem.message


def test_egs_serial_number_format() -> None:
    assert egs_serial_number("42", "Acme POS", "3.1") == "1-Acme POS|2-3.1|3-42"
    full = "1-TST|2-TST|3-ed22f1d8-e6a2-1118-9b58-d9a8f11e445f"
    assert egs_serial_number(full, "Acme POS", "3.1") == full


def test_all_problems_are_reported_at_once_in_field_order() -> None:
    problems = validate_registration_fields(
        vat="123",
        organization_name="",
        organization_unit="A;B",
        country="Saudi",
        egs_serial="x=y",
        location=" ",
        industry="😀",
        invoice_type="1111",
        common_name="",
        solution_name="Acme",
        solution_version="1",
    )
    assert fields_named(problems) == [
        "common_name",
        "egs_serial",
        "vat",
        "organization_unit",
        "organization_name",
        "country",
        "invoice_type",
        "location",
        "industry",
    ]


def test_messages_name_the_field_in_words() -> None:
    labels = {
        "vat": "VAT registration number",
        "country": "Country",
        "invoice_type": "Invoice type",
        "organization_name": "Organization name",
    }
    problems = problems_for(vat="1", country="??", invoice_type="9", organization_name="")
    assert {
        problem.field: problem.message.split(" must")[0].split(" is ")[0] for problem in problems
    } == labels


def test_build_csr_fields_trims_normalises_and_defaults_the_common_name() -> None:
    fields = build_csr_fields(
        Environment.SIMULATION,
        **(
            VALID
            | {
                "common_name": None,
                "egs_serial": "  POS-0042 ",
                "invoice_type": "Simplified",
                "organization_name": " ABCD المحدودة ",
            }
        ),
    )
    assert fields.environment is Environment.SIMULATION
    assert fields.common_name == "POS-0042"
    assert fields.serial_number == "1-TST|2-TST|3-POS-0042"
    assert fields.invoice_type == "0100"
    assert fields.organization_name == "ABCD المحدودة"
    assert fields.vat == "399999999900003"


def test_build_csr_fields_raises_every_problem() -> None:
    with pytest.raises(ValidationFailed) as raised:
        build_csr_fields(Environment.PRODUCTION, **(VALID | {"vat": "1", "country": "ZZ"}))
    assert fields_named(raised.value.problems) == ["vat", "country"]
    assert "vat: VAT registration number" in str(raised.value)
