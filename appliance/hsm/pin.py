"""The token user PIN: read from a file, an environment variable or a systemd credential.

Exactly one source is named by the settings (or by the token URI's `pin-source`). The PIN is
never a command-line argument and never part of the YAML, so it does not show up in `ps`,
shell history or a configuration dump.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from appliance.config import HsmSettings
from appliance.errors import ConfigError
from appliance.hsm.uri import parse_pkcs11_uri


def read_pin(settings: HsmSettings) -> str:
    """Return the user PIN from the one configured source; one trailing newline is dropped."""
    sources = _configured_sources(settings)
    if not sources:
        raise ConfigError(
            "no token PIN source configured: set exactly one of hsm.pin_file, hsm.pin_env, "
            "hsm.pin_credential (or pin-source=file:... in hsm.token_uri)"
        )
    if len(sources) > 1:
        names = ", ".join(name for name, _ in sources)
        raise ConfigError(f"several token PIN sources configured ({names}); set exactly one")
    name, read = sources[0]
    pin = read()
    if pin.endswith("\n"):
        pin = pin[:-1]
        if pin.endswith("\r"):
            pin = pin[:-1]
    if not pin:
        raise ConfigError(f"token PIN from {name} is empty")
    return pin


def _configured_sources(settings: HsmSettings) -> list[tuple[str, Callable[[], str]]]:
    sources: list[tuple[str, Callable[[], str]]] = []
    if settings.pin_file is not None:
        path = Path(settings.pin_file)
        pin_file_described = f"hsm.pin_file {path}"
        sources.append((pin_file_described, lambda: _read_file(path, pin_file_described)))
    if settings.pin_env is not None:
        variable = settings.pin_env
        sources.append((f"hsm.pin_env ${variable}", lambda: _read_env(variable)))
    if settings.pin_credential is not None:
        credential = settings.pin_credential
        sources.append((f"hsm.pin_credential {credential}", lambda: _read_credential(credential)))
    if settings.token_uri is not None:
        uri_pin_file = parse_pkcs11_uri(settings.token_uri).pin_file
        if uri_pin_file is not None:
            described = f"hsm.token_uri pin-source {uri_pin_file}"
            sources.append((described, lambda: _read_file(Path(uri_pin_file), described)))
    return sources


def _read_file(path: Path, described: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"token PIN file missing ({described})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read token PIN ({described}): {reason}") from exc


def _read_env(variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(f"token PIN environment variable ${variable} (hsm.pin_env) is not set")
    return value


def _read_credential(name: str) -> str:
    if not name or "/" in name or name in {".", ".."}:
        raise ConfigError(f"hsm.pin_credential {name!r} is not a credential name")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"hsm.pin_credential {name}: $CREDENTIALS_DIRECTORY is not set "
            "(run under systemd with LoadCredential=/SetCredentialEncrypted=)"
        )
    path = Path(directory) / name
    return _read_file(path, f"hsm.pin_credential {name} at {path}")
