"""The registration fields that go into a ZATCA CSR, and every rule they must satisfy.

Pure functions shared by the CLI and the HTTP API. Problems are reported all at once, each under
its logical field name (`vat`, `egs_serial`, ...); callers translate those names to their own
(`--vat`, `Organization.Vat`). Values are trimmed before they are checked and used.

The rules follow the official SDK's `-csr` validation (zatca-protocol.md 5.5) and tighten it
where the SDK is known to let through values that break a CSR later: the SDK's special-character
regex is unknown, so the DN-sensitive characters `= , + " \\ < > ; #`, control and invisible
characters and emoji are refused, while Arabic (and any other script's letters) are allowed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from appliance.domain import INVOICE_TYPE_BY_NAME, Environment
from appliance.errors import FieldProblem, ValidationFailed
from appliance.x509.countries import ISO_3166_ALPHA2

# X.520's upper bound for commonName and friends; ZATCA's CA is a Microsoft CA that enforces it.
MAX_TEXT_CHARS = 64

# Characters with a meaning in RFC 4514 DN strings; the SDK refuses "special characters" in these
# fields with an unpublished regex, and these are the ones that demonstrably break DN handling.
DN_SPECIAL_CHARACTERS = frozenset('=,+"\\<>;#')

# Exactly three segments: a fourth `|1-…` would put a second solution name into the SN and CN.
_SERIAL_NUMBER_FORM = re.compile(r"1-([^|]*)\|2-([^|]*)\|3-([^|]*)", re.DOTALL)
_SERIAL_FORM_TEXT = "1-<solution>|2-<version>|3-<serial>"
# T and S may be 0 or 1; C and Z are reserved and must be 0; at least one flag must be set.
_INVOICE_TYPE_CODE = re.compile(r"(?!0{4})[01]{2}[00]{2}")
_VAT_NUMBER = re.compile(r"3[0-9]{13}3")
_TIN = re.compile(r"[0-9]{10}")
_GROUP_VAT_DIGIT_INDEX = 10

# Combining marks that only ever turn a preceding character into an emoji or keycap.
_EMOJI_MODIFIERS = frozenset("\ufe0e\ufe0f\u20e3")

_LABELS = {
    "common_name": "Common name",
    "egs_serial": "EGS serial number",
    "vat": "VAT registration number",
    "organization_name": "Organization name",
    "organization_unit": "Organization unit",
    "country": "Country",
    "invoice_type": "Invoice type",
    "location": "Location",
    "industry": "Industry",
}


@dataclass(frozen=True, slots=True)
class CsrFields:
    """Validated, trimmed values, ready to be encoded into a CSR."""

    environment: Environment
    common_name: str
    serial_number: str  # already "1-<solution>|2-<version>|3-<EGS serial>"
    vat: str
    organization_name: str
    organization_unit: str
    country: str
    invoice_type: str  # 4-character TSCZ code: "1000", "0100" or "1100"
    location: str
    industry: str


def parse_invoice_type(value: str) -> str | None:
    """`1000`/`0100`/`1100`, or the names Standard/Simplified/Both, as the 4-character code."""
    text = value.strip()
    for name, code in INVOICE_TYPE_BY_NAME.items():
        if text.casefold() == name.casefold():
            return code
    return text if _INVOICE_TYPE_CODE.fullmatch(text) else None


def normalized_serial(egs_serial: str) -> str:
    """The EGS serial as the appliance stores and compares it: trimmed, Unicode NFC.

    NFC makes `Café-1` typed with a precomposed é and with e + U+0301 one and the same unit.
    """
    return unicodedata.normalize("NFC", egs_serial.strip())


def egs_serial_number(egs_serial: str, solution_name: str, solution_version: str) -> str:
    """ZATCA's SN value (NFC); a serial already written as `1-…|2-…|3-…` is taken as it is,
    a bare serial gets the configured solution name and version."""
    serial = normalized_serial(egs_serial)
    if _SERIAL_NUMBER_FORM.fullmatch(serial):
        return serial
    name, version = (unicodedata.normalize("NFC", part.strip()) for part in (solution_name, solution_version))
    return f"1-{name}|2-{version}|3-{serial}"


def validate_registration_fields(
    *,
    vat: str,
    organization_name: str,
    organization_unit: str,
    country: str,
    egs_serial: str,
    location: str,
    industry: str,
    invoice_type: str,
    common_name: str | None = None,
    solution_name: str = "",
    solution_version: str = "",
) -> list[FieldProblem]:
    """Every problem with the inputs, in the SDK's field order; an empty list means valid."""
    problems: list[FieldProblem] = []
    if common_name is not None:
        problems += _text_problems("common_name", common_name, DN_SPECIAL_CHARACTERS)
    problems += _egs_serial_problems(egs_serial, solution_name, solution_version, common_name is None)
    problems += _vat_problems(vat)
    problems += _organization_unit_problems(organization_unit, vat)
    problems += _text_problems("organization_name", organization_name, DN_SPECIAL_CHARACTERS)
    problems += _country_problems(country)
    problems += _invoice_type_problems(invoice_type)
    problems += _text_problems("location", location, DN_SPECIAL_CHARACTERS)
    problems += _text_problems("industry", industry, DN_SPECIAL_CHARACTERS)
    return problems


