"""`zatca-appliance csr` refuses bad input with the flag names, before it looks for a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main

VALID_ARGS = {
    "--environment": "Simulation",
    "--vat": "399999999900003",
    "--organization-name": "ABCD المحدودة",
    "--organization-unit": "Riyadh Branch",
    "--country": "SA",
    "--egs-serial": "POS-0042",
    "--location": "RRRD2929",
    "--industry": "الأنشطة العقارية",
}

# A module that does not exist: had the command reached the token, it would say so instead.
MISSING_TOKEN = [
    "--module",
    "/nonexistent/libpkcs11.so",
    "--token-label",
    "none",
    "--pin-file",
    "/nonexistent",
]


def run_csr(capsys: pytest.CaptureFixture[str], overrides: dict[str, str]) -> tuple[int, str, str]:
    options = VALID_ARGS | overrides
    argv = ["csr", *[part for flag, value in options.items() for part in (flag, value)], *MISSING_TOKEN]
    exit_code = main(argv)
    captured = capsys.readouterr()
    return exit_code, captured.out, captured.err


def test_every_bad_flag_is_named_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, out, err = run_csr(
        capsys,
        {"--vat": "300000000000000", "--country": "KSA", "--invoice-type": "1111", "--industry": "a;b"},
    )
    assert exit_code == 2
    assert out == ""
    flags = [line.split(": ")[1] for line in err.splitlines()]
    assert flags == ["--vat", "--country", "--invoice-type", "--industry"]
    assert "nonexistent" not in err


def test_group_vat_without_tin_names_the_organization_unit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, _out, err = run_csr(capsys, {"--vat": "311111111111113"})
    assert exit_code == 2
    assert "--organization-unit: Organization unit must be the 10-digit TIN" in err


def test_common_name_problems_name_the_common_name_flag(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, _out, err = run_csr(capsys, {"--common-name": "CN=evil"})
    assert exit_code == 2
    assert "--common-name: Common name contains '='" in err


def test_solution_from_the_config_file_is_checked_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("solution:\n  name: 'Acme|POS'\n  version: '1.0'\n", encoding="utf-8")
    exit_code, _out, err = run_csr(capsys, {"--config": str(config)})
    assert exit_code == 2
    assert "--egs-serial:" in err
    assert "solution.name" in err


def test_unknown_environment_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        run_csr(capsys, {"--environment": "Sandbox"})
    assert raised.value.code == 2
    assert "Development" in capsys.readouterr().err
