"""Read a JSON body the way POS clients send it, collecting every problem instead of stopping at one.

Generic pieces (nothing here knows invoices), reusable by any body decoder:

- `parse_json_object` parses bytes with the standard library's parser because it alone reports keys
  in document order *with* repetitions (`object_pairs_hook`): msgspec and `dict` keep the last value
  of a repeated key silently, which would let `{"Quantity": "1", "Quantity": "100"}` through.
  Numbers become `Decimal` from their literal text (`parse_float`), never `float`.
- `BodyReader` walks the parsed tree: names are matched without regard to case, unknown names and
  repeated names (exact or case variants) are refused by their full path (`Lines[2].VatRate`), and
  each typed accessor appends a `FieldProblem` instead of raising, so one answer lists them all.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from appliance.errors import FieldProblem, ValidationFailed


class JsonObject(list[tuple[str, Any]]):
    """A JSON object as its (name, value) pairs in document order, repetitions kept."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json_object(body: bytes) -> JsonObject:
    """Parse a request body into pairs, or raise ValidationFailed with code Invalid-JSON."""
    try:
        text = body.decode("utf-8")
        document = json.loads(
            text, object_pairs_hook=JsonObject, parse_float=Decimal, parse_constant=_refuse_constant
        )
    except UnicodeDecodeError as exc:
        raise ValidationFailed([FieldProblem("body", "not valid UTF-8", "Invalid-JSON")]) from exc
    except RecursionError as exc:
        raise ValidationFailed([FieldProblem("body", "nested too deeply", "Invalid-JSON")]) from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers over Python's digit limit
        raise ValidationFailed([FieldProblem("body", f"not valid JSON: {exc}", "Invalid-JSON")]) from exc
    if not isinstance(document, JsonObject):
        raise ValidationFailed([FieldProblem("body", "must be a JSON object", "Invalid-JSON")])
    return document


def as_pairs(value: object) -> list[tuple[str, Any]] | None:
    """The pairs of a parsed JSON object or of an already-decoded mapping; None for anything else."""
    if isinstance(value, JsonObject):
        return list(value)
    if isinstance(value, Mapping):
        return [(str(key), item) for key, item in value.items()]
    return None


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# Characters XML 1.0 cannot carry at all, or that no printed invoice should hold: C0/C1 controls
# (other than the line breaks free texts may have), lone surrogates, non-characters.
_ALLOWED_CONTROLS_IN_FREE_TEXT = frozenset("\n\r\t")


def _bad_character(text: str, *, multiline: bool) -> str | None:
    for char in text:
        if multiline and char in _ALLOWED_CONTROLS_IN_FREE_TEXT:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or char in ("\ufffe", "\uffff"):
            return f"U+{ord(char):04X}"
    return None


_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class BodyReader:
    """Typed, path-naming accessors over a parsed body; problems accumulate in `problems`."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def problem(self, field: str, message: str, code: str = "Invalid-Field") -> None:
        self.problems.append(FieldProblem(field, message, code))

    def section(self, value: object, path: str, names: Iterable[str]) -> dict[str, Any] | None:
        """Canonical-name view of one JSON object; None (after a problem) when it is not an object."""
        pairs = as_pairs(value)
        if pairs is None:
            self.problem(path or "body", "must be a JSON object", "Invalid-Type")
            return None
        canonical = {name.lower(): name for name in names}
        result: dict[str, Any] = {}
        seen_exact: set[str] = set()
        for key, item in pairs:
            name = canonical.get(key.lower())
            if name is None:
                self.problem(_path(path, key), "unknown field", "Unknown-Field")
            elif name in result:
                how = (
                    "given more than once"
                    if key in seen_exact
                    else "given more than once (names ignore case)"
                )
                self.problem(_path(path, name), how, "Duplicate-Field")
            else:
                result[name] = item
            seen_exact.add(key)
        return result

    def optional_section(
        self, section: Mapping[str, Any], name: str, path: str, names: Iterable[str]
    ) -> dict[str, Any] | None:
        value = section.get(name)
        if value is None:
            return None
        return self.section(value, _path(path, name), names)

    def array(self, section: Mapping[str, Any], name: str, path: str) -> list[Any] | None:
        value = section.get(name)
        field = _path(path, name)
        if value is None:
            self.problem(field, "is required", "Missing-Field")
            return None
        if not isinstance(value, list) or isinstance(value, JsonObject):
            self.problem(field, "must be a JSON array", "Invalid-Type")
            return None
        return value

    def text(
        self,
        section: Mapping[str, Any],
        name: str,
        path: str,
        *,
        required: bool,
        max_chars: int,
        min_chars: int = 1,
        multiline: bool = False,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
    ) -> str | None:
        """A string kept verbatim (it is printed on the invoice); blank counts as missing."""
        field = _path(path, name)
        value = section.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problem(field, "is required", "Missing-Field")
            return None
        if not isinstance(value, str):
            self.problem(field, "must be a string", "Invalid-Type")
            return None
        bad = _bad_character(value, multiline=multiline)
        if bad is not None:
            self.problem(field, f"must not hold control characters ({bad})")
            return None
        if not min_chars <= len(value) <= max_chars:
            self.problem(field, f"must be {min_chars} to {max_chars} characters long (ZATCA's limit)")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(field, f"must be {pattern_text}")
            return None
        return value

    def code(
        self,
        section: Mapping[str, Any],
        name: str,
        path: str,
        allowed: Sequence[str],
        *,
        default: str | None = None,
        required: bool = True,
    ) -> str | None:
        """One value of a closed list, matched without regard to case or surrounding blanks."""
        field = _path(path, name)
        value = section.get(name)
        if value is None:
            if default is None and required:
                self.problem(field, "is required", "Missing-Field")
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # PaymentMeans: 10 means the same as "10"
        if not isinstance(value, str):
            self.problem(field, "must be a string", "Invalid-Type")
            return None
        for choice in allowed:
            if choice.lower() == value.strip().lower():
                return choice
        self.problem(field, f"must be one of {', '.join(allowed)}", "Invalid-Value")
        return None

    def decimal(
        self,
        section: Mapping[str, Any],
        name: str,
        path: str,
        *,
        required: bool,
        max_places: int,
        upper_bound: Decimal,
        allow_zero: bool,
        default: Decimal | None = None,
    ) -> Decimal | None:
        """A non-negative amount from a JSON number or a plain decimal string, never via float."""
        field = _path(path, name)
        value = section.get(name)
        if value is None:
            if required:
                self.problem(field, "is required", "Missing-Field")
            return default
        number: Decimal | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, Decimal | int):
            number = Decimal(value)
        elif isinstance(value, float):
            # Only reachable for an already-decoded mapping; the float's shortest repr is what the JSON said.
            number = Decimal(repr(value))
        elif isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value.strip()):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
                number = None
        if number is None or not number.is_finite():
            self.problem(field, 'must be a decimal number (a JSON number or a string such as "10.50")')
            return None
        if number < 0 or (number == 0 and not allow_zero):
            self.problem(field, "must be greater than zero" if not allow_zero else "must not be negative")
            return None
        if number >= upper_bound:
            self.problem(field, f"must be less than {upper_bound}")
            return None
        exponent = number.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # finite numbers have an integer exponent
        if -exponent > max_places:
            self.problem(field, f"must have at most {max_places} decimal places")
            return None
        return number
