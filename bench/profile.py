"""`python -m bench.profile`: where the service's CPU goes during registrations (py-spy).

Starts the emulator and a fresh service (optionally on a token pre-filled with --fleet device
keys and rows), samples the service process with py-spy while clients register devices, and
prints the samples grouped by registration step, converted to CPU milliseconds per registration
with the service's measured CPU time. py-spy is a profiling aid, not a project dependency:
`.venv/bin/pip install py-spy`. The raw samples (flame-graph "collapsed" format) are kept.

Samples are taken from every thread that is not sleeping, so a thread inside SoftHSM or SQLite
counts as busy, while threads waiting for a lock, the GIL or the network do not. py-spy cannot
see into python-pkcs11's compiled code: a token call shows up as the Python line that made it,
which is how a public-key search is told apart from the rest of the export.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.hsm import device_keys
from bench.clients import register_concurrently
from bench.fleet import create_api_key
from bench.machine import process_cpu_seconds
from bench.processes import REPOSITORY_ROOT, Emulator, Service
from bench.scale import populate_fleet

_SAMPLING_RATE = 250


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    matches: Callable[[list[str]], bool]


def _line_calling(function: Callable[..., object], needle: str) -> str:
    """`name (path:line)` as py-spy prints the frame of `function` at its line containing `needle`."""
    lines, first = inspect.getsourcelines(function)
    offset = next(index for index, text in enumerate(lines) if needle in text)
    path = Path(inspect.getfile(function)).resolve().relative_to(REPOSITORY_ROOT)
    return f"{function.__name__} ({path}:{first + offset})"


def _steps() -> list[Step]:
    """Checked in order; a sample belongs to the first step whose test accepts its stack."""
    public_key_search = _line_calling(device_keys.public_key, "get_key")

    def anywhere(*markers: str) -> Callable[[list[str]], bool]:
        return lambda frames: any(marker in frame for frame in frames for marker in markers)

    return [
        Step("event loop waiting in select()", lambda frames: "EpollSelector.select" in frames[-1]),
        Step("token: public-key search in export (Xml/Pdf)", lambda frames: frames[-1] == public_key_search),
        Step("token: key pair generation", anywhere("generate_ec_key_pair")),
        Step("CSR: ASN.1 assembly (asn1crypto)", _csr_not_signing),
        Step("token: signature, export, sealing, look-ups", anywhere("appliance/hsm/")),
        Step("registry (SQLite)", anywhere("appliance/storage/")),
        Step("ZATCA call (httpx client)", anywhere("ZatcaClient.", "httpx/", "httpcore/")),
        Step("logging (JSON lines)", anywhere("logging/__init__.py", "appliance/logs.py")),
        Step("response certificate checks (cryptography)", anywhere("_require_certificate_for_key")),
        Step("worker-thread hand-off (anyio)", anywhere("anyio/", "threading.py", "queue.py")),
        Step("HTTP serving (uvicorn, litestar, msgspec)", anywhere("uvicorn/", "litestar/", "h11/")),
        Step("other", lambda frames: True),
    ]


def _csr_not_signing(frames: list[str]) -> bool:
    inside = [index for index, frame in enumerate(frames) if frame.startswith("build_zatca_csr ")]
    return bool(inside) and not any("appliance/hsm/" in frame for frame in frames[inside[0] :])


def breakdown(raw: Path) -> tuple[Counter[str], int]:
    steps = _steps()
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        count = int(count_text)
        total += count
        counts[next(step.name for step in steps if step.matches(frames))] += count
    return counts, total


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy (a profiling aid, not a dependency)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    parser.add_argument("--registrations", type=int, default=300, help="registrations while sampling")
    parser.add_argument("--fleet", type=int, default=0, help="device keys and rows in place before start")
    parser.add_argument("--output", type=Path, help="raw samples file (default bench/results/profile-*.txt)")
    args = parser.parse_args(argv)

    py_spy = _py_spy()
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    output = args.output or REPOSITORY_ROOT / "bench" / "results" / f"profile-{stamp}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zatca-profile-"))
    emulator = Emulator(work / "emulator" / "data")
    try:
        from appliance.hsm.provision import ensure_dev_token

        hsm = ensure_dev_token(work / "token")
        service = Service(work / "service", hsm, emulator)
        api_key = create_api_key(service.registry_path)
        if args.fleet:
            populate_fleet(work, hsm, service.registry_path, [uuid.uuid4() for _ in range(args.fleet)])
        service.start()
        try:
            # Warm up: connections, the first key generation, first-call imports.
            register_concurrently(service.base_url, api_key, args.clients, args.clients)
            record = ["record", "--pid", str(service.pid), "--format", "raw", "--nonblocking"]
            sampler = subprocess.Popen(  # noqa: S603 - py-spy with fixed arguments, no shell
                [py_spy, *record, "--rate", str(_SAMPLING_RATE), "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attaches asynchronously; start the load once it samples
            cpu_before = process_cpu_seconds(service.pid)
            result = register_concurrently(service.base_url, api_key, args.clients, args.registrations)
            cpu_seconds = process_cpu_seconds(service.pid) - cpu_before
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            sampler.wait(timeout=60)
        finally:
            service.stop()
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)

    counts, total = breakdown(output)
    done = len(result.outcomes.latencies)
    busy = total - counts["event loop waiting in select()"]
    print(
        f"{done} registrations ({args.clients} clients, {args.fleet} pre-filled device keys), "
        f"{result.per_second:.1f}/s, errors {result.outcomes.error_count}; service CPU "
        f"{1000 * cpu_seconds / done:.1f} ms per registration; {total} samples, raw in {output}\n"
    )
    print("| Step | share of busy samples | ≈ CPU ms per registration |")
    print("|---|---|---|")
    for name, count in counts.most_common():
        if name == "event loop waiting in select()":
            continue
        share = count / busy
        print(f"| {name} | {100 * share:.1f}% | {1000 * share * cpu_seconds / done:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
