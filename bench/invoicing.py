"""`python -m bench.invoicing`: Model invoicing over HTTP against its in-process floor.

The floor (in this process, the same SoftHSM token): decode the model, render, hash, stamp with
the token signature (sealed key, cached handle), and one durable commit of the signed document
with its chain head and outbox entry (`InvoiceStore.append`, synchronous=FULL): exactly the work
of one invoice, without HTTP, the event loop's thread hops or the device lock.

Then the service (its own process, INFO JSON logs as shipped, the emulator as ZATCA) with 32
Model devices registered through it, at each fleet level (device keys put straight into the token
and active rows into the registry beside them, as `bench.scale` does):

sequential   one client, one device, simplified invoices one after another: p50 / p95 / p99
held         the same while ZATCA holds the device's one delivery in flight (an emulator latency
             fault): the request path alone, without the outbox's and the emulator's CPU, which
             share this machine's two cores here and are remote (ZATCA) in production
load         1, 8 and 32 clients over the 32 devices (client c owns devices c, c + n, ...):
             invoices per second and latencies
drain        after each level, the seconds until the outbox is empty (every invoice reported)

`--runs N` (default 1) measures the floor N times and each level N times in the same service (the
fleet is filled once), each run's ratios against its own floor, and adds a median row: the
machine is shared, so one run says little. `--levels 10` alone takes about 1.5 minutes a run.

Goals (issue 11): sequential p50 at most 2 x the floor p50; 32-client throughput flat from 10 to
10,000 devices; the outbox depth back to 0 after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from appliance.hsm.provision import ensure_dev_token
from appliance.invoices import INITIAL_PIH, decode_invoice_model, render_invoice, stamp_invoice
from appliance.storage import SqliteRegistry
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import NewInvoice
from appliance.storage.sql import utc_now
from bench.clients import auth_headers, register_sequentially
from bench.fleet import create_api_key
from bench.http1 import Connection, ProtocolError
from bench.invoice_core import MODEL, SELLER, token_signer
from bench.processes import Emulator, Service
from bench.scale import populate_fleet
from bench.stats import Summary

INVOICE_DEVICES = 32
CLIENT_COUNTS = (1, 8, 32)
DRAIN_TIMEOUT_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 60.0
HOLD_SECONDS = 15.0


def invoice_body() -> bytes:
    return json.dumps(
        {**MODEL, "Uuid": str(uuid.uuid4()), "InvoiceNumber": f"B-{uuid.uuid4().hex[:12]}"}
    ).encode()


# The floor ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Floor:
    sign: Summary  # decode + render + hash + stamp (token signature)
    commit: Summary  # InvoiceStore.append: one durable transaction
    total: Summary  # the two, measured together per invoice


def measure_floor(home: Path, hsm: Any, count: int) -> Floor:
    device_id = uuid.uuid4()  # the registry rows' device; the token key has its own id
    with token_signer(hsm, "bench-floor") as (sign, certificate_der):

        async def run() -> Floor:
            signing: list[float] = []
            commits: list[float] = []
            totals: list[float] = []
            async with await SqliteRegistry.open(home / "floor" / "registry.sqlite3") as registry:
                invoices = InvoiceStore(registry.database, utc_now)
                previous = INITIAL_PIH
                for icv in range(1, count + 1):
                    body = invoice_body()
                    started = time.perf_counter()
                    model = decode_invoice_model(body)
                    signed = stamp_invoice(
                        render_invoice(model, SELLER, icv=icv, pih=previous), certificate_der, sign
                    )
                    signed_at = time.perf_counter()
                    await invoices.append(
                        NewInvoice(
                            invoice_id=str(uuid.uuid4()),
                            device_id=str(device_id),
                            icv=icv,
                            uuid=model.uuid,
                            invoice_number=model.invoice_number,
                            invoice_hash=signed.invoice_hash,
                            pih=previous,
                            kind="SimplifiedInvoice",
                            simplified=True,
                            signed_xml=signed.xml,
                            qr=signed.qr,
                            body_digest=signed.invoice_hash,
                            source="model",
                        ),
                        expected_position=icv - 1,
                    )
                    done = time.perf_counter()
                    signing.append(signed_at - started)
                    commits.append(done - signed_at)
                    totals.append(done - started)
                    previous = signed.invoice_hash
            return Floor(Summary.of(signing), Summary.of(commits), Summary.of(totals))

        return anyio.run(run)


# The service --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    clients: int
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.wall_seconds if self.wall_seconds else 0.0


@dataclass(frozen=True, slots=True)
class Level:
    devices: int  # device keys and active rows in place (the 32 invoicing devices included)
    sequential: Summary
    # The same with ZATCA holding the device's one delivery in flight: the request path alone,
    # without the outbox and the emulator (on the same two cores here, remote in production).
    held: Summary
    loads: list[Load]
    drain_seconds: float
    outbox_depth_after: int


def run_load(
    base_url: str, api_key: str, devices: list[str], clients: int, total: int, *, client: str = "lean"
) -> Load:
    """`clients` POS clients, each on its own keep-alive connection, `total` invoices between them.

    `client`: "lean" (`bench.http1`, the default: a minimal HTTP/1.1 client, so the latency is the
    service's) or "httpx" (an `httpx.AsyncClient`, about a millisecond more per call here).
    """

    async def main() -> Load:
        load = Load(clients)
        bodies = [[invoice_body() for _ in range(total // clients)] for _ in range(clients)]
        post, close = await _poster(base_url, api_key, clients, client)

        async def one_client(index: int) -> None:
            own = devices[index::clients]
            for n, body in enumerate(bodies[index]):
                started = time.perf_counter()
                try:
                    status = await post(index, f"/v1/Devices/{own[n % len(own)]}/Invoices", body)
                except (httpx.HTTPError, ProtocolError) as exc:
                    load.errors[type(exc).__name__] = load.errors.get(type(exc).__name__, 0) + 1
                    continue
                if status == 201:
                    load.latencies.append(time.perf_counter() - started)
                else:
                    kind = f"HTTP {status}"
                    load.errors[kind] = load.errors.get(kind, 0) + 1

        try:
            started = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for index in range(clients):
                    group.create_task(one_client(index))
            load.wall_seconds = time.perf_counter() - started
        finally:
            await close()
        return load

    return asyncio.run(main())


Send = Callable[[int, str, bytes], Awaitable[int]]  # (client index, path, JSON body) -> status code


async def _poster(
    base_url: str, api_key: str, clients: int, client: str
) -> tuple[Send, Callable[[], Awaitable[None]]]:
    if client == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        pool = httpx.AsyncClient(
            base_url=base_url, headers=auth_headers(api_key), timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
        )

        async def send_httpx(_: int, path: str, body: bytes) -> int:
            response = await pool.post(path, content=body, headers={"Content-Type": "application/json"})
            return response.status_code

        return send_httpx, pool.aclose
    connections = [Connection(base_url, auth_headers(api_key)) for _ in range(clients)]

    async def send_lean(index: int, path: str, body: bytes) -> int:
        request = connections[index].request("POST", path, body)
        response = await asyncio.wait_for(request, REQUEST_TIMEOUT_SECONDS)
        return response.status_code

    async def close_all() -> None:
        for connection in connections:
            await connection.close()

    return send_lean, close_all


def outbox_depth(registry_path: Path) -> int:
    with sqlite3.connect(f"file:{registry_path}?mode=ro", uri=True) as connection:
        (depth,) = connection.execute("SELECT count(*) FROM invoice_outbox").fetchone()
    return int(depth)


def wait_for_drain(registry_path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    while (depth := outbox_depth(registry_path)) and time.perf_counter() - started < DRAIN_TIMEOUT_SECONDS:
        time.sleep(0.2)
    return time.perf_counter() - started, depth


def wait_for_first_reconciliation(service: Service) -> float:
    """Seconds until the start-up reconciliation pass has run (it sets the token key gauge).

    That pass lists every key in the token (seconds with 10,000 keys) and holds the token while
    it does; measuring during it measures the start-up, not invoicing.
    """
    started = time.perf_counter()
    pattern = re.compile(r"^zatca_appliance_token_device_keys (\S+)$", re.MULTILINE)
    while time.perf_counter() - started < DRAIN_TIMEOUT_SECONDS:
        match = pattern.search(httpx.get(f"{service.base_url}/metrics", timeout=10).text)
        if match is not None and float(match.group(1)) > 0:
            break
        time.sleep(0.2)
    return time.perf_counter() - started


def hold_deliveries(emulator: Emulator, seconds: float) -> None:
    fault = {"kind": "latency", "count": 1, "seconds": seconds, "endpoint": "reporting"}
    httpx.post(f"{emulator.base_url}/emulator/faults", json=fault, timeout=10).raise_for_status()


def measure_level(
    service: Service,
    emulator: Emulator,
    api_key: str,
    devices: list[str],
    *,
    in_place: int,
    sequential: int,
    load_total: int,
) -> Level:
    # First use of each key after a start costs a token scan (docs/benchmark.md, finding 5).
    run_load(service.base_url, api_key, devices, INVOICE_DEVICES, 2 * INVOICE_DEVICES)
    # Each run starts with an empty outbox, so none pays for the previous one's deliveries.
    wait_for_drain(service.registry_path)
    one = run_load(service.base_url, api_key, devices[:1], 1, sequential)
    wait_for_drain(service.registry_path)
    hold_deliveries(emulator, HOLD_SECONDS)
    held = run_load(service.base_url, api_key, devices[:1], 1, sequential)
    loads = []
    for clients in CLIENT_COUNTS:
        wait_for_drain(service.registry_path)
        loads.append(run_load(service.base_url, api_key, devices, clients, load_total))
    drain_seconds, depth = wait_for_drain(service.registry_path)
    return Level(in_place, Summary.of(one.latencies), Summary.of(held.latencies), loads, drain_seconds, depth)


def measure(
    home: Path,
    levels: list[int],
    floor_count: int,
    sequential: int,
    load_total: int,
    *,
    runs: int = 1,
    emulator_nice: int = 0,
) -> str:
    hsm = ensure_dev_token(home / "token")
    floors = []
    for run in range(runs):
        progress(f"floor (run {run + 1}): {floor_count} invoices in process")
        floors.append(measure_floor(home / f"floor-{run}", hsm, floor_count))
    emulator = Emulator(home / "emulator" / "data")
    if emulator_nice:
        emulator.lower_priority(emulator_nice)
    results: list[list[Level]] = []
    try:
        service = Service(home / "service", hsm, emulator)
        api_key = create_api_key(service.registry_path)
        filler: list[uuid.UUID] = []
        devices: list[str] = []
        for level in levels:
            added = [uuid.uuid4() for _ in range(max(0, level - len(filler)))]
            progress(f"level {level}: adding {len(added)} device keys and rows")
            populated, _ = populate_fleet(home, hsm, service.registry_path, added)
            progress(f"  {populated.keys} keys in {populated.seconds:.1f} s")
            filler += added
            # The floor again with this fleet's keys in the token (the service stopped): what the
            # token alone adds at this level.
            here = measure_floor(home / f"floor-at-{level}", hsm, floor_count // 3)
            progress(
                f"  floor with {len(filler)} filler keys: sign {here.sign.median_ms:.2f}, commit"
                f" {here.commit.median_ms:.2f}, total {here.total.median_ms:.2f} ms (p50)"
            )
            service.start()
            try:
                progress(
                    f"  start-up reconciliation done after {wait_for_first_reconciliation(service):.1f} s"
                )
                if not devices:
                    registered = register_sequentially(service.base_url, api_key, INVOICE_DEVICES)
                    if len(registered.device_ids) != INVOICE_DEVICES:
                        raise RuntimeError(f"registration failed: {registered.errors}")
                    devices = registered.device_ids
                in_place = len(filler) + len(devices)
                level_runs = []
                for run in range(runs):
                    progress(f"level {level}: measuring with {in_place} devices (run {run + 1})")
                    level_runs.append(
                        measure_level(
                            service,
                            emulator,
                            api_key,
                            devices,
                            in_place=in_place,
                            sequential=sequential,
                            load_total=load_total,
                        )
                    )
                results.append(level_runs)
            finally:
                service.stop()
    finally:
        emulator.stop()
    return "\n\n".join(
        [
            *(
                render(floor, [runs_of[run] for runs_of in results], f"Run {run + 1}")
                for run, floor in enumerate(floors)
            ),
            *([render_medians(floors, results)] if runs > 1 else []),
        ]
    )


def render_medians(floors: list[Floor], results: list[list[Level]]) -> str:
    """Per level, the median over runs of each figure (ratios against each run's own floor)."""
    floor_p50 = statistics.median(floor.total.median_ms for floor in floors)
    lines = [
        f"Medians over {len(floors)} runs (floor p50 {floor_p50:.2f} ms; sign"
        f" {statistics.median(f.sign.median_ms for f in floors):.2f}, commit"
        f" {statistics.median(f.commit.median_ms for f in floors):.2f}):",
        "",
        "| devices | sequential p50 (x floor) | held p50 (x floor) | 1 / 8 / 32 clients /s"
        " | drained in | depth after |",
        "|---:|---|---|---|---:|---:|",
    ]
    for level_runs in results:
        pairs = list(zip(floors, level_runs, strict=True))
        seq = statistics.median(level.sequential.median_ms for level in level_runs)
        seq_x = statistics.median(level.sequential.median_ms / f.total.median_ms for f, level in pairs)
        held = statistics.median(level.held.median_ms for level in level_runs)
        held_x = statistics.median(level.held.median_ms / f.total.median_ms for f, level in pairs)
        rates = [
            statistics.median(
                next(load for load in level.loads if load.clients == clients).per_second
                for level in level_runs
            )
            for clients in CLIENT_COUNTS
        ]
        drained = statistics.median(level.drain_seconds for level in level_runs)
        depth = max(level.outbox_depth_after for level in level_runs)
        lines.append(
            f"| {level_runs[0].devices:,} | {seq:.1f} ({seq_x:.2f}x) | {held:.1f} ({held_x:.2f}x)"
            f" | {' / '.join(f'{rate:.0f}' for rate in rates)} | {drained:.1f} s | {depth} |"
        )
    return "\n".join(lines)


def render(floor: Floor, levels: list[Level], title: str = "") -> str:
    lines = [
        f"{title}{': f' if title else 'F'}loor (in process, one invoice at a time):",
        "",
        "| step | p50 ms | p95 ms |",
        "|---|---:|---:|",
        *(
            f"| {name} | {summary.median_ms:.2f} | {summary.p95_ms:.2f} |"
            for name, summary in (
                ("decode + render + hash + stamp (token signature)", floor.sign),
                ("durable commit (invoice + head + outbox)", floor.commit),
                ("floor: the two together", floor.total),
            )
        ),
        "",
        "| devices | sequential p50 / p95 / p99 ms (x floor p50) | deliveries held: p50 / p95 (x floor)"
        " | 1 client /s | 8 clients /s | 32 clients /s"
        " | 32 clients p50 / p95 ms | errors | outbox drained in | depth after |",
        "|---:|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for level in levels:
        s = level.sequential
        by_clients = {load.clients: load for load in level.loads}
        widest = by_clients[32]
        wide = Summary.of(widest.latencies)
        errors = {kind: n for load in level.loads for kind, n in load.errors.items()}
        lines.append(
            f"| {level.devices:,} | {s.median_ms:.1f} / {s.p95_ms:.1f} / {s.p99_ms:.1f}"
            f" ({s.median_ms / floor.total.median_ms:.2f}x) | {level.held.median_ms:.1f} /"
            f" {level.held.p95_ms:.1f} ({level.held.median_ms / floor.total.median_ms:.2f}x)"
            f" | {by_clients[1].per_second:.0f}"
            f" | {by_clients[8].per_second:.0f} | {widest.per_second:.0f}"
            f" | {wide.median_ms:.0f} / {wide.p95_ms:.0f} | {errors or 0} | {level.drain_seconds:.1f} s"
            f" | {level.outbox_depth_after} |"
        )
    return "\n".join(lines)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", default="10,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--floor", type=int, default=300, help="invoices timed in process")
    parser.add_argument("--sequential", type=int, default=300, help="invoices timed one after another")
    parser.add_argument("--load", type=int, default=640, help="invoices per load run")
    parser.add_argument("--runs", type=int, default=1, help="measure the floor and each level this often")
    parser.add_argument(
        "--emulator-nice", type=int, default=0, help="run the emulator (ZATCA's stand-in) at this nice value"
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-invoicing-") as directory:
        print(
            measure(
                Path(directory),
                levels,
                args.floor,
                args.sequential,
                args.load,
                runs=args.runs,
                emulator_nice=args.emulator_nice,
            )
        )


if __name__ == "__main__":
    main()
