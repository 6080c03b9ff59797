"""`zatca-appliance devices list|show|retire|reconcile`: the registry, as the administrator sees it.

Key ids are printed as the token's CKA_ID in hex, so a line here maps to an object in
`pkcs11-tool --list-objects` output.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.domain import DeviceStatus, Environment
from appliance.storage import DeviceRecord


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("devices", help="inspect and reconcile registered devices")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list devices, newest first")
    listing.add_argument("--status", choices=[s.value for s in DeviceStatus])
    listing.add_argument("--environment", choices=[e.value for e in Environment])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument(
        "--expiring-within",
        type=_duration,
        metavar="DURATION",
        help="only active devices whose certificate ends within DURATION (e.g. 30d, 12h), soonest first",
    )
    add_config_option(listing)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one device's metadata (never its secret)")
    show.add_argument("device_id")
    add_config_option(show)
    show.set_defaults(handler=_show)
    retire = actions.add_parser(
        "retire", help="retire an active device: destroy its key in the token, keep its records"
    )
    retire.add_argument("device_id")
    add_config_option(retire)
    retire.set_defaults(handler=_retire)
    reconcile = actions.add_parser("reconcile", help="bring the registry and the token into agreement")
    reconcile.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="pending registrations older than this are interrupted (default: storage.stale_pending_seconds)",
    )
    add_config_option(reconcile)
    reconcile.set_defaults(handler=_reconcile)


def _duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m` or a number of days."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "d")
    try:
        amount = float(number)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected e.g. 30d, 12h or 90m, got {text!r}") from exc
    if amount < 0:
        raise argparse.ArgumentTypeError(f"the duration must not be negative, got {text!r}")
    return timedelta(**{units[unit]: amount})


def _list_expiring(args: argparse.Namespace) -> int:
    within: timedelta = args.expiring_within
    records = with_registry(
        config_from_args(args), lambda registry: registry.expiring_before(datetime.now(UTC) + within)
    )
    records = [
        r
        for r in records
        if (args.environment is None or r.environment == args.environment)
        and (args.status in (None, "active"))
    ][: args.limit]
    print(f"{'DEVICE ID':<36}  {'NOT AFTER':<25}  {'ENVIRONMENT':<11}  {'CSID':<10}  {'VAT':<15}  EGS SERIAL")
    for r in records:
        print(
            f"{r.device_id}  {r.certificate_not_after!s:<25}  {r.environment:<11}  "
            f"{r.credential_kind or '-':<10}  {r.vat}  {r.egs_serial}"
        )
    print(f"({len(records)} active devices expiring within {within})")
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.expiring_within is not None:
        return _list_expiring(args)
    page = with_registry(
        config_from_args(args),
        lambda registry: registry.list_devices(
            limit=args.limit,
            status=DeviceStatus(args.status) if args.status else None,
            environment=Environment(args.environment) if args.environment else None,
        ),
    )
    print(
        f"{'DEVICE ID':<36}  {'STATUS':<7}  {'ENVIRONMENT':<11}  {'FORMAT':<6}  {'VAT':<15}  "
        f"{'EGS SERIAL':<20}  {'CKA_ID':<32}  LABEL"
    )
    for r in page.items:
        print(
            f"{r.device_id}  {r.status:<7}  {r.environment:<11}  {r.invoice_format:<6}  {r.vat}  "
            f"{r.egs_serial:<20}  {r.key_id_hex}  {r.key_label}"
        )
    print(f"({len(page.items)} of {page.total})")
    return 0


def _show(args: argparse.Namespace) -> int:
    record = with_registry(config_from_args(args), lambda registry: registry.get(args.device_id))
    for label, value in _describe(record):
        print(f"{label:<22}{value}")
    return 0


def _describe(r: DeviceRecord) -> list[tuple[str, object]]:
    return [
        ("device id", r.device_id),
        ("status", r.status),
        ("environment", r.environment),
        (
            "invoice format",
            f"{r.invoice_format} (key {'exported once' if r.invoice_format.key_leaves_token else 'sealed'})",
        ),
        ("invoice type", r.invoice_type),
        ("VAT", r.vat),
        ("organization", f"{r.organization_name} / {r.organization_unit} / {r.country}"),
        ("EGS serial", r.egs_serial),
        ("CSR SN", r.serial_number),
        ("location / industry", f"{r.location} / {r.industry}"),
        ("key CKA_ID", r.key_id_hex),
        ("key CKA_LABEL", r.key_label),
        ("ZATCA request id", r.request_id or "-"),
        ("credential", f"{r.credential_kind} CSID" if r.credential_kind else "-"),
        ("compliance request", r.compliance_request_id or "-"),
        (
            "renewal in flight",
            f"{r.renewal_key_label} since {r.renewal_started_at}" if r.renewal_key_id_hex else "-",
        ),
        ("certificate serial", r.certificate_serial or "-"),
        (
            "certificate valid",
            f"{r.certificate_not_before} .. {r.certificate_not_after}" if r.certificate_not_after else "-",
        ),
        ("created", f"{r.created_at} by {r.created_by or '-'}"),
        ("updated", r.updated_at),
        ("failure", f"{r.failure_code}: {r.failure_message}" if r.failure_code else "-"),
        ("retired", f"{r.retired_at} by {r.retired_by}" if r.retired_at else "-"),
    ]


def _retire(args: argparse.Namespace) -> int:
    from appliance.hsm import AsyncKeyStore, KeyStore
    from appliance.services.device_locks import DeviceLocks
    from appliance.services.retirement import retire_device

    config = config_from_args(args)
    store = KeyStore.open(config.hsm)
    try:
        result = with_registry(
            config,
            # Another process than the service: its own locks (the registry's state checks stop
            # what it races with there).
            lambda registry: retire_device(
                AsyncKeyStore(store), registry, args.device_id, actor="cli", locks=DeviceLocks()
            ),
        )
    finally:
        store.close()
    print(
        f"retired {result.record.device_id} (EGS serial {result.record.egs_serial}, VAT {result.record.vat})"
    )
    if not result.key_destroyed:
        print("its key was not found or the token was away; `devices reconcile` destroys it later")
        return 1
    print(f"key destroyed: CKA_ID {result.record.key_id_hex}")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from appliance.hsm import AsyncKeyStore, KeyStore
    from appliance.services.reconcile import reconcile

    config = config_from_args(args)
    older_than = config.storage.stale_pending_seconds if args.older_than is None else args.older_than
    # Opened before the event loop starts; a CLI has nothing else to keep responsive.
    store = KeyStore.open(config.hsm)
    try:
        report = with_registry(
            config,
            lambda registry: reconcile(
                AsyncKeyStore(store), registry, pending_older_than=timedelta(seconds=older_than), actor="cli"
            ),
        )
    finally:
        store.close()
    print(f"interrupted registrations marked failed: {len(report.pending_failed)}")
    print(f"keys destroyed (failed or without a registry row): {len(report.keys_destroyed)}")
    print(f"keys not created by the appliance (left alone): {len(report.unmanaged_keys)}")
    for device_id in report.active_without_key:
        print(f"ACTIVE DEVICE WITHOUT ITS KEY: {device_id}")
    return 0 if report.consistent else 1
