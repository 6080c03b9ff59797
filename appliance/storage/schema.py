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
