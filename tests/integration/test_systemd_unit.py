"""The systemd packaging, judged by systemd's own tools (systemd-analyze, -sysusers, -tmpfiles).

None of this needs systemd running as PID 1: `systemd-analyze verify` and `security --offline=true`
load the unit in a private manager instance, and sysusers/tmpfiles act on a temporary --root.
A machine without the tools fails these tests with a message saying what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "zatca-appliance.service"
SYSUSERS = SYSTEMD_DIR / "zatca-appliance.sysusers"
TMPFILES = SYSTEMD_DIR / "zatca-appliance.tmpfiles"
INSTALLED_ENTRY_POINT = "/opt/zatca-appliance/.venv/bin/zatca-appliance"
# The issue's acceptance bar for `systemd-analyze security` (0 = locked down, 10 = unprotected).
MAX_EXPOSURE = 2.5
EXPOSURE_LINE = re.compile(r"Overall exposure level for zatca-appliance\.service: (\d+(?:\.\d+)?)")


def systemd_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed, so the systemd packaging cannot be checked; "
            "install the 'systemd' package (Debian/Ubuntu: apt-get install systemd)"
        )
    return path


def id_of(name: str, database: Path) -> int:
    """The uid or gid of `name` in a passwd or group file."""
    for line in database.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} is not in {database}")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    # No colours, no pager: the output is parsed and quoted in failure messages.
    env = dict(os.environ, SYSTEMD_COLORS="0", SYSTEMD_PAGER="", LC_ALL="C.UTF-8")
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify refuses a unit whose ExecStart binary is missing, and the unit names the installed
    # prefix (/opt/zatca-appliance), which a development machine or CI runner does not have. So a
    # copy that differs only in ExecStart's path is verified, pointing at this virtualenv's entry
    # point; everything else (directives, dependencies, sandbox settings) is the shipped text.
    entry_point = Path(sys.executable).parent / "zatca-appliance"
    if not entry_point.exists():
        pytest.fail(f"{entry_point} is missing; install the package into this virtualenv (pip install -e .)")
    shipped = UNIT.read_text()
    assert shipped.count(INSTALLED_ENTRY_POINT) == 1, "ExecStart no longer names the documented prefix"
    copy = tmp_path / UNIT.name  # verify derives the unit name from the file name
    copy.write_text(shipped.replace(INSTALLED_ENTRY_POINT, str(entry_point)))

    result = run(systemd_tool("systemd-analyze"), "verify", "--man=no", str(copy))

    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"systemd-analyze verify failed:\n{output}"
    # An unknown or misspelt directive is only a warning with exit status 0: any output fails.
    assert not output, f"systemd-analyze verify warned:\n{output}"


def test_exposure_is_within_the_issues_bar() -> None:
    result = run(systemd_tool("systemd-analyze"), "security", "--offline=true", "--no-pager", str(UNIT))

    report = result.stdout + result.stderr
    match = EXPOSURE_LINE.search(report)
    assert match is not None, f"no 'Overall exposure level' line (exit {result.returncode}):\n{report}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} is above {MAX_EXPOSURE}:\n{report}"


def test_sysusers_creates_a_system_user_that_cannot_log_in(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()

    result = run(systemd_tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS))

    assert result.returncode == 0, result.stderr
    entries = [line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()]
    user = next(entry for entry in entries if entry[0] == "zatca-appliance")
    uid, home, shell = int(user[2]), user[5], user[6]
    assert uid < 1000, "a system user's uid is below the first login uid"
    assert home == "/var/lib/zatca-appliance"
    assert shell == "/usr/sbin/nologin"
    groups = (tmp_path / "etc/group").read_text()
    assert re.search(r"^zatca-appliance:x:\d+:", groups, re.MULTILINE)


def test_tmpfiles_give_the_service_user_its_directories_and_nobody_else(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to hand directories to another user")
    (tmp_path / "etc").mkdir()
    sysusers = run(systemd_tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSUSERS))
    assert sysusers.returncode == 0, sysusers.stderr
    service_uid = id_of("zatca-appliance", tmp_path / "etc/passwd")
    service_gid = id_of("zatca-appliance", tmp_path / "etc/group")

    result = run(systemd_tool("systemd-tmpfiles"), "--create", f"--root={tmp_path}", str(TMPFILES))

    assert result.returncode == 0, result.stderr
    config_dir = (tmp_path / "etc/zatca-appliance").stat()
    assert (config_dir.st_uid, config_dir.st_gid, config_dir.st_mode & 0o777) == (0, service_gid, 0o750)
    for state_dir in ("var/lib/zatca-appliance", "var/lib/zatca-appliance/softhsm/tokens"):
        st = (tmp_path / state_dir).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (service_uid, service_gid, 0o700), state_dir
