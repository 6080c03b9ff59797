"""The registry's schema as an ordered list of migrations, applied once each at open.

A migration is a tuple of single statements (not a script) so it runs inside the same
transaction that records its version: a crash mid-migration leaves the previous version.
Append new migrations; never edit one that has shipped.

The SQL avoids STRICT tables and RETURNING so that the SQLite of older LTS distributions
(3.31+) can open the file.
"""

from __future__ import annotations

import sqlite3

from appliance.errors import StorageError
from appliance.storage.sql import transaction

_DEVICES = """
CREATE TABLE devices (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL CHECK (environment IN ('Development', 'Simulation', 'Production')),
    invoice_format TEXT NOT NULL CHECK (invoice_format IN ('Xml', 'Pdf', 'Model')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'failed')),
    vat TEXT NOT NULL,
    egs_serial TEXT NOT NULL,
    common_name TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    organization_unit TEXT NOT NULL,
    country TEXT NOT NULL,
    location TEXT NOT NULL,
    industry TEXT NOT NULL,
    invoice_type TEXT NOT NULL,
    key_label TEXT NOT NULL,
    key_id_hex TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    csr_pem TEXT,
    request_id TEXT,
    binary_security_token TEXT,
    secret_ciphertext BLOB,
    certificate_serial TEXT,
    certificate_not_before TEXT,
    certificate_not_after TEXT,
    failure_code TEXT,
    failure_message TEXT,
    CHECK (status <> 'active' OR (
        binary_security_token IS NOT NULL AND secret_ciphertext IS NOT NULL
        AND certificate_serial IS NOT NULL)),
    CHECK (status <> 'failed' OR failure_code IS NOT NULL)
)
"""

# The duplicate-device rule lives here, in the database, so concurrent registrations of the
# same EGS unit cannot both pass a read-then-write check. Failed attempts do not count.
_ONE_LIVE_DEVICE = """
CREATE UNIQUE INDEX devices_one_live_per_unit ON devices (environment, vat, egs_serial)
WHERE status IN ('pending', 'active')
"""

_API_KEYS = """
CREATE TABLE api_keys (
    seq INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
)
"""

# The hash chain (appliance.storage.audit) is the real protection; the triggers only stop
# well-meant edits, since anyone who can write the file can drop them.
_AUDIT_LOG = """
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY CHECK (seq > 0),
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    device_id TEXT,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"""

_AUDIT_LOG_NO_UPDATE = """
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
"""

_AUDIT_LOG_NO_DELETE = """
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
"""

# Onboarding to production (issue 10): the statuses between pending and active, the compliance
# CSID kept beside the production one, and the renewal in flight. SQLite cannot change a CHECK
# constraint in place, so the table is rebuilt (same columns first, then the new ones).
_DEVICES_ONBOARDING = """
CREATE TABLE devices_onboarding (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL CHECK (environment IN ('Development', 'Simulation', 'Production')),
    invoice_format TEXT NOT NULL CHECK (invoice_format IN ('Xml', 'Pdf', 'Model')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'compliance', 'compliant', 'active', 'failed')),
    vat TEXT NOT NULL,
    egs_serial TEXT NOT NULL,
    common_name TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    organization_unit TEXT NOT NULL,
    country TEXT NOT NULL,
    location TEXT NOT NULL,
    industry TEXT NOT NULL,
    invoice_type TEXT NOT NULL,
    key_label TEXT NOT NULL,
    key_id_hex TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    csr_pem TEXT,
    request_id TEXT,
    binary_security_token TEXT,
    secret_ciphertext BLOB,
    certificate_serial TEXT,
    certificate_not_before TEXT,
    certificate_not_after TEXT,
    failure_code TEXT,
    failure_message TEXT,
    credential_kind TEXT CHECK (credential_kind IN ('compliance', 'production')),
    compliance_request_id TEXT,
    compliance_token TEXT,
    compliance_secret_ciphertext BLOB,
    compliance_certificate_serial TEXT,
    renewal_key_id_hex TEXT,
    renewal_key_label TEXT,
    renewal_started_at TEXT,
    CHECK (status <> 'active' OR (
        binary_security_token IS NOT NULL AND secret_ciphertext IS NOT NULL
        AND certificate_serial IS NOT NULL)),
    CHECK (status NOT IN ('compliance', 'compliant') OR (
        compliance_token IS NOT NULL AND compliance_secret_ciphertext IS NOT NULL
        AND compliance_request_id IS NOT NULL)),
    CHECK (status <> 'failed' OR failure_code IS NOT NULL),
    CHECK (renewal_key_id_hex IS NULL OR status = 'active')
)
"""

