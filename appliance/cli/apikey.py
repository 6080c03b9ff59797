"""`zatca-appliance apikey create|list|revoke`: the service's API keys (stored only as hashes)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.config import AppConfig
from appliance.storage import ACTOR_SYSTEM, SqliteRegistry


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("apikey", help="manage API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("name")
    add_config_option(create)
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="list keys (names and dates only)")
    add_config_option(listing)
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    add_config_option(revoke)
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    print(with_registry(config_from_args(args), lambda registry: registry.create_api_key(args.name)))
    return 0


def _list(args: argparse.Namespace) -> int:
    for info in with_registry(config_from_args(args), lambda registry: registry.list_api_keys()):
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
        print(f"{info.name}\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}\tlast used {used}")
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

    async def ensure(registry: SqliteRegistry) -> tuple[str, bool]:
        if wanted is not None:
            if await registry.authenticate(wanted) is None:
                await registry.add_api_key(f"{name}-given", wanted, actor=ACTOR_SYSTEM)
            return wanted, False
        if remembered and await registry.authenticate(remembered) is not None:
            return remembered, False
        await registry.revoke_api_key(name, actor=ACTOR_SYSTEM)
        return await registry.create_api_key(name, actor=ACTOR_SYSTEM), True

    key, created = with_registry(config, ensure)
    if created:
        fd = os.open(remember_in, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
    return key
