"""`zatca-appliance apikey create|list|revoke`: the service's API keys (stored only as hashes).

`create NAME [--vat V ...] [--role R ...] [--registrations-per-hour N]`: without `--vat` the key
serves every VAT; without `--role` it may register, invoice and read (not retire others'
devices: that takes `admin`). The key goes to stdout (for scripts), its id to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.config import AppConfig
from appliance.domain import ApiKeyRole
from appliance.storage import ACTOR_SYSTEM, SqliteRegistry
from appliance.storage.apikeys import DEFAULT_ROLES, NewApiKey


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("apikey", help="manage API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("name", help="never reused, also after revocation")
    create.add_argument(
        "--vat", action="append", metavar="VAT", help="a VAT the key may act for (repeat; default: every VAT)"
    )
    create.add_argument(
        "--role",
        action="append",
        choices=[role.value for role in ApiKeyRole],
        help=f"what the key may do (repeat; default: {', '.join(sorted(DEFAULT_ROLES))})",
    )
    create.add_argument(
        "--registrations-per-hour", type=int, metavar="N", help="registration quota (default: none)"
    )
    add_config_option(create)
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="list keys (names and dates only)")
    add_config_option(listing)
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by name or id")
    revoke.add_argument("name", metavar="NAME_OR_ID")
    add_config_option(revoke)
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    request = NewApiKey(
        name=args.name,
        roles=frozenset(ApiKeyRole(role) for role in args.role) if args.role else DEFAULT_ROLES,
        vats=frozenset(args.vat) if args.vat else None,
        registrations_per_hour=args.registrations_per_hour,
    )
    key, key_id = with_registry(
        config_from_args(args), lambda registry: registry.create_scoped_api_key(request)
    )
    print(key)
    print(f"key id: {key_id}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    for info in with_registry(config_from_args(args), lambda registry: registry.list_api_keys()):
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
        vats = "all VATs" if info.vats is None else "VAT " + ",".join(sorted(info.vats))
        quota = f"\t{info.registrations_per_hour}/h" if info.registrations_per_hour else ""
        print(
            f"{info.key_id}\t{info.name}\t{','.join(sorted(info.roles))}\t{vats}{quota}"
            f"\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}\tlast used {used}"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if with_registry(config_from_args(args), lambda registry: registry.revoke_api_key(args.name)):
        print(f"revoked {args.name}")
        return 0
    print(f"zatca-appliance: no active API key named {args.name!r}")
    return 1


def ensure_api_key(config: AppConfig, name: str, wanted: str | None, remember_in: Path) -> str:
    """The development key: the one asked for, else the one made earlier, else a new one."""
    remembered = remember_in.read_text(encoding="utf-8").strip() if remember_in.exists() else None

    # Names are never reused, so each new development key gets a name of its own.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")

    async def ensure(registry: SqliteRegistry) -> tuple[str, bool]:
        if wanted is not None:
            if await registry.authenticate(wanted) is None:
                await registry.add_api_key(f"{name}-given-{stamp}", wanted, actor=ACTOR_SYSTEM)
            return wanted, False
        if remembered and await registry.authenticate(remembered) is not None:
            return remembered, False
        for info in await registry.list_api_keys():
            if info.revoked_at is None and (info.name == name or info.name.startswith(f"{name}-20")):
                await registry.revoke_api_key(info.key_id, actor=ACTOR_SYSTEM)
        # The developer's own key: every role, so retirement can be tried too.
        key, _ = await registry.create_scoped_api_key(
            NewApiKey(name=f"{name}-{stamp}", roles=frozenset({ApiKeyRole.ADMIN})), actor=ACTOR_SYSTEM
        )
        return key, True

    key, created = with_registry(config, ensure)
    if created:
        fd = os.open(remember_in, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
    return key
