"""`zatca-appliance invoices verify-chain|list|show`: a device's stored invoices, for the administrator.

Read-only, so they run beside the service (SQLite in WAL mode allows concurrent readers).
`verify-chain` re-checks every stored document of a device in chain order: positions and ICVs
consecutive, each PIH the previous document's hash (the first the initial PIH), each hash
recomputed from the stored bytes, each stamp verified (with the certificate embedded in it, so
documents signed before a certificate renewal still verify). Exit 1 naming the first break.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from appliance.cli.common import add_config_option, config_from_args, with_registry
from appliance.invoices.hashing import invoice_hash
from appliance.invoices.namespaces import INITIAL_PIH
from appliance.invoices.verify import verify_invoice
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import InvoicePage, InvoiceRecord, InvoiceStatus
from appliance.storage.sql import utc_now

T = TypeVar("T")

EXIT_BROKEN = 1
_BATCH = 500


def register(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("invoices", help="inspect and verify stored invoices")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify-chain", help="re-check a device's whole chain; exit 1 at the first break"
    )
    verify.add_argument("--device-id", required=True)
    add_config_option(verify)
    verify.set_defaults(handler=_verify_chain)
    listing = actions.add_parser("list", help="a device's invoices, newest first")
    listing.add_argument("--device-id", required=True)
    listing.add_argument("--status", choices=[s.value for s in InvoiceStatus])
    listing.add_argument("--limit", type=int, default=100)
    add_config_option(listing)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one invoice: status, hashes, ZATCA's messages")
    show.add_argument("invoice_id")
    show.add_argument("--xml", action="store_true", help="print the signed (or cleared) document instead")
    add_config_option(show)
    show.set_defaults(handler=_show)


def _with_store(args: argparse.Namespace, use: Callable[[InvoiceStore], Awaitable[T]]) -> T:
    return with_registry(
        config_from_args(args), lambda registry: use(InvoiceStore(registry.database, utc_now))
    )


def chain_break(previous: InvoiceRecord | None, record: InvoiceRecord) -> str | None:
    """What is wrong with `record` as the successor of `previous` (None: the link holds)."""
    where = f"position {record.position} (ICV {record.icv}, invoice {record.invoice_id})"
    expected_position = 1 if previous is None else previous.position + 1
    if record.position != expected_position:
        return f"{where}: expected position {expected_position}; a document is missing"
    expected_icv = 1 if previous is None else previous.icv + 1
    if record.icv != expected_icv:
        return f"{where}: ICV {record.icv} does not follow ICV {expected_icv - 1}"
    expected_pih = INITIAL_PIH if previous is None else previous.invoice_hash
    if record.pih != expected_pih:
        return f"{where}: PIH is not the previous document's hash"
    recomputed = invoice_hash(record.signed_xml)
    if recomputed != record.invoice_hash:
        return f"{where}: stored hash {record.invoice_hash} but the document hashes to {recomputed}"
    report = verify_invoice(record.signed_xml, None, expected_pih)
    if not report.ok:
        failed = "; ".join(f"{check.name}: {check.reason}" for check in report.failed)
        return f"{where}: {failed}"
    return None


def _verify_chain(args: argparse.Namespace) -> int:
    async def verify(store: InvoiceStore) -> tuple[int, str | None]:
        previous: InvoiceRecord | None = None
        count = 0
        while True:
            batch = await store.chain(args.device_id, 0 if previous is None else previous.position, _BATCH)
            if not batch:
                return count, None
            for record in batch:
                problem = await anyio.to_thread.run_sync(chain_break, previous, record)
                if problem is not None:
                    return count, problem
                previous = record
                count += 1

    count, problem = _with_store(args, verify)
    if problem is not None:
        print(f"chain broken after {count} good document(s): {problem}", file=sys.stderr)
        return EXIT_BROKEN
    print(f"chain intact: {count} document(s) of device {args.device_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    status = InvoiceStatus(args.status) if args.status else None

    async def page(store: InvoiceStore) -> InvoicePage:
        return await store.list_invoices(args.device_id, status=status, limit=args.limit)

    result: InvoicePage = _with_store(args, page)
    for r in result.items:
        print(
            f"{r.icv:>8}  {r.status:<20} {r.kind:<22} {r.invoice_number:<24} {r.invoice_id}  {r.created_at}"
        )
    print(f"{len(result.items)} of {result.total} invoice(s)", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    async def get(store: InvoiceStore) -> InvoiceRecord:
        return await store.get(args.invoice_id)

    r: InvoiceRecord = _with_store(args, get)
    if args.xml:
        sys.stdout.buffer.write(r.cleared_xml if r.cleared_xml is not None else r.signed_xml)
        return 0
    for label, value in (
        ("invoice id", r.invoice_id),
        ("device id", r.device_id),
        ("status", r.status),
        ("kind", f"{r.kind} ({r.source})"),
        ("invoice number", r.invoice_number),
        ("uuid", r.uuid),
        ("ICV / position", f"{r.icv} / {r.position}"),
        ("invoice hash", r.invoice_hash),
        ("PIH", r.pih),
        ("ZATCA HTTP status", r.http_status),
        ("attempts", r.attempts),
        ("created", r.created_at),
        ("delivered", r.delivered_at),
        ("cleared document", "yes" if r.cleared_xml is not None else "no"),
    ):
        print(f"{label:<20}{value}")
    for kind, messages in (
        ("info", r.info_messages),
        ("warning", r.warning_messages),
        ("error", r.error_messages),
    ):
        for m in messages:
            print(f"{kind:<20}{m.code} [{m.category}] {m.message}")
    return 0
