"""The raw floor: each step of a registration alone, with nothing of the service around it.

keygen     C_GenerateKeyPair alone: a sealed secp256k1 token key pair with the product's template
           (`bench.token_worker populate`, its own process and token)
csr        build_zatca_csr + csr_to_pem, the signature made in the token (cached key handle)
issuance   POST /compliance to the emulator with httpx, one keep-alive connection

and, to explain what the service adds on top, the smaller steps a registration also takes:
KeyStore.generate_device_key (the product's key generation: lease, locks, public key read-back),
a token signature alone, sealing the CSID secret in the token, the two registry commits, and
the key export that Xml/Pdf registrations add (given the SPKI from generation, as the service does).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx

from appliance.config import HsmSettings
from appliance.domain import Environment
from appliance.hsm import KeyPolicy, KeyStore
from appliance.storage import SqliteRegistry
from appliance.x509.csr import build_zatca_csr, csr_to_pem
from appliance.x509.fields import CsrFields, egs_serial_number
from bench.clients import SANDBOX_OTP, VAT
from bench.fleet import activation_data, device_label, pending_record
from bench.processes import Emulator
from bench.stats import Summary, time_each
from bench.token_worker import PopulateResult
from bench.workers import run_worker, write_ids_file

_DIGEST = hashlib.sha256(b"benchmark invoice").digest()
_SECRET = base64.b64encode(b"s" * 32)


@dataclass(frozen=True, slots=True)
class Floor:
    keygen: Summary
    store_keygen: Summary
    csr: Summary
    issuance: Summary
    token_sign: Summary
    seal_secret: Summary
    registry_commits: Summary
    export_key: Summary

    @property
    def sum_of_medians_ms(self) -> float:
        return self.keygen.median_ms + self.csr.median_ms + self.issuance.median_ms


def csr_fields(egs_serial: str) -> CsrFields:
    return CsrFields(
        environment=Environment.DEVELOPMENT,
        common_name=egs_serial,
        serial_number=egs_serial_number(egs_serial, "ZatcaAppliance", "1.0"),
        vat=VAT,
        organization_name="Benchmark Trading Co",
        organization_unit="Riyadh Branch",
        country="SA",
        invoice_type="1100",
        location="Riyadh Olaya",
        industry="Retail",
    )


def measure_floor(
    raw_token: HsmSettings, store_token: HsmSettings, emulator: Emulator, scratch: Path, count: int
) -> Floor:
    raw = run_worker(
        PopulateResult, "populate", raw_token, write_ids_file(scratch, [uuid.uuid4() for _ in range(count)])
    )
    if raw.each is None:
        raise RuntimeError("the token worker generated no keys")
    store = KeyStore.open(store_token)
    try:
        device_ids = [uuid.uuid4() for _ in range(count)]
        spkis: list[bytes] = []
        store_keygen = time_each(
            count,
            lambda index: spkis.append(
                store.generate_device_key(
                    device_ids[index], KeyPolicy.SEALED, device_label(device_ids[index])
                )
            ),
        )
        pems: list[str] = []

        def build_csr(index: int) -> None:
            device_id = device_ids[index]
            der = build_zatca_csr(
                csr_fields(f"BENCH-{device_id.hex[:16]}"),
                spkis[index],
                lambda digest: store.sign_digest(device_id, digest),
            )
            pems.append(csr_to_pem(der))

        csr = time_each(count, build_csr)
        token_sign = time_each(count, lambda index: store.sign_digest(device_ids[index], _DIGEST))
        seal_secret = time_each(count, lambda _: store.encrypt_secret(_SECRET))
        export_ids = [uuid.uuid4() for _ in range(max(1, count // 4))]
        export_spkis = [
            store.generate_device_key(device_id, KeyPolicy.EXPORTABLE, device_label(device_id))
            for device_id in export_ids
        ]
        export_key = time_each(
            len(export_ids), lambda index: store.export_private_key(export_ids[index], export_spkis[index])
        )
    finally:
        store.close()
    issuance = _issuance(emulator, pems)
    registry_commits = _registry_commits(scratch / "registry.sqlite3", count)
    return Floor(
        keygen=raw.each,
        store_keygen=Summary.of(store_keygen),
        csr=Summary.of(csr),
        issuance=Summary.of(issuance),
        token_sign=Summary.of(token_sign),
        seal_secret=Summary.of(seal_secret),
        registry_commits=Summary.of(registry_commits),
        export_key=Summary.of(export_key),
    )


def _issuance(emulator: Emulator, pems: list[str]) -> list[float]:
    headers = {"Accept-Version": "V2", "OTP": SANDBOX_OTP, "Accept-Language": "en"}
    durations: list[float] = []
    with httpx.Client(
        base_url=emulator.environment_url("development"), headers=headers, timeout=60
    ) as client:
        for pem in pems:
            body = {"csr": base64.b64encode(pem.encode("ascii")).decode("ascii")}
            started = time.perf_counter()
            response = client.post("/compliance", json=body)
            durations.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(
                    f"the emulator refused a floor CSR: {response.status_code} {response.text}"
                )
    return durations


def _registry_commits(path: Path, count: int) -> list[float]:
    """create_pending + mark_active of one device: the registry's share of a registration."""

    async def commits() -> list[float]:
        durations: list[float] = []
        async with await SqliteRegistry.open(path) as registry:
            for _ in range(count):
                device_id = uuid.uuid4()
                now = datetime.now(UTC)
                started = time.perf_counter()
                await registry.create_pending(pending_record(device_id, now))
                await registry.mark_active(str(device_id), activation_data(now))
                durations.append(time.perf_counter() - started)
        return durations

    return anyio.run(commits)
