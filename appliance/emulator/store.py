"""The emulator's memory: issued CSIDs, minted OTPs and received invoices in one SQLite file in data_dir.

Only digests of tokens and secrets are stored, so the file alone cannot be used to authenticate.
Every call is a single statement in autocommit mode; the emulator serves requests on one event
loop, so no two calls interleave.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

CsidKind = Literal["compliance", "production"]
DATABASE_FILE = "emulator.sqlite3"
OTP_DIGITS = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS csids (
    request_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('compliance', 'production')),
    environment TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL,
    vat TEXT NOT NULL,
    invoice_type TEXT NOT NULL,
    certificate_der BLOB NOT NULL,
    passed_steps TEXT NOT NULL DEFAULT '',
    issued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invoices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    environment TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    csid_request_id INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    invoice_hash TEXT,
    kind TEXT,
    http_status INTEGER NOT NULL,
    status TEXT NOT NULL,
    file_stem TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_by_hash ON invoices (environment, invoice_hash);
CREATE TABLE IF NOT EXISTS otps (
    environment TEXT NOT NULL,
    otp TEXT NOT NULL,
    vat TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    PRIMARY KEY (environment, otp)
);
"""


@dataclass(frozen=True, slots=True)
class CsidRecord:
    request_id: int
    kind: CsidKind
    environment: str
    vat: str
    invoice_type: str
    certificate_der: bytes = field(repr=False)
    passed_steps: frozenset[str]


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """One received document and the answer it got; its bytes and verdict are files (invoice_store)."""

    environment: str
    endpoint: str  # compliance, reporting, clearance
    csid_request_id: int
    uuid: str
    invoice_hash: str | None
    kind: str | None
    http_status: int
    status: str  # PASS, WARNING, ERROR
    file_stem: str
    received_at: float


