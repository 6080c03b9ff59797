"""API keys: generation, hashing and the SQL of the `api_keys` table.

A key is `zak_` + 32 random bytes (base64url). Only its SHA-256 is stored: with 256 bits of
entropy a stolen hash cannot be brute-forced, so a slow password hash would only cost CPU
on every request. Checking compares the presented hash with every active key's hash using
`hmac.compare_digest` and no early exit, so timing says nothing about which key (if any) was
close. `last_used_at` is written at most once per LAST_USED_RESOLUTION per key, so steady
traffic does not turn every authenticated request into a disk write.

The writing functions run inside the transaction `Database.write` holds, so a key change
and its audit record commit together.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from datetime import datetime, timedelta

import msgspec

from appliance.errors import Conflict, FieldProblem, ValidationFailed
from appliance.storage.models import ApiKeyInfo
from appliance.storage.sql import timestamp_from_text, timestamp_text

API_KEY_PREFIX = "zak_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 64
MIN_CHOSEN_KEY_LENGTH = 20


class ActiveApiKey(msgspec.Struct, frozen=True):
    seq: int
    name: str
    key_hash: bytes
    last_used_at: datetime | None


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


def insert(connection: sqlite3.Connection, name: str, key_hash: bytes, created_at: datetime) -> None:
    try:
        connection.execute(
            "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
            (name, key_hash, timestamp_text(created_at)),
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


def active_keys(connection: sqlite3.Connection) -> list[ActiveApiKey]:
    rows = connection.execute(
        "SELECT seq, name, key_hash, last_used_at FROM api_keys WHERE revoked_at IS NULL"
    ).fetchall()
    return [
        ActiveApiKey(row["seq"], row["name"], row["key_hash"], timestamp_from_text(row["last_used_at"]))
        for row in rows
    ]


def touch(connection: sqlite3.Connection, seq: int, used_at: datetime) -> None:
    connection.execute(
        "UPDATE api_keys SET last_used_at = ? WHERE seq = ? AND revoked_at IS NULL",
        (timestamp_text(used_at), seq),
    )


def all_keys(connection: sqlite3.Connection) -> list[ApiKeyInfo]:
    rows = connection.execute(
        "SELECT name, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at, seq"
    ).fetchall()
    return [
        ApiKeyInfo(
            name=row["name"],
            created_at=datetime.fromisoformat(row["created_at"]),
            revoked_at=timestamp_from_text(row["revoked_at"]),
            last_used_at=timestamp_from_text(row["last_used_at"]),
        )
        for row in rows
    ]


def revoke(connection: sqlite3.Connection, name: str, revoked_at: datetime) -> bool:
    revoked = connection.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        (timestamp_text(revoked_at), name),
    ).rowcount
    return revoked > 0
