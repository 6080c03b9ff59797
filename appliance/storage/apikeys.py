"""API keys: generation, hashing and the SQL of the `api_keys` table.

A key is `zak_` + 32 random bytes (base64url). Only its SHA-256 is stored: with 256 bits of
entropy a stolen hash cannot be brute-forced, so a slow password hash would only cost CPU
on every request. Checking compares the presented hash with every active key's hash using
`hmac.compare_digest` and no early exit, so timing says nothing about which key (if any) was
close. `last_used_at` is written at most once per LAST_USED_RESOLUTION per key, so steady
traffic does not turn every authenticated request into a disk write.

The writing functions run inside the transaction `Database.write` holds, so a key change
and its audit record commit together.

Every key has an id (`key_` + 16 hex digits) that the audit trail and `created_by` record, and
a name that is never given to another key, revoked or not: a record naming a key names one key.
`roles` and `vats` are JSON arrays; `vats` NULL means every VAT.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from datetime import datetime, timedelta

import msgspec

from appliance.domain import ApiKeyRole
from appliance.errors import Conflict, FieldProblem, ValidationFailed
from appliance.storage.models import ApiKeyInfo, ApiKeyScope
from appliance.storage.sql import timestamp_from_text, timestamp_text

API_KEY_PREFIX = "zak_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 64
MIN_CHOSEN_KEY_LENGTH = 20


DEFAULT_ROLES = frozenset({ApiKeyRole.REGISTER, ApiKeyRole.INVOICE, ApiKeyRole.READ})
_VAT_NUMBER = re.compile(r"3[0-9]{13}3")


class ActiveApiKey(msgspec.Struct, frozen=True):
    seq: int
    key_hash: bytes
    last_used_at: datetime | None
    scope: ApiKeyScope


class NewApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """What an administrator asks for; checked by `check_scope`."""

    name: str
    roles: frozenset[ApiKeyRole] = DEFAULT_ROLES
    vats: frozenset[str] | None = None
    registrations_per_hour: int | None = None


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    # surrogatepass: any str a header decoder produced hashes instead of raising.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def check_name(name: str) -> None:
    if not name or name != name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ValidationFailed(
            [FieldProblem("name", f"1 to {MAX_NAME_LENGTH} printable characters, no surrounding spaces")]
        )
    if name.startswith("key_"):
        # `apikey revoke` takes a name or an id; a name shaped like an id would be ambiguous.
        raise ValidationFailed([FieldProblem("name", "may not start with `key_` (the form of key ids)")])


def check_scope(request: NewApiKey) -> None:
    problems = []
    if not request.roles:
        problems.append(FieldProblem("role", "give at least one role: " + ", ".join(ApiKeyRole)))
    if request.vats is not None and not request.vats:
        problems.append(
            FieldProblem("vat", "an empty VAT list would let the key see nothing; omit it for all")
        )
    bad = sorted(vat for vat in request.vats or () if not _VAT_NUMBER.fullmatch(vat))
    if bad:
        problems.append(FieldProblem("vat", f"15 digits that start and end with 3; got {', '.join(bad)}"))
    if request.registrations_per_hour is not None and request.registrations_per_hour < 1:
        problems.append(FieldProblem("registrations_per_hour", "must be 1 or more"))
    if problems:
        raise ValidationFailed(problems)


def check_chosen_key(key: str) -> None:
    # Generated keys need no check; a chosen one must not be guessable from its fast hash.
    if len(key) < MIN_CHOSEN_KEY_LENGTH or not key.isascii() or not key.isprintable() or key != key.strip():
        raise ValidationFailed(
            [
                FieldProblem(
                    "key", f"at least {MIN_CHOSEN_KEY_LENGTH} printable ASCII characters, no spaces around"
                )
            ]
        )


def find_match(presented_hash: bytes, candidates: list[ActiveApiKey]) -> ActiveApiKey | None:
    match = None
    for candidate in candidates:
        if hmac.compare_digest(presented_hash, candidate.key_hash):
            match = candidate
    return match


def needs_touch(key: ActiveApiKey, now: datetime) -> bool:
    return key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


def insert(
    connection: sqlite3.Connection,
    request: NewApiKey,
    key_hash: bytes,
    created_at: datetime,
    created_by: str,
) -> str:
    """Store the key; its new id is returned. `Conflict` if the name was ever used."""
    name = request.name
    if connection.execute(
        "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NOT NULL", (name,)
    ).fetchone():
        # Audit records and `apikey list` name keys; a name that came back would blur them.
        raise Conflict(f"an API key named {name!r} existed and was revoked; names are never reused", "")
    key_id = new_key_id()
    try:
        connection.execute(
            "INSERT INTO api_keys (key_id, name, key_hash, roles, vats, registrations_per_hour,"
            " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                name,
                key_hash,
                _json_list(request.roles),
                None if request.vats is None else _json_list(request.vats),
                request.registrations_per_hour,
                timestamp_text(created_at),
                created_by,
            ),
        )
    except sqlite3.IntegrityError as exc:
        # Conflict's second argument names a device; an API key has none to name.
        if connection.execute(
            "SELECT 1 FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)
        ).fetchone():
            raise Conflict(f"an active API key named {name!r} already exists", "") from exc
        if connection.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone():
            raise Conflict("this key was issued before (and may be revoked); choose another", "") from exc
        raise
    return key_id


def _json_list(values: frozenset[str]) -> str:
    return msgspec.json.encode(sorted(values)).decode()


def _scope(row: sqlite3.Row) -> ApiKeyScope:
    vats = row["vats"]
    return ApiKeyScope(
        key_id=row["key_id"],
        name=row["name"],
        roles=frozenset(msgspec.json.decode(row["roles"], type=list[ApiKeyRole])),
        vats=None if vats is None else frozenset(msgspec.json.decode(vats, type=list[str])),
        registrations_per_hour=row["registrations_per_hour"],
    )


def active_keys(connection: sqlite3.Connection) -> list[ActiveApiKey]:
    rows = connection.execute(
        "SELECT seq, key_id, name, key_hash, roles, vats, registrations_per_hour, last_used_at"
        " FROM api_keys WHERE revoked_at IS NULL"
    ).fetchall()
    return [
        ActiveApiKey(row["seq"], row["key_hash"], timestamp_from_text(row["last_used_at"]), _scope(row))
        for row in rows
    ]


def touch(connection: sqlite3.Connection, seq: int, used_at: datetime) -> None:
    connection.execute(
        "UPDATE api_keys SET last_used_at = ? WHERE seq = ? AND revoked_at IS NULL",
        (timestamp_text(used_at), seq),
    )


def all_keys(connection: sqlite3.Connection) -> list[ApiKeyInfo]:
    rows = connection.execute("SELECT * FROM api_keys ORDER BY created_at, seq").fetchall()
    infos = []
    for row in rows:
        scope = _scope(row)
        infos.append(
            ApiKeyInfo(
                name=row["name"],
                created_at=datetime.fromisoformat(row["created_at"]),
                revoked_at=timestamp_from_text(row["revoked_at"]),
                last_used_at=timestamp_from_text(row["last_used_at"]),
                key_id=scope.key_id,
                roles=scope.roles,
                vats=scope.vats,
                registrations_per_hour=scope.registrations_per_hour,
            )
        )
    return infos


def revoke(connection: sqlite3.Connection, name_or_id: str, revoked_at: datetime) -> str | None:
    """Revoke the active key with this name or id; its id, or None if there was none."""
    row = connection.execute(
        "SELECT key_id FROM api_keys WHERE (name = ? OR key_id = ?) AND revoked_at IS NULL",
        (name_or_id, name_or_id),
    ).fetchone()
    if row is None:
        return None
    connection.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (timestamp_text(revoked_at), row["key_id"])
    )
    return str(row["key_id"])