_DEVICES_COLUMNS_BEFORE_ONBOARDING = (
    "seq, device_id, environment, invoice_format, status, vat, egs_serial, common_name, serial_number,"
    " organization_name, organization_unit, country, location, industry, invoice_type, key_label,"
    " key_id_hex, created_at, updated_at, created_by, csr_pem, request_id, binary_security_token,"
    " secret_ciphertext, certificate_serial, certificate_not_before, certificate_not_after,"
    " failure_code, failure_message"
)

# Every compliance document ZATCA judged, per device and compliance CSID (registration or renewal).
_COMPLIANCE_CHECKS = """
CREATE TABLE compliance_checks (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    compliance_request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    uuid TEXT NOT NULL,
    invoice_hash TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    status TEXT NOT NULL,
    messages TEXT NOT NULL,
    checked_at TEXT NOT NULL
)
"""

_ONBOARDING_MIGRATION = (
    _DEVICES_ONBOARDING,
    f"INSERT INTO devices_onboarding ({_DEVICES_COLUMNS_BEFORE_ONBOARDING})"  # noqa: S608 - constants
    f" SELECT {_DEVICES_COLUMNS_BEFORE_ONBOARDING} FROM devices",
    # Devices activated before this release hold the compliance CSID as their credential.
    "UPDATE devices_onboarding SET credential_kind = 'compliance',"
    " compliance_request_id = request_id, compliance_token = binary_security_token,"
    " compliance_secret_ciphertext = secret_ciphertext, compliance_certificate_serial = certificate_serial"
    " WHERE status = 'active'",
    "DROP TABLE devices",
    "ALTER TABLE devices_onboarding RENAME TO devices",
    """CREATE UNIQUE INDEX devices_one_live_per_unit ON devices (environment, vat, egs_serial)
WHERE status IN ('pending', 'compliance', 'compliant', 'active')""",
    "CREATE INDEX devices_newest_first ON devices (created_at, seq)",
    "CREATE INDEX devices_by_status ON devices (status, created_at, seq)",
    "CREATE INDEX devices_by_expiry ON devices (certificate_not_after) WHERE status = 'active'",
    _COMPLIANCE_CHECKS,
    "CREATE INDEX compliance_checks_by_device ON compliance_checks (device_id, seq)",
)

