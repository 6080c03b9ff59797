"""Options several commands share: where the configuration and the token are."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import msgspec

from appliance.config import AppConfig, HsmSettings, load_config
from appliance.storage import SqliteRegistry

T = TypeVar("T")


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="YAML configuration file (see config.example.yaml)")


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """Token selection; the PIN is read from a file, never taken as an argument."""
    add_config_option(parser)
    group = parser.add_argument_group("token (override the configuration file)")
    group.add_argument("--module", metavar="PATH", help="PKCS#11 module path")
    group.add_argument("--token-label", metavar="LABEL", help="token label")
    group.add_argument("--token-uri", metavar="URI", help="RFC 7512 pkcs11: URI of the token")
    group.add_argument("--pin-file", metavar="PATH", help="file holding the token user PIN")
    group.add_argument("--softhsm-conf", metavar="PATH", help="SoftHSM configuration (SOFTHSM2_CONF)")


def config_from_args(args: argparse.Namespace) -> AppConfig:
    return load_config(args.config) if getattr(args, "config", None) else AppConfig()


def hsm_settings_from_args(args: argparse.Namespace) -> HsmSettings:
    """The configuration file's token settings, with any command-line overrides applied."""
    settings = config_from_args(args).hsm
    overrides = {
        name: value
        for name in ("module", "token_label", "token_uri", "pin_file", "softhsm_conf")
        if (value := getattr(args, name, None)) is not None
    }
    if "pin_file" in overrides:
        overrides.update(pin_env=None, pin_credential=None)
    if "token_uri" in overrides:
        overrides["token_label"] = None
    elif "token_label" in overrides:
        overrides["token_uri"] = None
    return msgspec.structs.replace(settings, **overrides)


def with_registry(config: AppConfig, use: Callable[[SqliteRegistry], Awaitable[T]]) -> T:
    """Open the configured registry, run `use` on it, close it; for one-shot commands."""

    async def run() -> T:
        async with await SqliteRegistry.open(config.storage.registry_path) as registry:
            return await use(registry)

    return anyio.run(run)
