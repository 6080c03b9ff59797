"""POS clients of the service: the registration request and the timed calls the report is made of."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.http1 import Connection, ProtocolError

VAT = "399999999900003"
SANDBOX_OTP = "123345"  # the developer portal's fixed OTP: no minting in the timed path
REQUEST_TIMEOUT_SECONDS = 120.0


def registration_body(invoice_format: str = "Model", environment: str = "Development") -> dict[str, Any]:
    """A valid `POST /v1/Devices/Register` body for a new EGS unit (unique serial each call)."""
    return {
        "Device": {
            "EgsSerialNumber": f"BENCH-{uuid.uuid4().hex[:16]}",
            "Location": "Riyadh Olaya",
            "Industry": "Retail",
            "InvoiceType": "1100",
        },
        "Organization": {
            "Vat": VAT,
            "OrganizationName": "Benchmark Trading Co",
            "OrganizationUnitName": "Riyadh Branch",
            "CountryCode": "SA",
        },
        "Environment": environment,
        "OTP": SANDBOX_OTP,
        "InvoiceFormat": invoice_format,
    }


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@dataclass(slots=True)
class Outcomes:
    """Latencies of successful calls and a count of everything else, by kind."""

    latencies: list[float] = field(default_factory=list)
    device_ids: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def failed(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def answered(self, status_code: int, seconds: float, content: bytes) -> None:
        """A registration's answer: its latency and device id when it succeeded."""
        if status_code == 200:
            self.latencies.append(seconds)
            self.device_ids.append(str(json.loads(content)["deviceId"]))
        else:
            self.failed(f"HTTP {status_code}")


def merged_errors(*outcomes: Outcomes) -> dict[str, int]:
    merged: dict[str, int] = {}
    for outcome in outcomes:
        for kind, count in outcome.errors.items():
            merged[kind] = merged.get(kind, 0) + count
    return merged


def register_sequentially(
    base_url: str, api_key: str, count: int, invoice_format: str = "Model", *, client: str = "httpx"
) -> Outcomes:
    """`count` registrations one after another over one keep-alive connection.

    `client`: "httpx" (`httpx.Client`) or "lean" (`bench.http1`: about a millisecond of client
    work less inside each measured latency).
    """
    if client == "lean":
        return asyncio.run(_register_lean(base_url, api_key, count, invoice_format))
    outcomes = Outcomes()
    with httpx.Client(
        base_url=base_url, headers=auth_headers(api_key), timeout=REQUEST_TIMEOUT_SECONDS
    ) as session:
        for _ in range(count):
            body = registration_body(invoice_format)
            started = time.perf_counter()
            try:
                response = session.post("/v1/Devices/Register", json=body)
            except httpx.HTTPError as exc:
                outcomes.failed(type(exc).__name__)
                continue
            outcomes.answered(response.status_code, time.perf_counter() - started, response.content)
    return outcomes


async def _register_lean(base_url: str, api_key: str, count: int, invoice_format: str) -> Outcomes:
    outcomes = Outcomes()
    connection = Connection(base_url, auth_headers(api_key))
    try:
        for _ in range(count):
            body = json.dumps(registration_body(invoice_format)).encode()
            started = time.perf_counter()
            try:
                request = connection.request("POST", "/v1/Devices/Register", body)
                response = await asyncio.wait_for(request, REQUEST_TIMEOUT_SECONDS)
            except (ProtocolError, TimeoutError) as exc:
                outcomes.failed(type(exc).__name__)
                continue
            outcomes.answered(response.status_code, time.perf_counter() - started, response.content)
    finally:
        await connection.close()
    return outcomes


@dataclass(frozen=True, slots=True)
class LoadResult:
    clients: int
    wall_seconds: float
    outcomes: Outcomes

    @property
    def per_second(self) -> float:
        return len(self.outcomes.latencies) / self.wall_seconds


def register_concurrently(base_url: str, api_key: str, clients: int, total: int) -> LoadResult:
    """`clients` POS clients registering `total` devices between them, as fast as answers come."""
    return asyncio.run(_load(base_url, api_key, clients, total))


async def _load(base_url: str, api_key: str, clients: int, total: int) -> LoadResult:
    outcomes = Outcomes()
    tickets = itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=auth_headers(api_key), timeout=REQUEST_TIMEOUT_SECONDS, limits=limits
    ) as client:

        async def one_client() -> None:
            while next(tickets) < total:
                body = registration_body()
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/Devices/Register", json=body)
                except httpx.HTTPError as exc:
                    outcomes.failed(type(exc).__name__)
                    continue
                outcomes.answered(response.status_code, time.perf_counter() - started, response.content)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(clients):
                group.create_task(one_client())
        wall = time.perf_counter() - started
    return LoadResult(clients=clients, wall_seconds=wall, outcomes=outcomes)


def get_devices(base_url: str, api_key: str, device_ids: list[str], count: int) -> list[float]:
    """Latencies of `GET /v1/Devices/{id}`, cycling through `device_ids`."""
    latencies: list[float] = []
    with httpx.Client(
        base_url=base_url, headers=auth_headers(api_key), timeout=REQUEST_TIMEOUT_SECONDS
    ) as client:
        for device_id in itertools.islice(itertools.cycle(device_ids), count):
            started = time.perf_counter()
            response = client.get(f"/v1/Devices/{device_id}")
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            latencies.append(elapsed)
    return latencies