def build_csr_fields(
    environment: Environment,
    *,
    vat: str,
    organization_name: str,
    organization_unit: str,
    country: str,
    egs_serial: str,
    location: str,
    industry: str,
    invoice_type: str,
    common_name: str | None = None,
    solution_name: str = "",
    solution_version: str = "",
) -> CsrFields:
    """Validate and normalise; raises ValidationFailed with every problem. CN defaults to the EGS serial."""
    problems = validate_registration_fields(
        vat=vat,
        organization_name=organization_name,
        organization_unit=organization_unit,
        country=country,
        egs_serial=egs_serial,
        location=location,
        industry=industry,
        invoice_type=invoice_type,
        common_name=common_name,
        solution_name=solution_name,
        solution_version=solution_version,
    )
    invoice_type_code = parse_invoice_type(invoice_type)
    if problems or invoice_type_code is None:
        raise ValidationFailed(problems)
    return CsrFields(
        environment=environment,
        common_name=(common_name if common_name is not None else egs_serial).strip(),
        serial_number=egs_serial_number(egs_serial, solution_name, solution_version),
        vat=vat.strip(),
        organization_name=organization_name.strip(),
        organization_unit=organization_unit.strip(),
        country=country.strip(),
        invoice_type=invoice_type_code,
        location=location.strip(),
        industry=industry.strip(),
    )


def _problem(field: str, message: str) -> FieldProblem:
    return FieldProblem(field=field, message=f"{_LABELS[field]} {message}")


def _text_problems(field: str, value: str, forbidden: frozenset[str]) -> list[FieldProblem]:
    text = value.strip()
    if not text:
        return [_problem(field, "is required and must not be blank")]
    problems = []
    if len(text) > MAX_TEXT_CHARS:
        too_long = f"is {len(text)} characters long; at most {MAX_TEXT_CHARS} are allowed"
        problems.append(_problem(field, too_long))
    refused = _refused_characters(text, forbidden)
    if refused:
        problems.append(_problem(field, f"contains {refused}; {_allowed_text(forbidden)}"))
    return problems


def _egs_serial_problems(
    egs_serial: str, solution_name: str, solution_version: str, is_common_name: bool
) -> list[FieldProblem]:
    field = "egs_serial"
    problems = _text_problems(field, egs_serial, frozenset("="))
    serial = egs_serial.strip()
    if not serial:
        return problems
    full_form = _SERIAL_NUMBER_FORM.fullmatch(serial)
    if full_form:
        if any(not part.strip() for part in full_form.groups()):
            problems.append(_problem(field, f"written as {_SERIAL_FORM_TEXT} needs all three parts"))
    elif "|" in serial and serial.startswith("1-"):
        segments = len(serial.split("|"))
        problems.append(
            _problem(
                field,
                f"written in full as {_SERIAL_FORM_TEXT} must have exactly three segments; got {segments}",
            )
        )
    elif "|" in serial:
        problems.append(
            _problem(
                field,
                f"may contain '|' only when it is written in full as {_SERIAL_FORM_TEXT}; otherwise give "
                "just the device's serial and the appliance adds the solution name and version",
            )
        )
    else:
        problems += _solution_problems(solution_name, "solution.name")
        problems += _solution_problems(solution_version, "solution.version")
    serial_number = egs_serial_number(serial, solution_name, solution_version)
    if len(serial) <= MAX_TEXT_CHARS < len(serial_number):
        problems.append(
            _problem(
                field,
                f"makes the certificate serial number {serial_number!r} {len(serial_number)} characters "
                f"long; at most {MAX_TEXT_CHARS} are allowed",
            )
        )
    if is_common_name:
        # Only what the serial's own rules let through; '=' and the like were reported above.
        refused = _refused_characters(serial, DN_SPECIAL_CHARACTERS, only=DN_SPECIAL_CHARACTERS - {"="})
        if refused:
            problems.append(
                _problem(
                    field,
                    f"is also the common name when none is given, and contains {refused}; "
                    "give a common name or remove them",
                )
            )
    return problems


