"""Configuration: one YAML file decoded straight into msgspec Structs.

Unknown keys are refused with the path that holds them (`$.hsm.token`), so a typo stops the
start instead of silently falling back to a default. Secrets (the token PIN) are never in the
YAML: it names where to read them (a file, an environment variable or a systemd credential).
Nothing here is read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from appliance.domain import Environment
from appliance.errors import ConfigError

ZATCA_GATEWAY = "https://gw-fatoora.zatca.gov.sa/e-invoicing"


class _Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class HsmSettings(_Settings):
    """Which PKCS#11 module and token hold the keys, and where the user PIN comes from.

    The token is named by label or by an RFC 7512 `pkcs:` URI, never by slot number (SoftHSM
    renumbers slots). Exactly one PIN source should be set.
    """

    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str | None = None
    token_uri: str | None = None
    pin_file: str | None = None
    pin_env: str | None = None
    pin_credential: str | None = None
    # SoftHSM reads its configuration from SOFTHSM2_CONF; development tokens set it here.
    softhsm_conf: str | None = None
    # Upper bound of threads that may be inside the token at once (signing runs in parallel).
    worker_threads: int = 8


class ZatcaBaseUrls(_Settings):
    development: str = f"{ZATCA_GATEWAY}/developer-portal"
    simulation: str = f"{ZATCA_GATEWAY}/simulation"
    production: str = f"{ZATCA_GATEWAY}/core"

    def for_environment(self, environment: Environment) -> str:
        return {
            Environment.DEVELOPMENT: self.development,
            Environment.SIMULATION: self.simulation,
            Environment.PRODUCTION: self.production,
        }[environment]


class ZatcaSettings(_Settings):
    base_urls: ZatcaBaseUrls = msgspec.field(default_factory=ZatcaBaseUrls)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 10.0
    pool_timeout: float = 5.0
    max_connections: int = 32
    accept_language: Literal["en", "ar"] = "en"
    # The developer portal has no real OTPs; ZATCA's examples use this one (zatca-protocol.md 4.1).
    sandbox_otp: str = "123345"


class SolutionSettings(_Settings):
    """Goes into the CSR's SN: `1-<name>|2-<version>|3-<EGS serial>`."""

    name: str = "ZatcaAppliance"
    version: str = "1.0"


class ServerSettings(_Settings):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024


class StorageSettings(_Settings):
    data_dir: str = "/var/lib/zatca-appliance"
    # The running service reconciles registry and token this often (0: only at start-up), e.g.
    # to destroy a key left behind while the token was unavailable.
    reconcile_interval_seconds: float = 300.0
    # A pending registration older than this was interrupted (registrations take seconds).
    stale_pending_seconds: float = 600.0

    @property
    def registry_path(self) -> Path:
        return Path(self.data_dir) / "registry.sqlite3"


class LoggingSettings(_Settings):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class AppConfig(_Settings):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    hsm: HsmSettings = msgspec.field(default_factory=HsmSettings)
    zatca: ZatcaSettings = msgspec.field(default_factory=ZatcaSettings)
    solution: SolutionSettings = msgspec.field(default_factory=SolutionSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)


def load_config(path: str | Path) -> AppConfig:
    """Read and decode the YAML file; every problem becomes a ConfigError naming the file."""
    import yaml

    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {config_path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from exc
    try:
        return msgspec.convert(raw, type=AppConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
