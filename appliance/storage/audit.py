"""The audit trail: who generated, exported and destroyed which key, and who changed API keys.

Records live in the `audit_log` table of the registry file, in one hash chain. Record n
stores `prev_hash` (record n-1's `hash`, GENESIS_HASH for record 1) and

    hash = SHA-256(json([seq, time, actor, device_id, event, outcome, detail, prev_hash]))

as lowercase hex, where `json` is compact UTF-8 JSON without spaces or ASCII escaping
(`msgspec.json.encode`, byte for byte what Python's `json.dumps(list, separators=(",", ":"),
ensure_ascii=False).encode()` gives) and `time` is the stored text (UTC ISO 8601 with
microseconds). A JSON array is unambiguous: no choice of field values can make two different
records encode alike, so anyone can re-check the chain with the standard library alone.

Appends are serialised: one writer connection per process, and `BEGIN IMMEDIATE` across
processes (the service and the CLI), so reading the head and inserting its successor is one
atomic step and the chain cannot fork. The table refuses UPDATE and DELETE through triggers,
which stops mistakes, not attackers.

What verification proves, against someone who can write the SQLite file:
- Editing a record without fixing its hash, deleting records in the middle, moving records
  to other `seq` values, and inserting or copying records among the others are each found
  and named by `seq` (`verify_records`).
- Editing a record and recomputing its hash is found through the next record's `prev_hash`,
  unless the attacker also rewrites every later record.
- Not detectable from the file alone: deleting records from the end (truncation), rewriting
  a record and everything after it, or replacing the whole chain, because the chain carries
  no secret and anyone can recompute it. Only an anchor kept outside the file catches these:
  `zatca-appliance audit verify` prints the head hash for the operator to note elsewhere
  (ticket, logbook, a remote log), and `--expect-head HASH` later proves that record is still
  in the chain, unchanged and at its place.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

import msgspec

GENESIS_HASH = "0" * 64
# Long enough for a ZATCA error code and message; an audit record is not a log dump.
MAX_DETAIL_LENGTH = 1000
ACTOR_CLI = "cli"
ACTOR_SYSTEM = "system"


class AuditEvent(enum.StrEnum):
    KEY_GENERATED = "key.generated"
    KEY_EXPORTED = "key.exported"
    KEY_DESTROYED = "key.destroyed"
    REGISTRATION_SUCCEEDED = "registration.succeeded"
    REGISTRATION_FAILED = "registration.failed"
    APIKEY_CREATED = "apikey.created"
    APIKEY_REVOKED = "apikey.revoked"
    DEVICES_RECONCILED = "devices.reconciled"
    COMPLIANCE_CHECKED = "compliance.checked"
    RENEWAL_SUCCEEDED = "renewal.succeeded"
    RENEWAL_FAILED = "renewal.failed"
    DEVICE_RETIRED = "device.retired"


class AuditRecord(msgspec.Struct, frozen=True):
    seq: int
    time: datetime
    actor: str
    device_id: str | None
    event: str
    outcome: str
    detail: str
    prev_hash: str
    hash: str


class AuditNote(msgspec.Struct, frozen=True):
    """An audit record to append in the same transaction as the change it describes, so the
    change and its record commit together (one fsync) or not at all."""

    actor: str
    event: AuditEvent
    outcome: str
    device_id: str | None = None
    detail: str = ""


class AuditProblem(msgspec.Struct, frozen=True):
    """One finding of `verify_audit`; `seq` names the record it is about."""

    seq: int
    kind: Literal["changed", "deleted", "reordered", "inserted"]
    message: str


class AuditTrail(Protocol):
    async def append_audit(
        self,
        *,
        actor: str,
        event: AuditEvent,
        outcome: str,
        device_id: str | None = None,
        detail: str = "",
    ) -> AuditRecord:
        """Append one record to the chain and return it. `detail` must hold no secret."""
        ...

    async def audit_records(
        self, *, device_id: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Oldest first; with `limit`, the newest `limit` records (still oldest first)."""
        ...

    async def verify_audit(self) -> list[AuditProblem]:
        """Every problem found in the chain, in `seq` order; empty when intact."""
        ...


def record_hash(seq: int, payload: Sequence[object], prev_hash: object) -> str:
    """The chain hash of one record from its fields exactly as stored.

    `payload` is (time, actor, device_id, event, outcome, detail). The fields are `object`
    because verification hashes whatever a (possibly tampered) row holds.
    """
    encoded = msgspec.json.encode([seq, *payload, prev_hash])
    return hashlib.sha256(encoded).hexdigest()
