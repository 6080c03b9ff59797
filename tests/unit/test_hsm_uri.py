"""RFC 7512 token URIs: what names a token is accepted, anything else is a clear ConfigError."""

from __future__ import annotations

import pytest

from appliance.errors import ConfigError
from appliance.hsm import TokenUri, parse_pkcs11_uri


def test_token_attributes_are_percent_decoded() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=ZATCA%20Appliance%3B1;manufacturer=SoftHSM%20project;serial=548cae54dc029c96;model=SoftHSM%20v2"
    )
    assert uri == TokenUri(
        token="ZATCA Appliance;1",
        manufacturer="SoftHSM project",
        serial="548cae54dc029c96",
        model="SoftHSM v2",
    )


def test_utf8_label_decodes() -> None:
    assert parse_pkcs11_uri("pkcs11:token=%D8%B2%D8%A7%D8%AA%D9%83%D8%A7").token == "زاتكا"


def test_query_gives_module_path_and_pin_file() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=zatca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/zatca/token%20pin"
    )
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.pin_file == "/etc/zatca/token pin"


@pytest.mark.parametrize("source", ["file:///run/pin", "file://localhost/run/pin", "/run/pin"])
def test_pin_source_forms(source: str) -> None:
    assert parse_pkcs11_uri(f"pkcs11:token=t?pin-source={source}").pin_file == "/run/pin"


def test_library_and_vendor_attributes_do_not_change_the_token() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=t;library-manufacturer=SoftHSM;x-vendor=1?x-flag=on")
    assert uri == TokenUri(token="t")


def test_matches_compares_every_given_attribute() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=t;serial=42")
    assert uri.matches(label="t", manufacturer="any", serial="42", model="any")
    assert not uri.matches(label="t", manufacturer="any", serial="43", model="any")
    assert not uri.matches(label="u", manufacturer="any", serial="42", model="any")


def test_pin_value_is_refused_without_echoing_the_pin() -> None:
    with pytest.raises(ConfigError, match="pin-value") as caught:
        parse_pkcs11_uri("pkcs11:token=t?pin-value=98761234")
    assert "98761234" not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("pkcs12:token=t", "does not start with 'pkcs11:'"),
        ("pkcs11:", "must name the token"),
        ("pkcs11:model=SoftHSM%20v2", "must name the token"),
        ("pkcs11:token=a;token=b", "token= given twice"),
        ("pkcs11:token=a b", "must be percent-encoded"),
        ("pkcs11:token=a%2", "must be percent-encoded"),
        ("pkcs11:token=%ff", "not UTF-8"),
        ("pkcs11:token=", "token= is empty"),
        ("pkcs11:token", "is not name=value"),
        ("pkcs11:token=t;object=dev-A", "names an object"),
        ("pkcs11:token=t;id=%01%02", "names an object"),
        ("pkcs11:token=t;slot-id=3", "slot numbers change"),
        ("pkcs11:token=t;colour=blue", "unknown attribute colour="),
        ("pkcs11:token=t?module-name=softhsm2", "unsupported query attribute module-name="),
        ("pkcs11:token=t?module-path=libsofthsm2.so", "absolute path"),
        ("pkcs11:token=t?pin-source=|/bin/get-pin", "only pin-source=file:"),
        ("pkcs11:token=t?pin-source=file://remote/pin", "absolute local path"),
        ("pkcs11:token=t#frag", "fragment"),
    ],
)
def test_junk_is_refused_with_the_reason(uri: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint.replace("|", r"\|").replace("(", r"\(")):
        parse_pkcs11_uri(uri)
