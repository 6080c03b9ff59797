"""Registrations through the service over HTTP: sequential latency and throughput under load.

Each phase gets its own fresh token, registry and service process: the token grows by one key
pair per registration, and look-ups in SoftHSM's file store slow down as it grows, so phases
that shared a token would not be comparable with each other or with the floor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from appliance.hsm.provision import ensure_dev_token
from bench.clients import merged_errors, register_concurrently, register_sequentially
from bench.cpu import CpuMeter, CpuShare
from bench.fleet import create_api_key
from bench.processes import Emulator, Service, StartUp
from bench.stats import Summary, time_each


@dataclass(slots=True)
class Deployment:
    service: Service
    api_key: str
    startup: StartUp

    def stop(self) -> None:
        self.service.stop()


def deploy(home: Path, emulator: Emulator) -> Deployment:
    """A fresh SoftHSM token and registry, and the service on them, started."""
    hsm = ensure_dev_token(home / "token")
    service = Service(home / "service", hsm, emulator)
    api_key = create_api_key(service.registry_path)
    return Deployment(service, api_key, service.start())


@dataclass(frozen=True, slots=True)
class Sequential:
    model: Summary
    first_fifth: Summary
    last_fifth: Summary
    xml: Summary
    errors: dict[str, int]
    zatca_mean_ms: float | None  # /compliance as the service's own metrics saw it
    cpu_ms_per_registration: dict[str, float]
    token_key_pairs_at_end: int
    # Mean time of each token operation as the service timed it (its /metrics), Model phase only.
    hsm_means_ms: dict[str, float] = field(default_factory=dict)
    hsm_calls_per_registration: dict[str, float] = field(default_factory=dict)
    # GET /health/live on the same kind of connection: HTTP, routing, middleware, access log.
    http_round_trip: Summary | None = None


def measure_sequential(home: Path, emulator: Emulator, count: int, xml_count: int) -> Sequential:
    deployment = deploy(home, emulator)
    try:
        base_url = deployment.service.base_url
        meter = CpuMeter(deployment.service.pid, emulator.pid)
        before = _hsm_totals(base_url)
        meter.start()
        model = register_sequentially(base_url, deployment.api_key, count, "Model")
        cpu = meter.stop()
        hsm = {
            operation: (
                total - before.get(operation, (0.0, 0.0))[0],
                calls - before.get(operation, (0.0, 0.0))[1],
            )
            for operation, (total, calls) in _hsm_totals(base_url).items()
        }
        zatca_mean_ms = _zatca_mean_ms(base_url)
        with httpx.Client(base_url=base_url, timeout=10) as client:  # keep-alive, as the registrations
            http_round_trip = time_each(count, lambda _: client.get("/health/live"))
        xml = register_sequentially(base_url, deployment.api_key, xml_count, "Xml")
    finally:
        deployment.stop()
    fifth = max(1, len(model.latencies) // 5)
    return Sequential(
        model=Summary.of(model.latencies),
        first_fifth=Summary.of(model.latencies[:fifth]),
        last_fifth=Summary.of(model.latencies[-fifth:]),
        xml=Summary.of(xml.latencies),
        errors=merged_errors(model, xml),
        zatca_mean_ms=zatca_mean_ms,
        cpu_ms_per_registration=cpu.per_operation_ms(len(model.latencies)),
        token_key_pairs_at_end=len(model.latencies) + len(xml.latencies),
        hsm_means_ms={name: 1000 * total / calls for name, (total, calls) in hsm.items() if calls},
        hsm_calls_per_registration={
            name: calls / len(model.latencies)
            for name, (_, calls) in hsm.items()
            if calls and model.latencies
        },
        http_round_trip=Summary.of(http_round_trip),
    )


@dataclass(frozen=True, slots=True)
class Throughput:
    clients: int
    round_number: int
    registrations: int
    wall_seconds: float
    per_second: float
    latency: Summary
    errors: dict[str, int]
    cpu: CpuShare
    cpu_ms_per_registration: dict[str, float]


def measure_throughput(
    home: Path, emulator: Emulator, clients: int, total: int, round_number: int = 1
) -> Throughput:
    deployment = deploy(home, emulator)
    try:
        base_url = deployment.service.base_url
        # One registration per client first: connections open, the secret-box key found.
        register_concurrently(base_url, deployment.api_key, clients, clients)
        meter = CpuMeter(deployment.service.pid, emulator.pid)
        meter.start()
        result = register_concurrently(base_url, deployment.api_key, clients, total)
        cpu = meter.stop()
    finally:
        deployment.stop()
    done = len(result.outcomes.latencies)
    return Throughput(
        clients=clients,
        round_number=round_number,
        registrations=done,
        wall_seconds=result.wall_seconds,
        per_second=result.per_second,
        latency=Summary.of(result.outcomes.latencies),
        errors=dict(result.outcomes.errors),
        cpu=cpu,
        cpu_ms_per_registration=cpu.per_operation_ms(done),
    )


_METRIC_LINE = re.compile(
    r"^zatca_appliance_zatca_request_seconds_(sum|count)\{([^}]*)\} (\S+)$", re.MULTILINE
)


_HSM_LINE = re.compile(
    r'^zatca_appliance_hsm_operation_seconds_(sum|count)\{operation="([^"]+)"\} (\S+)$', re.MULTILINE
)


def _hsm_totals(base_url: str) -> dict[str, tuple[float, float]]:
    """operation -> (seconds, calls) so far, from the service's token-latency histogram."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    totals: dict[str, list[float]] = {}
    for kind, operation, value in _HSM_LINE.findall(text):
        totals.setdefault(operation, [0.0, 0.0])[0 if kind == "sum" else 1] += float(value)
    return {operation: (pair[0], pair[1]) for operation, pair in totals.items()}


def _zatca_mean_ms(base_url: str) -> float | None:
    """Mean duration of successful /compliance calls from the service's Prometheus histogram."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    totals = {"sum": 0.0, "count": 0.0}
    for kind, labels, value in _METRIC_LINE.findall(text):
        if 'endpoint="compliance-csid"' in labels and 'status="200"' in labels:
            totals[kind] += float(value)
    return 1000 * totals["sum"] / totals["count"] if totals["count"] else None
