"""The markdown report printed at the end of a run (docs/benchmark.md explains every figure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.stats import Summary

if TYPE_CHECKING:
    from bench.floor import Floor
    from bench.reference import Reference
    from bench.run import Results
    from bench.scale import ScaleLevel
    from bench.service_phases import Sequential, Throughput


def render_report(results: Results) -> str:
    machine = results.machine
    end_load = results.load_average_at_end or (0.0, 0.0, 0.0)
    lines = [
        f"# Benchmark {results.started_at}{' (--quick)' if results.quick else ''}",
        "",
        f"Machine: {machine.one_line()}.",
        f"Load average (1/5/15 min) at start {_load(machine.load_average_at_start)}, "
        f"at end {_load(end_load)}; run took {results.duration_seconds / 60:.1f} min. "
        "Times in ms unless marked; p = percentile.",
    ]
    if results.floor is not None:
        lines += _floor_section(results.floor)
    if results.sequential is not None and results.floor is not None:
        lines += _sequential_section(results.sequential, results.floor)
    if results.throughput and results.floor is not None:
        lines += _throughput_section(results.throughput, results.floor)
    if results.scale:
        lines += _scale_section(results.scale)
    if results.reference is not None and results.floor is not None:
        lines += _reference_section(results.reference, results.floor)
    if results.db_backend is not None:
        verdict = "available" if results.db_backend.available else "NOT available"
        lines += ["", f"SoftHSM `objectstore.backend = db`: {verdict} ({results.db_backend.detail})."]
    return "\n".join(lines)


def _floor_section(floor: Floor) -> list[str]:
    rows = [
        _summary_row("Key pair generation in the token (C_GenerateKeyPair)", floor.keygen),
        _summary_row("CSR build + token signature", floor.csr),
        _summary_row("Certificate issuance by the emulator (POST /compliance)", floor.issuance),
        ["**Floor: sum of the three medians**", _ms(floor.sum_of_medians_ms), "", ""],
        _summary_row("the product's keygen: KeyStore.generate_device_key", floor.store_keygen),
        _summary_row("also in a registration: one token signature", floor.token_sign),
        _summary_row("also: sealing the CSID secret in the token", floor.seal_secret),
        _summary_row("also: registry commits (pending + active)", floor.registry_commits),
        _summary_row("Xml/Pdf only: key export (wrap + unwrap)", floor.export_key),
    ]
    return ["", "## 1. Raw floor (each step alone)", "", *_table(["Step", "median", "p95", "n"], rows)]


def _sequential_section(sequential: Sequential, floor: Floor) -> list[str]:
    floor_ms = floor.sum_of_medians_ms
    xml_floor_ms = floor_ms + floor.export_key.median_ms
    rows = [
        _latency_row("Model, all", sequential.model, floor_ms),
        _latency_row("Model, first fifth", sequential.first_fifth, floor_ms),
        _latency_row("Model, last fifth", sequential.last_fifth, floor_ms),
        _latency_row("Xml (+ key export; ratio to floor + export)", sequential.xml, xml_floor_ms),
    ]
    cpu = sequential.cpu_ms_per_registration
    zatca = "n/a" if sequential.zatca_mean_ms is None else _ms(sequential.zatca_mean_ms)
    return [
        "",
        "## 2. Registration through the service over HTTP, one client",
        "",
        *_table(["Case", "p50", "p95", "p99", "n", "p50 / floor"], rows),
        "",
        f"Errors: {_errors(sequential.errors)}. "
        f"Token at the end: {sequential.token_key_pairs_at_end} key pairs. "
        f"ZATCA /compliance as the service measured it (mean): {zatca}. "
        f"CPU per Model registration: service {_ms(cpu.get('service', 0))}, "
        f"emulator {_ms(cpu.get('emulator', 0))}, client {_ms(cpu.get('client', 0))}, "
        f"other users of the machine {_ms(cpu.get('others', 0))}.",
        *_service_time_lines(sequential, floor),
    ]


def _service_time_lines(sequential: Sequential, floor: Floor) -> list[str]:
    """Issue 12's figure: what a registration costs beyond ZATCA, against the raw token work."""
    if sequential.zatca_mean_ms is None:
        return []
    own = sequential.model.median_ms - sequential.zatca_mean_ms
    raw = floor.keygen.median_ms + floor.token_sign.median_ms + floor.seal_secret.median_ms
    token = sum(
        sequential.hsm_means_ms[name] * sequential.hsm_calls_per_registration.get(name, 0.0)
        for name in sequential.hsm_means_ms
    )
    calls = ", ".join(
        f"{name} {_ms(mean)} x{sequential.hsm_calls_per_registration.get(name, 0.0):.1f}"
        for name, mean in sorted(sequential.hsm_means_ms.items())
    )
    http = sequential.http_round_trip
    http_ms = http.median_ms if http is not None else 0.0
    return [
        "",
        f"Service's own time: Model p50 {_ms(sequential.model.median_ms)} - ZATCA "
        f"{_ms(sequential.zatca_mean_ms)} = {_ms(own)}, against the raw token work of a registration "
        f"(floor keygen + one signature + sealing) {_ms(raw)}: **{own / raw:.2f}x**. "
        f"Split (means of the service's own timings, so a rough one): token calls {_ms(token)} "
        f"({calls}); an HTTP round trip on a keep-alive connection (GET /health/live p50) "
        f"{_ms(http_ms)}; ZATCA through the service {_ms(sequential.zatca_mean_ms)} against "
        f"{_ms(floor.issuance.median_ms)} direct; the rest (validation, CSR ASN.1, thread hops, "
        f"registry commits and audit records) {_ms(own - token - http_ms)}.",
    ]