def _solution_problems(value: str, setting: str) -> list[FieldProblem]:
    """The configured solution name/version become part of the SN, so they follow its rules."""
    text = value.strip()
    if not text:
        return [
            _problem(
                "egs_serial",
                f"needs the configuration setting {setting}, which is empty; set it or write the serial "
                f"in full as {_SERIAL_FORM_TEXT}",
            )
        ]
    refused = _refused_characters(text, frozenset("=|"))
    if refused:
        message = f"cannot be combined with the configured {setting}: it contains {refused}"
        return [_problem("egs_serial", message)]
    return []


def _vat_problems(vat: str) -> list[FieldProblem]:
    text = vat.strip()
    if _VAT_NUMBER.fullmatch(text):
        return []
    return [
        _problem(
            "vat",
            f"must be exactly 15 digits (0-9) that start and end with 3, e.g. 399999999900003; got {text!r}",
        )
    ]


def _organization_unit_problems(organization_unit: str, vat: str) -> list[FieldProblem]:
    vat_text = vat.strip()
    is_group_vat = _VAT_NUMBER.fullmatch(vat_text) and vat_text[_GROUP_VAT_DIGIT_INDEX] == "1"
    if not is_group_vat:
        return _text_problems("organization_unit", organization_unit, DN_SPECIAL_CHARACTERS)
    if _TIN.fullmatch(organization_unit.strip()):
        return []
    return [
        _problem(
            "organization_unit",
            "must be the 10-digit TIN of the group member whose device is onboarded, because the VAT "
            "number's 11th digit is 1 (a VAT group)",
        )
    ]


def _country_problems(country: str) -> list[FieldProblem]:
    text = country.strip()
    if text in ISO_3166_ALPHA2:
        return []
    hint = f" (did you mean {text.upper()!r}?)" if text.upper() in ISO_3166_ALPHA2 else ""
    return [
        _problem(
            "country",
            f"must be an ISO 3166-1 alpha-2 code in capitals, e.g. SA; got {text!r}{hint}",
        )
    ]


def _invoice_type_problems(invoice_type: str) -> list[FieldProblem]:
    if parse_invoice_type(invoice_type) is not None:
        return []
    text = invoice_type.strip()
    hint = ""
    if text.isascii() and text.isdigit() and len(text) < 4:
        hint = f"; keep the leading zeros ({text.zfill(4)!r})"
    return [
        _problem(
            "invoice_type",
            "must be 1000 (Standard), 0100 (Simplified) or 1100 (Both), or one of those names; the last "
            f"two flags are reserved by ZATCA and must be 0; got {text!r}{hint}",
        )
    ]


def _refused_characters(text: str, forbidden: frozenset[str], only: frozenset[str] | None = None) -> str:
    """A readable list of the characters in `text` that may not appear in a CSR value, or ''."""
    refused = (char for char in text if char in forbidden or not _is_allowed_character(char))
    return ", ".join(_describe(char) for char in dict.fromkeys(refused) if only is None or char in only)


def _is_allowed_character(char: str) -> bool:
    if char == " ":
        return True
    if char in _EMOJI_MODIFIERS:
        return False
    category = unicodedata.category(char)
    # C*: control, format (invisible), surrogate, private use, unassigned. Z* other than the plain
    # space: line breaks and look-alike spaces. So/Sk/Me: emoji, pictographs, skin tones, keycaps.
    return not (category[0] in "CZ" or category in {"So", "Sk", "Me"})


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace() and _is_allowed_character(char):
        return repr(char)
    name = unicodedata.name(char, "control character")
    return f"U+{ord(char):04X} ({name.lower()})"


def _allowed_text(forbidden: Iterable[str]) -> str:
    refused = " ".join(sorted(forbidden))
    return (
        "letters in any script (Arabic included), digits, spaces and punctuation are allowed, but not "
        f"{refused}, control or invisible characters, or emoji"
    )