# Retirement and scoped API keys (issue 13). A device can be `retired` (its key destroyed, its
# serial free to register again); API keys get a never-reused id, roles, a VAT scope and an
# optional registration quota. CHECKs cannot change in place, so both tables are rebuilt (new
# table, copy, drop, rename, indexes again). Keys from before become unscoped admin keys with a
# generated id, so they keep working. "Live" is every status but failed and retired.
_DEVICES_RETIREMENT = """
CREATE TABLE devices_retirement (
    seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL UNIQUE,
    environment TEXT NOT NULL CHECK (environment IN ('Development', 'Simulation', 'Production')),
    invoice_format TEXT NOT NULL CHECK (invoice_format IN ('Xml', 'Pdf', 'Model')),
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'compliance', 'compliant', 'active', 'failed', 'retired')),
    vat TEXT NOT NULL,
    egs_serial TEXT NOT NULL,
    common_name TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    organization_unit TEXT NOT NULL,
    country TEXT NOT NULL,
    location TEXT NOT NULL,
    industry TEXT NOT NULL,
    invoice_type TEXT NOT NULL,
    key_label TEXT NOT NULL,
    key_id_hex TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    csr_pem TEXT,
    request_id TEXT,
    binary_security_token TEXT,
    secret_ciphertext BLOB,
    certificate_serial TEXT,
    certificate_not_before TEXT,
    certificate_not_after TEXT,
    failure_code TEXT,
    failure_message TEXT,
    credential_kind TEXT CHECK (credential_kind IN ('compliance', 'production')),
    compliance_request_id TEXT,
    compliance_token TEXT,
    compliance_secret_ciphertext BLOB,
    compliance_certificate_serial TEXT,
    renewal_key_id_hex TEXT,
    renewal_key_label TEXT,
    renewal_started_at TEXT,
    retired_at TEXT,
    retired_by TEXT,
    CHECK (status <> 'active' OR (
        binary_security_token IS NOT NULL AND secret_ciphertext IS NOT NULL
        AND certificate_serial IS NOT NULL)),
    CHECK (status NOT IN ('compliance', 'compliant') OR (
        compliance_token IS NOT NULL AND compliance_secret_ciphertext IS NOT NULL
        AND compliance_request_id IS NOT NULL)),
    CHECK (status <> 'failed' OR failure_code IS NOT NULL),
    CHECK (renewal_key_id_hex IS NULL OR status = 'active'),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL AND retired_by IS NOT NULL))
)
"""

_DEVICES_COLUMNS_BEFORE_RETIREMENT = (
    f"{_DEVICES_COLUMNS_BEFORE_ONBOARDING}, credential_kind, compliance_request_id, compliance_token,"
    " compliance_secret_ciphertext, compliance_certificate_serial, renewal_key_id_hex, renewal_key_label,"
    " renewal_started_at"
)

_API_KEYS_SCOPED = """
CREATE TABLE api_keys_scoped (
    seq INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    roles TEXT NOT NULL,
    vats TEXT,
    registrations_per_hour INTEGER CHECK (registrations_per_hour > 0),
    created_at TEXT NOT NULL,
    created_by TEXT,
    revoked_at TEXT,
    last_used_at TEXT
)
"""

_LIVE = "status NOT IN ('failed', 'retired')"

_RETIREMENT_MIGRATION = (
    _DEVICES_RETIREMENT,
    f"INSERT INTO devices_retirement ({_DEVICES_COLUMNS_BEFORE_RETIREMENT})"  # noqa: S608 - constants
    f" SELECT {_DEVICES_COLUMNS_BEFORE_RETIREMENT} FROM devices",
    "DROP TABLE devices",
    "ALTER TABLE devices_retirement RENAME TO devices",
    f"CREATE UNIQUE INDEX devices_one_live_per_unit ON devices (environment, vat, egs_serial) WHERE {_LIVE}",
    # The final SN is the unit's identity. It is checked in the insert's write transaction
    # (storage.devices), not by a unique index, which would refuse to build on a registry that
    # already holds two live rows with one SN (the bug this release fixes).
    "CREATE INDEX devices_by_serial_number ON devices (environment, vat, serial_number)",
    "CREATE INDEX devices_newest_first ON devices (created_at, seq)",
    "CREATE INDEX devices_by_status ON devices (status, created_at, seq)",
    "CREATE INDEX devices_by_expiry ON devices (certificate_not_after) WHERE status = 'active'",
    "CREATE INDEX devices_by_vat ON devices (vat, created_at, seq)",
    "CREATE INDEX devices_by_creator ON devices (created_by, created_at)",
    _API_KEYS_SCOPED,
    "INSERT INTO api_keys_scoped"
    " (seq, key_id, name, key_hash, roles, vats, created_at, revoked_at, last_used_at)"
    " SELECT seq, 'key_' || lower(hex(randomblob(8))), name, key_hash, '[\"admin\"]', NULL, created_at,"
    " revoked_at, last_used_at FROM api_keys",
    "DROP TABLE api_keys",
    "ALTER TABLE api_keys_scoped RENAME TO api_keys",
    # Names are never reused (checked on insert, for the same reason as the SN above).
    "CREATE UNIQUE INDEX api_keys_one_active_name ON api_keys (name) WHERE revoked_at IS NULL",
    "CREATE INDEX api_keys_by_name ON api_keys (name)",
)

