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
    # Labels of further tokens ("partitions") that hold the device keys, spread by device id
    # (appliance/hsm/partitions.py); same module and PIN as the main token. Empty: device keys
    # stay in the main token. Fixed once keys exist. See docs/benchmark.md for why (large fleets).
    partition_labels: list[str] = msgspec.field(default_factory=list)


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
    # `production`: a registration runs the compliance checks and ends with the production CSID.
    # `compliance`: it stops at the compliance CSID (the user runs the checks and the exchange).
    onboarding: Literal["production", "compliance"] = "production"


class SolutionSettings(_Settings):
    """Goes into the CSR's SN: `1-<name>|2-<version>|3-<EGS serial>`."""

    name: str = "ZatcaAppliance"
    version: str = "1.0"


class TlsSettings(_Settings):
    """The service's certificate (chain) and key, PEM; `client_ca_file` turns on mutual TLS."""

    certificate_file: str
    # Readable by the service user only, or a systemd credential
    # (/run/credentials/zatca-appliance.service/<name>); a group- or world-readable key is refused.
    key_file: str
    client_ca_file: str | None = None


class ServerSettings(_Settings):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    tls: TlsSettings | None = None
    # Plain HTTP on a non-loopback address carries API keys and private keys in clear: refused
    # unless this is set, and then warned about at every start.
    allow_plaintext: bool = False
    # A second listener on 127.0.0.1 for /metrics and /health/ready, which then leave the main port.
    ops_port: int | None = None
    # A request (headers and body) must arrive within this many seconds of the connection
    # opening or of the previous response; slower connections are closed.
    request_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0
    # Past max_connections the oldest connection still waiting for its request is closed;
    # a client address holding max_connections_per_client gets no more.
    max_connections: int = 1000
    max_connections_per_client: int = 64


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


class InvoicingSettings(_Settings):
    """Model invoicing and the outbox that delivers every stored invoice to ZATCA."""

    # A standard invoice is cleared while its POS waits, at most this long; then it is `Pending`
    # and the outbox keeps trying.
    clearance_timeout_seconds: float = 10.0
    # Deliveries in flight at once, over all devices.
    outbox_concurrency: int = 16
    # The outbox looks for due entries this often even when nothing woke it (retries, restarts).
    outbox_poll_seconds: float = 1.0
    # Retry after timeouts, connection errors and 5xx: base x 2^attempts, capped, with jitter.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    # Simplified invoices must reach ZATCA within 24 h: warn when the oldest undelivered one is older.
    undelivered_warning_seconds: float = 12 * 3600.0


class WebhookSettings(_Settings):
    """Optional: each invoice status change is POSTed as JSON, signed with HMAC-SHA256."""

    url: str | None = None
    # The HMAC key (readable by the service user only, or a systemd credential).
    secret_file: str | None = None
    timeout_seconds: float = 5.0
    # A refused or failed POST is retried: base x 2^attempts, capped, with jitter; events wait in
    # the registry meanwhile (restarts lose none).
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0


class AppConfig(_Settings):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    hsm: HsmSettings = msgspec.field(default_factory=HsmSettings)
    zatca: ZatcaSettings = msgspec.field(default_factory=ZatcaSettings)
    solution: SolutionSettings = msgspec.field(default_factory=SolutionSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    invoicing: InvoicingSettings = msgspec.field(default_factory=InvoicingSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)


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
