"""RFC 7512 `pkcs11:` URIs naming the token that holds the keys.

Only what names a token is accepted (token, manufacturer, serial, model), plus the query
attributes `module-path` and `pin-source=file:...`. `pin-value` is refused: a PIN written into a
URI ends up in configuration files and process listings. `slot-id` is refused because SoftHSM
renumbers slots when a token is initialised; object attributes (`object`, `id`, `type`) are
refused because the appliance names its keys itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from appliance.errors import ConfigError

_SCHEME = "pkcs11:"
_TOKEN_ATTRIBUTES = frozenset({"token", "manufacturer", "serial", "model"})
# Standard attributes that describe the library or the slot: they do not change which token
# is meant, so they are accepted and not used for matching.
_IGNORED_PATH_ATTRIBUTES = frozenset(
    {
        "library-manufacturer",
        "library-description",
        "library-version",
        "slot-description",
        "slot-manufacturer",
    }
)
_OBJECT_ATTRIBUTES = frozenset({"object", "id", "type"})
_VALUE_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~%:\[\]@!$'()*+,=&/|]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class TokenUri:
    """The token a `pkcs11:` URI names; None means "any" for that attribute."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    module_path: str | None = None
    pin_file: str | None = None

    def matches(self, *, label: str, manufacturer: str, serial: str, model: str) -> bool:
        wanted = (
            (self.token, label),
            (self.manufacturer, manufacturer),
            (self.serial, serial),
            (self.model, model),
        )
        return all(expected is None or expected == actual for expected, actual in wanted)

    def describe(self) -> str:
        """A readable name for messages: the token attributes that select it."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("token", self.token),
                ("manufacturer", self.manufacturer),
                ("serial", self.serial),
                ("model", self.model),
            )
            if value is not None
        ]
        return ";".join(parts)


def parse_pkcs11_uri(uri: str) -> TokenUri:
    """Parse a token URI; ConfigError names the URI and what is wrong with it."""
    shown = _without_query(uri)
    if not uri.lower().startswith(_SCHEME):
        raise ConfigError(f"token URI {shown!r} does not start with 'pkcs11:'")
    body = uri[len(_SCHEME) :]
    path, _, query = body.partition("?")
    if "#" in body:
        raise ConfigError(f"token URI {shown!r}: a fragment ('#') is not allowed")
    attributes = _parse_attributes(shown, path, ";", kind="path")
    options = _parse_attributes(shown, query, "&", kind="query")

    for name in attributes:
        if name in _OBJECT_ATTRIBUTES:
            raise ConfigError(f"token URI {shown!r}: {name}= names an object; give only the token")
        if name == "slot-id":
            raise ConfigError(
                f"token URI {shown!r}: slot-id= is not supported because slot numbers change "
                "(SoftHSM renumbers them); name the token by token= or serial="
            )
        if name not in _TOKEN_ATTRIBUTES | _IGNORED_PATH_ATTRIBUTES and not name.startswith("x-"):
            raise ConfigError(f"token URI {shown!r}: unknown attribute {name}=")
    if "token" not in attributes and "serial" not in attributes:
        raise ConfigError(f"token URI {shown!r} must name the token by token= or serial=")

    if "pin-value" in options:
        raise ConfigError(
            f"token URI {shown!r}: pin-value= is refused because it puts the PIN into "
            "configuration; use pin-source=file:/path or hsm.pin_file"
        )
    for name in options:
        if name not in {"module-path", "pin-source"} and not name.startswith("x-"):
            raise ConfigError(f"token URI {shown!r}: unsupported query attribute {name}=")
    module_path = options.get("module-path")
    if module_path is not None and not module_path.startswith("/"):
        raise ConfigError(f"token URI {shown!r}: module-path= must be an absolute path")
    pin_source = options.get("pin-source")
    return TokenUri(
        token=attributes.get("token"),
        manufacturer=attributes.get("manufacturer"),
        serial=attributes.get("serial"),
        model=attributes.get("model"),
        module_path=module_path,
        pin_file=_pin_file(shown, pin_source) if pin_source is not None else None,
    )


def _parse_attributes(shown: str, text: str, separator: str, *, kind: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if not text:
        return attributes
    for item in text.split(separator):
        name, equals, raw_value = item.partition("=")
        if not equals or not name:
            shown_item = repr(item) if kind == "path" else "in the query"
            raise ConfigError(f"token URI {shown!r}: attribute {shown_item} is not name=value")
        name = name.lower()
        if name in attributes:
            raise ConfigError(f"token URI {shown!r}: {name}= given twice")
        if name == "pin-value":
            attributes[name] = ""
            continue
        attributes[name] = _decode(shown, name, raw_value)
    return attributes


def _decode(shown: str, name: str, raw: str) -> str:
    if not _VALUE_CHARACTERS.fullmatch(raw) or _BAD_ESCAPE.search(raw):
        raise ConfigError(f"token URI {shown!r}: {name}= has characters that must be percent-encoded")
    try:
        value = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"token URI {shown!r}: {name}= is not UTF-8 after percent-decoding") from exc
    if not value:
        raise ConfigError(f"token URI {shown!r}: {name}= is empty")
    return value


def _pin_file(shown: str, source: str) -> str:
    if source.startswith("/"):
        return source
    if source.lower().startswith("file:"):
        parts = urlsplit(source)
        if parts.netloc not in {"", "localhost"} or not parts.path.startswith("/"):
            raise ConfigError(f"token URI {shown!r}: pin-source= must be file: with an absolute local path")
        return unquote(parts.path)
    raise ConfigError(f"token URI {shown!r}: only pin-source=file:/absolute/path is supported")


def _without_query(uri: str) -> str:
    """The URI with its query dropped, so a refused pin-value never reaches a message."""
    return uri.partition("?")[0].partition("#")[0]
