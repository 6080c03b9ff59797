"""Registration latency split into its steps, and the service's own time against raw token work.

    python -m bench.onboarding_steps [--count 20] [--work DIR]

One emulator and one fresh service (token, registry). `count` sequential Model registrations in
the developer portal (InvoiceType 1100: six compliance documents). The service times each step
itself (`zatca_appliance_onboarding_step_seconds`: keygen, csr, compliance-csid, registry,
compliance-documents, production-csid, total) and each ZATCA call
(`zatca_appliance_zatca_request_seconds`); both are read from /metrics afterwards.

Own time per registration = total - time waiting for ZATCA. Raw token work = one key generation
plus one signature per signed document (the CSR and each compliance document), measured alone
in this process on the same token after the service stopped. The issue's bar: own <= 1.5 x raw.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

from appliance.hsm import KeyPolicy, KeyStore
from appliance.services.onboarding import compliance_kinds
from bench.clients import auth_headers, register_sequentially
from bench.processes import Emulator
from bench.service_phases import deploy

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.onboarding_steps", description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-onboarding-"))
    emulator = Emulator(work / "emulator" / "data")
    try:
        deployment = deploy(work / "deployment", emulator)
        try:
            base_url = deployment.service.base_url
            register_sequentially(base_url, deployment.api_key, 2)  # warm-up, not counted
            before = scrape(base_url, deployment.api_key)
            outcomes = register_sequentially(base_url, deployment.api_key, args.count)
            after = scrape(base_url, deployment.api_key)
        finally:
            deployment.stop()
        hsm = deployment.service.config.hsm
        registrations = len(outcomes.latencies)
        if registrations == 0:
            print("no registration succeeded")
            return 1
        signatures = 1 + len(compliance_kinds("1100"))
        keygen, sign, raw = raw_token_work(hsm, args.count, signatures)
    finally:
        emulator.stop()

    def delta(metric: str, key: str, value: str) -> float:
        total = 0.0
        for labels, sample in after.get(metric, {}).items():
            if (key, value) in labels or not key:
                old = before.get(metric, {}).get(labels, {}).get("sum", 0.0)
                total += sample.get("sum", 0.0) - old
        return total / registrations

    steps = "zatca_appliance_onboarding_step_seconds"
    print(
        f"{registrations} registrations (Development, Model, InvoiceType 1100), client-side mean "
        f"{1000 * sum(outcomes.latencies) / registrations:.1f} ms"
    )
    print(f"{'step':<22}{'mean ms':>10}")
    for name in (
        "keygen",
        "csr",
        "compliance-csid",
        "compliance-documents",
        "production-csid",
        "registry",
        "total",
    ):
        seconds = (
            sum(
                sample.get("sum", 0.0) - before.get(steps, {}).get(labels, {}).get("sum", 0.0)
                for labels, sample in after.get(steps, {}).items()
                if ("step", name) in labels and ("operation", "registration") in labels
            )
            / registrations
        )
        print(f"{name:<22}{1000 * seconds:>10.2f}")
    zatca_calls = "zatca_appliance_zatca_request_seconds"
    waited = 0.0
    for endpoint in ("compliance-csid", "compliance-invoice", "production-csid"):
        seconds = delta(zatca_calls, "endpoint", endpoint)
        waited += seconds
        print(f"  ZATCA {endpoint:<22}{1000 * seconds:>10.2f} ms per registration")
    total = (
        sum(
            sample.get("sum", 0.0) - before.get(steps, {}).get(labels, {}).get("sum", 0.0)
            for labels, sample in after.get(steps, {}).items()
            if ("step", "total") in labels and ("operation", "registration") in labels
        )
        / registrations
    )
    own = total - waited
    print(f"service's own time: {1000 * own:.2f} ms (total {1000 * total:.2f} - ZATCA {1000 * waited:.2f})")
    print(
        f"raw token work: {1000 * raw:.2f} ms (keygen {1000 * keygen:.2f} + {signatures} x sign "
        f"{1000 * sign:.3f}); own / raw = {own / raw:.2f} (bar: 1.5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
