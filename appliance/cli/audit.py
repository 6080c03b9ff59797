"""`zatca-appliance audit verify|show`: check the audit trail's hash chain, and read it.

`verify` prints the head hash so the operator can keep it somewhere the appliance cannot
write; `--expect-head` later proves that record is still in the trail. Without such an anchor
a trail cut short at its end, or rewritten whole, still verifies (see appliance.storage.audit).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.config import AppConfig
from appliance.errors import StorageError
from appliance.storage import GENESIS_HASH, AuditProblem, AuditRecord, SqliteRegistry

_HASH = re.compile(r"[0-9a-f]{64}")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("audit", help="verify and read the audit trail")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check the hash chain and print its head hash")
    verify.add_argument(
        "--expect-head",
        type=_chain_hash,
        metavar="HASH",
        help="a head hash noted earlier: fail unless that record is still in the trail",
    )
    add_config_option(verify)
    verify.set_defaults(handler=_verify)
    show = actions.add_parser("show", help="the records as a table, oldest first")
    show.add_argument("--device", metavar="ID", help="only records about this device id")
    show.add_argument("--limit", type=_positive, metavar="N", help="only the newest N records")
    add_config_option(show)
    show.set_defaults(handler=_show)


def _chain_hash(text: str) -> str:
    normalized = text.strip().lower()
    if not _HASH.fullmatch(normalized):
        raise argparse.ArgumentTypeError("a hash is 64 hexadecimal characters")
    return normalized


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number of 1 or more")
    return value


def _config_with_registry(args: argparse.Namespace) -> AppConfig:
    config = config_from_args(args)
    path = config.storage.registry_path
    # Opening creates a missing registry; an empty one made from a typo must not verify as intact.
    if not path.exists():
        raise StorageError(f"no registry at {path} (check storage.data_dir)")
    return config


def _verify(args: argparse.Namespace) -> int:
    async def verify(
        registry: SqliteRegistry,
    ) -> tuple[list[AuditProblem], AuditRecord | None, AuditRecord | None]:
        problems = await registry.verify_audit()
        head = await registry.audit_head()
        anchor = await registry.find_audit_record(args.expect_head) if args.expect_head else None
        return problems, head, anchor

    problems, head, anchor = with_registry(_config_with_registry(args), verify)
    if problems:
        print(f"audit trail NOT intact: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  seq {problem.seq} {problem.kind}: {problem.message}")
    else:
        count = 0 if head is None else head.seq
        print(f"audit trail intact: {count} records, head {GENESIS_HASH if head is None else head.hash}")
    if args.expect_head is None:
        return 1 if problems else 0
    if anchor is None:
        print(
            f"expected head {args.expect_head} is NOT in the trail: "
            "records were removed from its end, or it was rewritten"
        )
        return 1
    newer = 0 if head is None else head.seq - anchor.seq
    print(f"expected head found at seq {anchor.seq}; {newer} record(s) appended since")
    return 1 if problems else 0


def _show(args: argparse.Namespace) -> int:
    async def show(registry: SqliteRegistry) -> list[AuditRecord]:
        return await registry.audit_records(device_id=args.device, limit=args.limit)

    records = with_registry(_config_with_registry(args), show)
    if not records:
        print("no audit records" + (f" for device {args.device}" if args.device else ""))
        return 0
    header = ("SEQ", "TIME (UTC)", "ACTOR", "DEVICE", "EVENT", "OUTCOME", "DETAIL")
    rows = [
        (
            str(r.seq),
            f"{r.time:%Y-%m-%d %H:%M:%S}",
            _printable(r.actor),
            _printable(r.device_id or "-"),
            _printable(r.event),
            _printable(r.outcome),
            _printable(r.detail),
        )
        for r in records
    ]
    for line in _table([header, *rows]):
        print(line)
    return 0


def _printable(text: str) -> str:
    # Actors, details and device ids may come from clients or ZATCA: no terminal control codes.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _table(lines: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    # The last column is left unpadded: no trailing spaces after a long detail.
    widths[-1] = 0
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