# Invoicing (issue 11): each device's documents in chain order, the chain head, the outbox of
# documents ZATCA has not answered for good yet, and the seller details a device's models fall
# back to. `position` orders a device's chain (for Model devices it is the ICV); (device, uuid)
# is unique so a retried request can never add a second chain entry.
_INVOICES = """
CREATE TABLE invoices (
    seq INTEGER PRIMARY KEY,
    invoice_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    position INTEGER NOT NULL CHECK (position > 0),
    icv INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    invoice_number TEXT NOT NULL,
    invoice_hash TEXT NOT NULL,
    pih TEXT NOT NULL,
    kind TEXT NOT NULL,
    simplified INTEGER NOT NULL CHECK (simplified IN (0, 1)),
    signed_xml BLOB NOT NULL,
    qr TEXT NOT NULL,
    body_digest TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('model', 'submitted')),
    status TEXT NOT NULL CHECK (status IN ('Pending', 'Reported', 'ReportedWithWarnings', 'Cleared',
        'ClearedWithWarnings', 'Rejected')),
    http_status INTEGER,
    info_messages TEXT NOT NULL,
    warning_messages TEXT NOT NULL,
    error_messages TEXT NOT NULL,
    cleared_xml BLOB,
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT,
    UNIQUE (device_id, position),
    UNIQUE (device_id, uuid)
)
"""

_INVOICE_CHAIN_HEADS = """
CREATE TABLE invoice_chain_heads (
    device_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    icv INTEGER NOT NULL,
    invoice_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""

_INVOICE_OUTBOX = """
CREATE TABLE invoice_outbox (
    invoice_seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    enqueued_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT
)
"""

_DEVICE_SELLERS = """
CREATE TABLE device_sellers (
    device_id TEXT PRIMARY KEY,
    seller_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""

_INVOICING_MIGRATION = (
    _INVOICES,
    "CREATE INDEX invoices_by_status ON invoices (device_id, status, position)",
    _INVOICE_CHAIN_HEADS,
    _INVOICE_OUTBOX,
    "CREATE INDEX invoice_outbox_due ON invoice_outbox (next_attempt_at, invoice_seq)",
    "CREATE INDEX invoice_outbox_oldest ON invoice_outbox (enqueued_at)",
    _DEVICE_SELLERS,
)

# Webhook notifications (issue 11): each invoice status change, written in the transaction that
# stores the change, so a restart or kill -9 loses none; rows leave when the receiver said 2xx.
# `payload` is the exact body sent, so every retry sends the same event.
_WEBHOOK_OUTBOX = """
CREATE TABLE webhook_outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    invoice_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT
)
"""

_WEBHOOK_MIGRATION = (
    _WEBHOOK_OUTBOX,
    "CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, seq)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        _DEVICES,
        _ONE_LIVE_DEVICE,
        "CREATE INDEX devices_newest_first ON devices (created_at, seq)",
        "CREATE INDEX devices_by_status ON devices (status, created_at, seq)",
        _API_KEYS,
        "CREATE UNIQUE INDEX api_keys_one_active_name ON api_keys (name) WHERE revoked_at IS NULL",
    ),
    (
        _AUDIT_LOG,
        "CREATE INDEX audit_log_by_device ON audit_log (device_id, seq)",
        _AUDIT_LOG_NO_UPDATE,
        _AUDIT_LOG_NO_DELETE,
    ),
    _ONBOARDING_MIGRATION,
    _RETIREMENT_MIGRATION,
    _INVOICING_MIGRATION,
    _WEBHOOK_MIGRATION,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection, applied_at: str) -> int:
    """Bring the schema to SCHEMA_VERSION; return the version found before."""
    with transaction(connection, write=True):
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        (found,) = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"the registry has schema version {found} but this build knows only up to "
                f"{SCHEMA_VERSION}; install the newer appliance release that wrote it"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, applied_at)
            )
    return int(found)