def _throughput_section(levels: Sequence[Throughput], floor: Floor) -> list[str]:
    keygen_rate = floor.keygen.per_second()
    rows = []
    for level in levels:
        cpu = level.cpu_ms_per_registration
        rows.append(
            [
                str(level.clients),
                str(level.round_number),
                str(level.registrations),
                f"{level.per_second:.1f}",
                _ms(level.latency.median_ms),
                _ms(level.latency.p95_ms),
                _errors(level.errors),
                f"{level.per_second / keygen_rate:.2f}",
                " / ".join(_ms(cpu.get(part, 0)) for part in ("service", "emulator", "client", "others")),
                f"{level.cpu.busy_cores:.2f}",
            ]
        )
    headers = [
        "Clients",
        "round",
        "n",
        "reg/s",
        "p50",
        "p95",
        "errors",
        f"÷ keygen rate ({keygen_rate:.0f}/s)",
        "CPU ms/reg: service / emulator / client / others",
        "cores busy",
    ]
    return ["", "## 3. Throughput (Model registrations)", "", *_table(headers, rows)]


def _scale_section(levels: Sequence[ScaleLevel]) -> list[str]:
    service_rows = []
    token_rows = []
    for level in levels:
        ready = level.startup.ready_logged_seconds
        service_rows.append(
            [
                f"{level.device_keys:,}",
                f"{level.startup.answering_seconds:.2f} s",
                "n/a" if ready is None else f"{ready:.2f} s",
                _ms(level.first_registration_ms),
                f"{_ms(level.registration.median_ms)} / {_ms(level.registration.p95_ms)}",
                f"{_ms(level.xml_registration.median_ms)} / {_ms(level.xml_registration.p95_ms)}",
                f"{level.load_per_second:.1f}",
                f"{_ms(level.get_device.median_ms)} / {_ms(level.get_device.p95_ms)}",
                _errors(level.errors),
            ]
        )
        probe = level.probe
        raw = level.populate.last_tenth
        token_rows.append(
            [
                f"{level.device_keys:,}",
                _ms(1000 * probe.open_seconds),
                _ms(1000 * probe.first_sign_seconds),
                f"{_ms(probe.first_sign_after_listing.median_ms)} / "
                f"{_ms(probe.second_sign_after_listing.median_ms)}",
                f"{_ms(probe.cached_sign.median_ms)} / {_ms(probe.cached_sign.p95_ms)}",
                _ms(1000 * probe.list_seconds),
                _ms(1000 * level.registry_active_listing_seconds),
                f"{_ms(probe.product_keygen.median_ms)} / {_ms(probe.product_keygen.p95_ms)}",
                f"{_ms(probe.destroy.median_ms)} / {_ms(probe.destroy.p95_ms)}",
                "n/a" if raw is None else _ms(raw.median_ms),
            ]
        )
    service_headers = [
        "Device keys",
        "start-up (/health/ready 200)",
        "start-up (lifespan done)",
        "1st registration",
        "Model registration p50 / p95",
        "Xml registration p50 / p95",
        "reg/s, 8 clients",
        "GET /v1/Devices/{id} p50 / p95",
        "errors",
    ]
    token_headers = [
        "Device keys",
        "KeyStore.open",
        "1st sign after restart",
        "after a listing: 1st / 2nd sign per key",
        "sign, cached handle p50 / p95",
        "list_device_keys",
        "registry: list active rows",
        "generate_device_key p50 / p95",
        "destroy_device_key p50 / p95",
        "raw keygen (populate, last tenth) p50",
    ]
    return [
        "",
        "## 4. Growth with fleet size (keys in token and registry)",
        "",
        "Service (fresh start at each size):",
        "",
        *_table(service_headers, service_rows),
        "",
        "Key store in a fresh process (`bench.token_worker probe`), and the registry read start-up makes:",
        "",
        *_table(token_headers, token_rows),
    ]


def _reference_section(reference: Reference, floor: Floor) -> list[str]:
    rows = [
        [
            *_summary_row("secp256k1 key generation", reference.keygen)[:3],
            _ratio(floor.keygen, reference.keygen),
        ],
        [
            *_summary_row("ECDSA signature (prehashed)", reference.sign)[:3],
            _ratio(floor.token_sign, reference.sign),
        ],
        [
            *_summary_row("ZATCA CSR, appliance builder, software key", reference.zatca_csr)[:3],
            _ratio(floor.csr, reference.zatca_csr),
        ],
        [*_summary_row("comparable CSR, cryptography's builder", reference.cryptography_csr)[:3], ""],
    ]
    return [
        "",
        "## 5. Reference: the same work in process with cryptography (software key)",
        "",
        *_table(["Operation", "median", "p95", "token ÷ software (medians)"], rows),
    ]


def _summary_row(name: str, summary: Summary) -> list[str]:
    return [name, _ms(summary.median_ms), _ms(summary.p95_ms), str(summary.count)]


def _latency_row(name: str, summary: Summary, floor_ms: float) -> list[str]:
    return [
        name,
        _ms(summary.median_ms),
        _ms(summary.p95_ms),
        _ms(summary.p99_ms),
        str(summary.count),
        f"{summary.median_ms / floor_ms:.2f}",
    ]


def _ratio(token: Summary, software: Summary) -> str:
    return f"{token.median_ms / software.median_ms:.1f}x"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _errors(errors: dict[str, int]) -> str:
    if not errors:
        return "0"
    return ", ".join(f"{count} x {kind}" for kind, count in sorted(errors.items()))


def _load(average: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in average)
