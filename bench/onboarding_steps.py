"""Registration latency split into its steps, and the service's own time against raw token work.

    python -m bench.onboarding_steps [--count 20] [--runs 7] [--work DIR] [--client lean|httpx]

One emulator and one fresh service (token, registry). `count` sequential Model registrations in
the developer portal (InvoiceType 1100: six compliance documents). The service times each step
itself (`zatca_appliance_onboarding_step_seconds`: keygen, csr, compliance-csid, registry,
compliance-documents, production-csid, total) and each ZATCA call
(`zatca_appliance_zatca_request_seconds`); both are read from /metrics afterwards.

Own time per registration = the client's p50 over HTTP minus the service's mean time waiting for
ZATCA (step `zatca-wait`: the wall time during which at least one of the registration's ZATCA
calls was outstanding; overlapping calls count once). Raw token work = one key generation plus
one signature per signed document (the CSR and each compliance document), measured alone in
this process on the same token after the service stopped. The issue's bar: own <= 1.5 x raw.
Each of `runs` runs uses a fresh emulator, token and service; the median ratio is the result.
The client is `bench.http1` (a minimal HTTP/1.1 client: its own work is not the service's);
`--client httpx` times with an `httpx.Client` instead. `compliance-documents` includes the
production CSID request, which runs alongside the verdicts' write.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.hsm import KeyPolicy, KeyStore
from appliance.services.onboarding import compliance_kinds
from bench.clients import auth_headers, register_sequentially
from bench.machine import process_cpu_seconds
from bench.processes import Emulator
from bench.service_phases import deploy
from bench.stats import Summary

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)_(?P<kind>sum|count)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def scrape(base_url: str, api_key: str) -> dict[str, dict[tuple[tuple[str, str], ...], dict[str, float]]]:
    """{metric: {labels: {"sum": s, "count": n}}} for every histogram's _sum and _count lines."""
    text = httpx.get(f"{base_url}/metrics", headers=auth_headers(api_key), timeout=30).text
    found: dict[str, dict[tuple[tuple[str, str], ...], dict[str, float]]] = defaultdict(dict)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        pairs = (part.split("=", 1) for part in match["labels"].split(",") if "=" in part)
        labels = tuple(sorted((key, value.strip('"')) for key, value in pairs))
        found[match["name"]].setdefault(labels, {})[match["kind"]] = float(match["value"])
    return found


def raw_token_work(settings: object, count: int, signatures: int) -> tuple[float, float, float]:
    """Mean seconds of (keygen, one signature, keygen + `signatures` signatures), alone."""
    store = KeyStore.open(settings)  # type: ignore[arg-type]
    keygens: list[float] = []
    signs: list[float] = []
    made: list[uuid.UUID] = []
    try:
        for _ in range(count):
            key_id = uuid.uuid4()
            started = time.perf_counter()
            store.generate_device_key(key_id, KeyPolicy.SEALED, f"bench-raw-{key_id}")
            keygens.append(time.perf_counter() - started)
            made.append(key_id)
            for index in range(signatures):
                digest = uuid.uuid4().bytes * 2
                started = time.perf_counter()
                store.sign_digest(key_id, digest)
                signs.append(time.perf_counter() - started)
                del index
    finally:
        for key_id in made:
            store.destroy_device_key(key_id)
        store.close()
    keygen = sum(keygens) / len(keygens)
    sign = sum(signs) / len(signs)
    return keygen, sign, keygen + signatures * sign


STEPS = (
    "keygen",
    "csr",
    "compliance-csid",
    "prepare-documents",
    "compliance-documents",
    "production-csid",
    "registry",
    "total",
    "zatca-wait",
)
STEP_METRIC = "zatca_appliance_onboarding_step_seconds"
ZATCA_ENDPOINTS = ("compliance-csid", "compliance-invoice", "production-csid")


@dataclass(frozen=True, slots=True)
class Run:
    registrations: int
    client: Summary  # over HTTP, as the bench client saw it
    steps_ms: dict[str, float]  # the service's step means (zatca-wait: >= 1 ZATCA call outstanding)
    zatca_calls_ms: dict[str, float]  # each ZATCA call as the service timed it, summed per registration
    keygen_ms: float
    sign_ms: float
    raw_ms: float
    service_cpu_ms: float  # all of the service's threads, per registration (/proc/<pid>/stat)

    @property
    def own_ms(self) -> float:
        """Client p50 minus the service's mean time waiting for ZATCA."""
        return self.client.median_ms - self.steps_ms["zatca-wait"]

    @property
    def ratio(self) -> float:
        return self.own_ms / self.raw_ms


