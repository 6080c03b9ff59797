"""Growth with fleet size: the same measurements with 10, 1,000 and 10,000 devices in place.

One token and one registry grow from level to level. For each level, with the service stopped:
key pairs go straight into the token (`token_worker populate`, a process of its own) while this
process writes the matching active rows through SqliteRegistry; then a fresh process measures
the KeyStore (`token_worker probe`). Then the service starts (start-up resolves pending rows;
the full reconciliation lists every key just after it is ready), serves sequential
registrations and device look-ups, and stops again.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.config import HsmSettings
from appliance.hsm.provision import ensure_dev_token
from bench.clients import get_devices, merged_errors, register_concurrently, register_sequentially
from bench.fleet import create_api_key, insert_active_devices, time_active_listing
from bench.processes import Emulator, Service, StartUp
from bench.stats import Summary
from bench.token_worker import PopulateResult, ProbeResult
from bench.workers import finish_worker, run_worker, start_worker, write_ids_file

_GET_SAMPLE = 50
_KEYS_AFTER_LISTING = 5


@dataclass(frozen=True, slots=True)
class ScalePlan:
    levels: tuple[int, ...]
    registrations: int
    xml_registrations: int
    load_clients: int
    load_registrations: int
    device_gets: int
    signs: int
    keygens: int
    partitions: int = 0  # device keys spread over this many tokens (hsm.partition_labels); 0: one token


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
    xml_registration: Summary  # Xml: the key is also exported (wrapped in the token, unwrapped, checked)
    load_per_second: float  # Model registrations per second with plan.load_clients clients
    load_latency: Summary
    get_device: Summary
    errors: dict[str, int]


def measure_scale(
    home: Path, emulator: Emulator, plan: ScalePlan, progress: Callable[[str], None]
) -> list[ScaleLevel]:
    hsm = ensure_dev_token(home / "token", partitions=plan.partitions)
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
        probed = run_worker(
            ProbeResult,
            "probe",
            hsm,
            write_ids_file(home, random.sample(fleet, 1 + _KEYS_AFTER_LISTING)),
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
            xml = register_sequentially(service.base_url, api_key, plan.xml_registrations, "Xml")
            load = register_concurrently(
                service.base_url, api_key, plan.load_clients, plan.load_registrations
            )
            sample = [str(device) for device in random.sample(fleet, min(_GET_SAMPLE, len(fleet)))]
            gets = get_devices(service.base_url, api_key, sample, plan.device_gets)
        finally:
            service.stop()
        registered += sum(len(done.latencies) for done in (first, rest, xml, load.outcomes))
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
                xml_registration=Summary.of(xml.latencies),
                load_per_second=load.per_second,
                load_latency=Summary.of(load.outcomes.latencies),
                get_device=Summary.of(gets),
                errors=merged_errors(first, rest, xml, load.outcomes),
            )
        )
    return results


def populate_fleet(
    home: Path, hsm: HsmSettings, registry_path: Path, added: list[uuid.UUID]
) -> tuple[PopulateResult, float]:
    """Keys in a worker process while this one writes the rows: the two share no lock."""
    worker = start_worker("populate", hsm, write_ids_file(home, added))
    started = time.perf_counter()
    insert_active_devices(registry_path, added)
    fill_seconds = time.perf_counter() - started
    return finish_worker(PopulateResult, worker), fill_seconds
