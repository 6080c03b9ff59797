"""`python -m bench [--quick] [--keep] [--output FILE]`: the whole benchmark in one run.

Everything happens on this machine, in a temporary directory: fresh SoftHSM tokens (one per
phase), the emulator and the service on 127.0.0.1. Prints the markdown report and writes the
raw figures as JSON to bench/results/<date>.json (or --output).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from appliance.hsm.provision import ensure_dev_token
from bench.backend_check import BackendCheck, check_db_backend
from bench.floor import Floor, measure_floor
from bench.machine import Machine, describe_machine
from bench.processes import REPOSITORY_ROOT, Emulator
from bench.reference import Reference, measure_reference
from bench.report import render_report
from bench.scale import ScaleLevel, ScalePlan, measure_scale
from bench.service_phases import Sequential, Throughput, measure_sequential, measure_throughput

PHASES = ("floor", "reference", "sequential", "throughput", "scale")


@dataclass(frozen=True, slots=True)
class Plan:
    floor: int
    reference: int
    sequential: int
    sequential_xml: int
    throughput: tuple[tuple[int, int], ...]  # (clients, registrations)
    throughput_rounds: int
    scale: ScalePlan


DEFAULT_PLAN = Plan(
    floor=200,
    reference=200,
    sequential=200,
    sequential_xml=50,
    throughput=((1, 100), (8, 320), (32, 640)),
    throughput_rounds=3,
    scale=ScalePlan(
        levels=(10, 1_000, 10_000),
        registrations=40,
        xml_registrations=10,
        load_clients=8,
        load_registrations=64,
        device_gets=300,
        signs=300,
        keygens=5,
    ),
)
QUICK_PLAN = Plan(
    floor=30,
    reference=30,
    sequential=30,
    sequential_xml=10,
    throughput=((1, 20), (8, 48), (32, 96)),
    throughput_rounds=1,
    scale=ScalePlan(
        levels=(10, 300),
        registrations=10,
        xml_registrations=3,
        load_clients=8,
        load_registrations=16,
        device_gets=50,
        signs=50,
        keygens=3,
    ),
)


@dataclass(slots=True)
class Results:
    started_at: str
    quick: bool
    machine: Machine
    plan: Plan
    floor: Floor | None = None
    reference: Reference | None = None
    sequential: Sequential | None = None
    throughput: list[Throughput] = field(default_factory=list)
    scale: list[ScaleLevel] = field(default_factory=list)
    db_backend: BackendCheck | None = None
    load_average_at_end: tuple[float, float, float] | None = None
    duration_seconds: float = 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a minute or two")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, tokens)")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/<date>.json)")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all; sections 2-3 need floor)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="section 4: device keys spread over this many tokens (hsm.partition_labels; 0: one token)",
    )
    args = parser.parse_args(argv)
    phases = frozenset(args.phases.split(","))
    if not phases <= frozenset(PHASES):
        parser.error(f"--phases: unknown {', '.join(sorted(phases - frozenset(PHASES)))}")

    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    plan = dataclasses.replace(plan, scale=dataclasses.replace(plan.scale, partitions=args.partitions))
    started = time.perf_counter()
    results = Results(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        quick=args.quick,
        machine=describe_machine(),
        plan=plan,
    )
    work = Path(tempfile.mkdtemp(prefix="zatca-bench-"))
    _progress(f"working in {work}")
    try:
        _run(plan, phases, work, results)
    finally:
        if args.keep:
            _progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results.load_average_at_end = os.getloadavg()
    results.duration_seconds = time.perf_counter() - started

    output = args.output or _default_output(results.started_at)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    print(render_report(results))
    _progress(f"wrote {output}")
    return 0


def _run(plan: Plan, phases: frozenset[str], work: Path, results: Results) -> None:
    results.db_backend = check_db_backend(work / "db-backend-check")
    emulator = Emulator(work / "emulator" / "data")
    try:
        if "floor" in phases:
            _progress("raw floor")
            results.floor = measure_floor(
                ensure_dev_token(work / "floor" / "raw-token"),
                ensure_dev_token(work / "floor" / "token"),
                emulator,
                work / "floor",
                plan.floor,
            )
        if "reference" in phases:
            _progress("in-process reference")
            results.reference = measure_reference(plan.reference)
        if "sequential" in phases:
            _progress("sequential registrations")
            results.sequential = measure_sequential(
                work / "sequential", emulator, plan.sequential, plan.sequential_xml
            )
        if "throughput" in phases:
            # Rounds interleave the client counts, so a burst of load from other users of the
            # machine shows up as a difference between rounds, not as a trend across client counts.
            for round_number in range(1, plan.throughput_rounds + 1):
                for clients, total in plan.throughput:
                    _progress(f"throughput with {clients} clients, round {round_number}")
                    home = work / f"load-{clients}-{round_number}"
                    results.throughput.append(
                        measure_throughput(home, emulator, clients, total, round_number)
                    )
        if "scale" in phases:
            results.scale = measure_scale(work / "scale", emulator, plan.scale, _progress)
    finally:
        emulator.stop()


def _default_output(started_at: str) -> Path:
    stamp = datetime.fromisoformat(started_at).strftime("%Y-%m-%dT%H%M%SZ")
    return REPOSITORY_ROOT / "bench" / "results" / f"{stamp}.json"


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
