"""Does this SoftHSM offer the database object store? (`objectstore.backend = db`)"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.machine import softhsm2_util


@dataclass(frozen=True, slots=True)
class BackendCheck:
    available: bool
    detail: str


def check_db_backend(directory: Path) -> BackendCheck:
    """Try to initialise a throwaway token with the db backend; report what SoftHSM said."""
    token_dir = directory / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\nobjectstore.backend = db\nlog.level = ERROR\n", encoding="utf-8"
    )
    # A token that is thrown away at once: its PINs protect nothing, so the command line may carry them.
    pin = secrets.token_hex(8)
    result = subprocess.run(  # noqa: S603 - softhsm2-util with fixed arguments, no shell
        [softhsm2_util(), "--init-token", "--free", "--label", "db-check", "--so-pin", pin, "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    said = " ".join((result.stdout + " " + result.stderr).split())
    return BackendCheck(available=result.returncode == 0, detail=f"exit {result.returncode}: {said}")
