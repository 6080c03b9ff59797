"""A SoftHSM development token under the appliance's data directory, created once.

    <data_dir>/softhsm/softhsm2.conf    SoftHSM configuration (file object store)
    <data_dir>/softhsm/tokens/          the token files
    <data_dir>/token-pin                random user PIN, mode 0600
    <data_dir>/token-so-pin             random security-officer PIN, mode 0600

With `partitions`, the device-key tokens `<label>-p00`, `<label>-p01`, ... are created next to
it with the same PINs (hsm.partition_labels; appliance/hsm/partitions.py says why). Running it
again keeps the tokens and their PINs. softhsm2-util reads the PINs from a
pseudo-terminal with echo off, never from its command line, so they do not appear in `ps`.
Same layout and settings as hsm/init-token.sh with hsm/softhsm2.conf.template.
"""

from __future__ import annotations

import os
import pty
import secrets
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path
from typing import Final

from appliance.config import HsmSettings
from appliance.errors import ConfigError, HsmError

DEFAULT_DEV_LABEL: Final = "zatca-appliance-dev"
_PIN_HEX_BYTES: Final = 16
_INIT_TIMEOUT_SECONDS: Final = 60.0
_MAX_PARTITIONS: Final = 100
_MAX_LABEL_LENGTH: Final = 32  # CK_TOKEN_INFO.label
_CONF_TEMPLATE: Final = """\
# SoftHSM v2 configuration for the appliance's development token (written by `hsm init`).
directories.tokendir = {token_dir}
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
"""


def partition_label(label: str, index: int) -> str:
    """The label of partition `index` of the token `label` (the same rule as hsm/init-token.sh)."""
    return f"{label}-p{index:02d}"


def ensure_dev_token(data_dir: Path, label: str = DEFAULT_DEV_LABEL, partitions: int = 0) -> HsmSettings:
    """Create (or find) the development token and its partitions; return the settings that open them."""
    if not 0 <= partitions <= _MAX_PARTITIONS:
        raise ConfigError(f"partitions must be 0 to {_MAX_PARTITIONS}, not {partitions}")
    partition_labels = [partition_label(label, index) for index in range(partitions)]
    if any(len(name) > _MAX_LABEL_LENGTH for name in (label, *partition_labels)):
        raise ConfigError(f"token labels have at most {_MAX_LABEL_LENGTH} characters: shorten '{label}'")
    data_dir = data_dir.absolute()
    softhsm_dir = data_dir / "softhsm"
    token_dir = softhsm_dir / "tokens"
    conf_path = softhsm_dir / "softhsm2.conf"
    pin_file = data_dir / "token-pin"
    so_pin_file = data_dir / "token-so-pin"
    for directory in (data_dir, softhsm_dir, token_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not conf_path.exists():
        _write_private(conf_path, _CONF_TEMPLATE.format(token_dir=token_dir))

    environment = {**os.environ, "SOFTHSM2_CONF": str(conf_path)}
    present = _token_labels(environment)
    if label in present and not pin_file.exists():
        raise ConfigError(
            f"token '{label}' exists in {token_dir} but its PIN file {pin_file} is gone; "
            f"remove {softhsm_dir} to start the development token over"
        )
    missing = [name for name in (label, *partition_labels) if name not in present]
    if missing:
        user_pin = _read_or_create_pin(pin_file)
        so_pin = _read_or_create_pin(so_pin_file)
        for name in missing:
            _init_token(name, so_pin, user_pin, environment)
        present = _token_labels(environment)
        for name in missing:
            if name not in present:
                raise HsmError(f"softhsm2-util reported success but token '{name}' is not in {token_dir}")
    pin_file.chmod(0o600)
    return HsmSettings(
        token_label=label,
        pin_file=str(pin_file),
        softhsm_conf=str(conf_path),
        partition_labels=partition_labels,
    )


def _softhsm2_util() -> str:
    path = shutil.which("softhsm2-util")
    if path is None:
        raise ConfigError("softhsm2-util not found; install SoftHSM (apt-get install softhsm2)")
    return path


def _token_labels(environment: dict[str, str]) -> set[str]:
    # An argument list with the resolved softhsm2-util path and no shell: nothing to inject.
    result = subprocess.run(  # noqa: S603
        [_softhsm2_util(), "--show-slots"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=_INIT_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        raise HsmError(f"softhsm2-util --show-slots failed: {result.stderr.strip() or result.stdout.strip()}")
    return {
        line.split(":", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.strip().startswith("Label:")
    }


def _read_or_create_pin(path: Path) -> str:
    if path.exists():
        pin = path.read_text(encoding="utf-8").removesuffix("\n")
        if not 4 <= len(pin) <= 255:
            raise ConfigError(f"PIN file {path} must hold 4 to 255 characters")
        return pin
    pin = secrets.token_hex(_PIN_HEX_BYTES)
    _write_private(path, pin + "\n")
    return pin


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _init_token(label: str, so_pin: str, user_pin: str, environment: dict[str, str]) -> None:
    """softhsm2-util --init-token, answering its PIN prompts through a terminal without echo."""
    controller, terminal = pty.openpty()
    try:
        attributes = termios.tcgetattr(terminal)
        attributes[3] &= ~termios.ECHO
        termios.tcsetattr(terminal, termios.TCSANOW, attributes)
        process = subprocess.Popen(  # noqa: S603 - fixed program, argument list, no shell
            [_softhsm2_util(), "--init-token", "--free", "--label", label],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=environment,
            start_new_session=True,
        )
    except BaseException:
        os.close(controller)
        raise
    finally:
        os.close(terminal)
    try:
        os.write(controller, f"{so_pin}\n{so_pin}\n{user_pin}\n{user_pin}\n".encode())
        output = _read_until_exit(controller, process)
    finally:
        os.close(controller)
    if process.returncode != 0:
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        raise HsmError(
            f"softhsm2-util --init-token --label {label} failed: {'; '.join(errors) or output.strip()}"
        )


def _read_until_exit(controller: int, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + _INIT_TIMEOUT_SECONDS
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            process.kill()
            process.wait()
            raise HsmError("softhsm2-util --init-token did not finish (is it asking for input?)")
        ready, _, _ = select.select([controller], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the terminal closed because softhsm2-util exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=_INIT_TIMEOUT_SECONDS)
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
