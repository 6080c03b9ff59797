"""The token PIN comes from exactly one source, and every problem names that source."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import HsmSettings
from appliance.errors import ConfigError
from appliance.hsm import read_pin


def settings(**sources: str) -> HsmSettings:
    return HsmSettings(token_label="t", **sources)


def test_file_with_one_trailing_newline_stripped(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("12 34\n\n", encoding="utf-8")
    assert read_pin(settings(pin_file=str(pin_file))) == "12 34\n"


def test_file_with_crlf(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(b"1234\r\n")
    assert read_pin(settings(pin_file=str(pin_file))) == "1234"


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZATCA_TEST_PIN", "5678\n")
    assert read_pin(settings(pin_env="ZATCA_TEST_PIN")) == "5678"


def test_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token-pin").write_text("2468\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_pin(settings(pin_credential="token-pin")) == "2468"


def test_uri_pin_source(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1357\n", encoding="utf-8")
    chosen = HsmSettings(token_uri=f"pkcs11:token=t?pin-source=file:{pin_file}")
    assert read_pin(chosen) == "1357"


def test_no_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no token PIN source configured"):
        read_pin(settings())


def test_several_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"several token PIN sources.*hsm.pin_file.*hsm.pin_env"):
        read_pin(settings(pin_file=str(tmp_path / "pin"), pin_env="X"))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(ConfigError, match=f"PIN file missing.*{missing}"):
        read_pin(settings(pin_file=str(missing)))


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read token PIN.*{tmp_path}"):
        read_pin(settings(pin_file=str(tmp_path)))  # a directory


def test_empty_file_is_refused(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        read_pin(settings(pin_file=str(pin_file)))


def test_unset_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZATCA_TEST_PIN", raising=False)
    with pytest.raises(ConfigError, match=r"\$ZATCA_TEST_PIN"):
        read_pin(settings(pin_env="ZATCA_TEST_PIN"))


def test_credential_outside_systemd_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"token-pin.*CREDENTIALS_DIRECTORY is not set"):
        read_pin(settings(pin_credential="token-pin"))


def test_credential_name_cannot_escape_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match="not a credential name"):
        read_pin(settings(pin_credential="../etc/shadow"))


def test_missing_credential_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match=r"hsm\.pin_credential token-pin"):
        read_pin(settings(pin_credential="token-pin"))
