"""Growth with fleet size: the same measurements with 10, 1,000 and 10,000 devices in place.

One token and one registry grow from level to level. For each level, with the service stopped:
key pairs go straight into the token (`token_worker populate`, a process of its own) while this
process writes the matching active rows through SqliteRegistry; then a fresh process measures
the KeyStore (`token_worker probe`). Then the service starts (its start-up lists every key to
reconcile), serves sequential registrations and device look-ups, and stops again.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from appliance.config import HsmSettings
from appliance.hsm.provision import ensure_dev_token
from bench.clients import get_devices, register_sequentially
from bench.fleet import create_api_key, insert_active_devices, time_active_listing
from bench.processes import REPOSITORY_ROOT, Emulator, Service, StartUp
from bench.stats import Summary
from bench.token_worker import PopulateResult, ProbeResult

WorkerResult = TypeVar("WorkerResult", PopulateResult, ProbeResult)
_GET_SAMPLE = 50
_KEYS_AFTER_LISTING = 5


@dataclass(frozen=True, slots=True)
class ScalePlan:
    levels: tuple[int, ...]
    registrations: int
    device_gets: int
    signs: int
    keygens: int


@dataclass(frozen=True, slots=True)
class ScaleLevel:
    device_keys: int  # device key pairs (each with an active row) when the service starts
    populate: PopulateResult  # the key pairs added for this level
    registry_fill_seconds: float
    registry_active_listing_seconds: float  # SqliteRegistry.list_by_status(active), as start-up reads it
    probe: ProbeResult
    startup: StartUp
    first_registration_ms: float
    registration: Summary  # the registrations after the first
    get_device: Summary
    errors: dict[str, int]


def measure_scale(
    home: Path, emulator: Emulator, plan: ScalePlan, progress: Callable[[str], None]
) -> list[ScaleLevel]:
    hsm = ensure_dev_token(home / "token")
    service = Service(home / "service", hsm, emulator)
    api_key = create_api_key(service.registry_path)
    fleet: list[uuid.UUID] = []
    registered = 0  # devices the service registered at earlier levels: in token and registry too
    results: list[ScaleLevel] = []
    for level in plan.levels:
        added = [uuid.uuid4() for _ in range(level - len(fleet))]
        progress(f"scale: adding {len(added)} device keys and registry rows")
        populated, fill_seconds = populate_fleet(home, hsm, service.registry_path, added)
        fleet += added
        in_place = len(fleet) + registered
        progress(f"scale: probing the key store with {in_place} device keys")
        probed = _run_worker(
            ProbeResult,
            "probe",
            hsm,
            _ids_file(home, random.sample(fleet, 1 + _KEYS_AFTER_LISTING)),
            "--signs",
            str(plan.signs),
            "--keygens",
            str(plan.keygens),
        )
        _, listing_seconds = time_active_listing(service.registry_path)
        progress(f"scale: service with {in_place} device keys")
        startup = service.start()
        try:
            first = register_sequentially(service.base_url, api_key, 1)
            rest = register_sequentially(service.base_url, api_key, plan.registrations)
            sample = [str(device) for device in random.sample(fleet, min(_GET_SAMPLE, len(fleet)))]
            gets = get_devices(service.base_url, api_key, sample, plan.device_gets)
        finally:
            service.stop()
        registered += len(first.latencies) + len(rest.latencies)
        results.append(
            ScaleLevel(
                device_keys=in_place,
                populate=populated,
                registry_fill_seconds=fill_seconds,
                registry_active_listing_seconds=listing_seconds,
                probe=probed,
                startup=startup,
                first_registration_ms=1000 * first.latencies[0] if first.latencies else float("nan"),
                registration=Summary.of(rest.latencies),
                get_device=Summary.of(gets),
                errors={**first.errors, **rest.errors},
            )
        )
    return results


def populate_fleet(
    home: Path, hsm: HsmSettings, registry_path: Path, added: list[uuid.UUID]
) -> tuple[PopulateResult, float]:
    """Keys in a worker process while this one writes the rows: the two share no lock."""
    worker = _start_worker("populate", hsm, _ids_file(home, added))
    started = time.perf_counter()
    insert_active_devices(registry_path, added)
    fill_seconds = time.perf_counter() - started
    return _finish_worker(PopulateResult, worker), fill_seconds


def _ids_file(home: Path, device_ids: list[uuid.UUID]) -> Path:
    path = home / "worker-ids.txt"
    path.write_text("\n".join(str(device_id) for device_id in device_ids) + "\n", encoding="ascii")
    return path


def _start_worker(action: str, hsm: HsmSettings, ids_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, our own module, no shell
        [
            sys.executable,
            "-m",
            "bench.token_worker",
            action,
            "--settings",
            msgspec.json.encode(hsm).decode(),
            "--ids-file",
            str(ids_file),
            *extra,
        ],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish_worker(kind: type[WorkerResult], worker: subprocess.Popen[bytes]) -> WorkerResult:
    stdout, stderr = worker.communicate()
    if worker.returncode != 0:
        raise RuntimeError(
            f"token worker failed ({worker.returncode}): {stderr.decode(errors='replace')[-3000:]}"
        )
    return msgspec.json.decode(stdout, type=kind)


def _run_worker(
    kind: type[WorkerResult], action: str, hsm: HsmSettings, ids_file: Path, *extra: str
) -> WorkerResult:
    return _finish_worker(kind, _start_worker(action, hsm, ids_file, *extra))