def measure(count: int, work: Path, emulator_nice: int = 0, client: str = "lean") -> Run:
    emulator = Emulator(work / "emulator" / "data")
    if emulator_nice:
        emulator.lower_priority(emulator_nice)
    try:
        deployment = deploy(work / "deployment", emulator)
        try:
            base_url = deployment.service.base_url
            register_sequentially(base_url, deployment.api_key, 2, client=client)  # warm-up, not counted
            before = scrape(base_url, deployment.api_key)
            cpu_before = process_cpu_seconds(deployment.service.pid)
            outcomes = register_sequentially(base_url, deployment.api_key, count, client=client)
            cpu_seconds = process_cpu_seconds(deployment.service.pid) - cpu_before
            after = scrape(base_url, deployment.api_key)
        finally:
            deployment.stop()
        hsm = deployment.service.config.hsm
        registrations = len(outcomes.latencies)
        if registrations == 0:
            raise RuntimeError("no registration succeeded")
        signatures = 1 + len(compliance_kinds("1100"))
        keygen, sign, raw = raw_token_work(hsm, count, signatures)
    finally:
        emulator.stop()

    def per_registration(metric: str, key: str, value: str, operation: str | None = None) -> float:
        total = 0.0
        for labels, sample in after.get(metric, {}).items():
            if (key, value) in labels and (operation is None or ("operation", operation) in labels):
                total += sample.get("sum", 0.0) - before.get(metric, {}).get(labels, {}).get("sum", 0.0)
        return 1000 * total / registrations

    steps = {name: per_registration(STEP_METRIC, "step", name, "registration") for name in STEPS}
    calls = {
        endpoint: per_registration("zatca_appliance_zatca_request_seconds", "endpoint", endpoint)
        for endpoint in ZATCA_ENDPOINTS
    }
    if not any(("step", "zatca-wait") in labels for labels in after.get(STEP_METRIC, {})):
        # A tree from before the service measured it: its ZATCA calls never overlapped.
        steps["zatca-wait"] = sum(calls.values())
    return Run(
        registrations=registrations,
        client=Summary.of(outcomes.latencies),
        steps_ms=steps,
        zatca_calls_ms=calls,
        keygen_ms=1000 * keygen,
        sign_ms=1000 * sign,
        raw_ms=1000 * raw,
        service_cpu_ms=1000 * cpu_seconds / registrations,
    )


def print_run(index: int, run: Run) -> None:
    print(
        f"run {index}: {run.registrations} registrations (Development, Model, InvoiceType 1100), "
        f"client p50 {run.client.median_ms:.1f} ms, mean {run.client.mean_ms:.1f} ms"
    )
    print(f"  {'step (service, mean ms)':<34}{'':>8}")
    for name, value in run.steps_ms.items():
        print(f"  {name:<34}{value:>8.2f}")
    for endpoint, value in run.zatca_calls_ms.items():
        print(f"  ZATCA {endpoint + ' (sum of calls)':<28}{value:>8.2f}")
    print(
        f"  own time {run.own_ms:.2f} ms (client p50 {run.client.median_ms:.2f} - waiting for ZATCA "
        f"{run.steps_ms['zatca-wait']:.2f}); raw token work {run.raw_ms:.2f} ms (keygen "
        f"{run.keygen_ms:.2f} + 7 x sign {run.sign_ms:.3f}); own / raw = {run.ratio:.2f}"
    )
    print(
        f"  service CPU per registration {run.service_cpu_ms:.2f} ms "
        f"({run.service_cpu_ms / run.raw_ms:.2f} x raw)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.onboarding_steps", description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--emulator-nice", type=int, default=0, help="run the emulator (ZATCA's stand-in) at this nice value"
    )
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="the timing client: a minimal HTTP/1.1 client (bench.http1) or httpx",
    )
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-onboarding-"))
    runs: list[Run] = []
    for index in range(1, args.runs + 1):
        runs.append(measure(args.count, work / f"run-{index}", args.emulator_nice, args.client))
        print_run(index, runs[-1])
    ordered = sorted(runs, key=lambda run: run.ratio)
    middle = ordered[len(ordered) // 2]
    print(
        f"median of {len(runs)} runs: own / raw = {middle.ratio:.2f} (bar: 1.5); all: "
        + ", ".join(f"{run.ratio:.2f}" for run in runs)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