@dataclass(frozen=True, slots=True)
class OtpRecord:
    environment: str
    vat: str
    expires_at: float

    def __repr__(self) -> str:
        return f"OtpRecord(environment={self.environment!r}, expires_at={self.expires_at})"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EmulatorStore:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        # Requests are served on one event loop, but a test client may run that loop in another
        # thread than the one that opened the file.
        path = directory / DATABASE_FILE
        # Owner-only: SQLite gives its -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add_csid(
        self,
        *,
        kind: CsidKind,
        environment: str,
        token: str,
        secret: str,
        vat: str,
        invoice_type: str,
        certificate_der: bytes,
        passed_steps: Iterable[str] = (),
    ) -> int:
        """Record an issued CSID and return its requestID (a 13-digit millisecond timestamp)."""
        now = self._clock()
        (latest,) = self._db.execute("SELECT COALESCE(MAX(request_id), 0) FROM csids").fetchone()
        request_id = max(int(now * 1000), int(latest) + 1)
        self._db.execute(
            "INSERT INTO csids (request_id, kind, environment, token_sha256, secret_sha256, vat,"
            " invoice_type, certificate_der, passed_steps, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                kind,
                environment,
                _digest(token),
                _digest(secret),
                vat,
                invoice_type,
                certificate_der,
                ",".join(sorted(set(passed_steps))),
                now,
            ),
        )
        return request_id

    def csid_for_credentials(self, token: str, secret: str) -> CsidRecord | None:
        row = self._db.execute(
            "SELECT secret_sha256, request_id, kind, environment, vat, invoice_type, certificate_der,"
            " passed_steps FROM csids WHERE token_sha256 = ?",
            (_digest(token),),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            return None
        return _csid_from_row(row[1:])

    def csid_by_request_id(self, request_id: int) -> CsidRecord | None:
        row = self._db.execute(
            "SELECT request_id, kind, environment, vat, invoice_type, certificate_der, passed_steps"
            " FROM csids WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else _csid_from_row(row)

    def mark_steps_passed(self, request_id: int, steps: Iterable[str]) -> CsidRecord | None:
        record = self.csid_by_request_id(request_id)
        if record is None:
            return None
        passed = record.passed_steps | set(steps)
        self._db.execute(
            "UPDATE csids SET passed_steps = ? WHERE request_id = ?", (",".join(sorted(passed)), request_id)
        )
        return replace(record, passed_steps=passed)

    def add_invoice(self, record: InvoiceRecord) -> None:
        self._db.execute(
            "INSERT INTO invoices (environment, endpoint, csid_request_id, uuid, invoice_hash, kind,"
            " http_status, status, file_stem, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.environment,
                record.endpoint,
                record.csid_request_id,
                record.uuid,
                record.invoice_hash,
                record.kind,
                record.http_status,
                record.status,
                record.file_stem,
                record.received_at,
            ),
        )

    def invoices(self, csid_request_id: int | None = None) -> list[InvoiceRecord]:
        """Received documents, oldest first; only those sent with one CSID when it is given."""
        query = _SELECT_INVOICES
        parameters: tuple[int, ...] = ()
        if csid_request_id is not None:
            query += " WHERE csid_request_id = ?"
            parameters = (csid_request_id,)
        return [InvoiceRecord(*row) for row in self._db.execute(query + " ORDER BY seq", parameters)]

    def accepted_invoice(self, environment: str, invoice_hash: str) -> InvoiceRecord | None:
        """The reported or cleared document with this hash, if one was accepted in the environment."""
        row = self._db.execute(
            _SELECT_INVOICES + " WHERE environment = ? AND invoice_hash = ?"
            " AND endpoint IN ('reporting', 'clearance') AND http_status IN (200, 202) ORDER BY seq LIMIT 1",
            (environment, invoice_hash),
        ).fetchone()
        return None if row is None else InvoiceRecord(*row)

    def chain_hashes(self, csid_request_id: int) -> tuple[str | None, str | None]:
        """(last received, last accepted) invoice hash of a CSID's reporting and clearance chain."""
        last = self._db.execute(
            "SELECT invoice_hash FROM invoices WHERE csid_request_id = ? AND invoice_hash IS NOT NULL"
            " AND endpoint IN ('reporting', 'clearance') ORDER BY seq DESC LIMIT 1",
            (csid_request_id,),
        ).fetchone()
        accepted = self._db.execute(
            "SELECT invoice_hash FROM invoices WHERE csid_request_id = ? AND invoice_hash IS NOT NULL"
            " AND endpoint IN ('reporting', 'clearance') AND http_status IN (200, 202)"
            " ORDER BY seq DESC LIMIT 1",
            (csid_request_id,),
        ).fetchone()
        return (None if last is None else last[0], None if accepted is None else accepted[0])

    def mint_otp(self, environment: str, vat: str, ttl_seconds: float) -> str:
        now = self._clock()
        # A fresh OTP must not collide with one still usable; expired and used ones may be recycled.
        self._db.execute("DELETE FROM otps WHERE expires_at <= ? OR used_at IS NOT NULL", (now,))
        while True:
            otp = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO otps (environment, otp, vat, expires_at) VALUES (?, ?, ?, ?)",
                (environment, otp, vat, now + ttl_seconds),
            )
            if inserted.rowcount == 1:
                return otp

    def usable_otp(self, environment: str, otp: str) -> OtpRecord | None:
        """The OTP's binding if it was minted for this environment, is unexpired and unused."""
        row = self._db.execute(
            "SELECT vat, expires_at FROM otps WHERE environment = ? AND otp = ? AND used_at IS NULL"
            " AND expires_at > ?",
            (environment, otp, self._clock()),
        ).fetchone()
        return None if row is None else OtpRecord(environment, row[0], row[1])

    def consume_otp(self, environment: str, otp: str) -> bool:
        """Mark the OTP used; False if it was not usable any more."""
        now = self._clock()
        updated = self._db.execute(
            "UPDATE otps SET used_at = ? WHERE environment = ? AND otp = ? AND used_at IS NULL"
            " AND expires_at > ?",
            (now, environment, otp, now),
        )
        return updated.rowcount == 1


_SELECT_INVOICES = (
    "SELECT environment, endpoint, csid_request_id, uuid, invoice_hash, kind, http_status, status,"
    " file_stem, received_at FROM invoices"
)


def _csid_from_row(row: Any) -> CsidRecord:
    request_id, kind, environment, vat, invoice_type, certificate_der, passed_steps = row
    return CsidRecord(
        request_id=request_id,
        kind=kind,
        environment=environment,
        vat=vat,
        invoice_type=invoice_type,
        certificate_der=bytes(certificate_der),
        passed_steps=frozenset(step for step in passed_steps.split(",") if step),
    )
