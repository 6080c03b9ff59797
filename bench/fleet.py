"""Registry side of a pre-populated fleet: rows that match keys put straight into the token.

The rows are what a finished registration leaves (status `active`, Model format, label
`zatca-device-<uuid>`), so the service's start-up reconciliation sees token and registry agree.
The activation data is fake but well-formed: nothing at start-up or in `GET /v1/Devices/{id}`
opens the token or the secret.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from appliance.domain import DeviceStatus, Environment, InvoiceFormat
from appliance.storage import ActivationData, DeviceRecord, SqliteRegistry
from appliance.x509.fields import egs_serial_number
from bench.clients import VAT

DEVICE_KEY_LABEL_PREFIX = "zatca-device-"
_FAKE_CSR_PEM = "-----BEGIN CERTIFICATE REQUEST-----\nYmVuY2htYXJr\n-----END CERTIFICATE REQUEST-----\n"
_SECRET_BLOB_BYTES = 1 + 12 + 44 + 16  # version, nonce, sealed 44-character secret, GCM tag


def device_label(device_id: uuid.UUID) -> str:
    return f"{DEVICE_KEY_LABEL_PREFIX}{device_id}"


def pending_record(device_id: uuid.UUID, now: datetime) -> DeviceRecord:
    egs_serial = f"FLEET-{device_id.hex[:20]}"
    return DeviceRecord(
        device_id=str(device_id),
        environment=Environment.DEVELOPMENT,
        invoice_format=InvoiceFormat.MODEL,
        status=DeviceStatus.PENDING,
        vat=VAT,
        egs_serial=egs_serial,
        common_name=egs_serial,
        serial_number=egs_serial_number(egs_serial, "ZatcaAppliance", "1.0"),
        organization_name="Benchmark Trading Co",
        organization_unit="Riyadh Branch",
        country="SA",
        location="Riyadh Olaya",
        industry="Retail",
        invoice_type="1100",
        key_label=device_label(device_id),
        key_id_hex=device_id.bytes.hex(),
        created_at=now,
        updated_at=now,
        created_by="benchmark",
    )


def activation_data(now: datetime) -> ActivationData:
    return ActivationData(
        csr_pem=_FAKE_CSR_PEM,
        request_id=str(int(now.timestamp() * 1000)),
        binary_security_token=base64.b64encode(base64.b64encode(secrets.token_bytes(600))).decode("ascii"),
        secret_ciphertext=secrets.token_bytes(_SECRET_BLOB_BYTES),
        certificate_serial=secrets.token_hex(8).lstrip("0") or "1",
        certificate_not_before=now,
        certificate_not_after=now + timedelta(days=5 * 365),
    )


def insert_active_devices(registry_path: Path, device_ids: Sequence[uuid.UUID]) -> None:
    """An active row per device, through SqliteRegistry as the service writes them."""

    async def insert() -> None:
        async with await SqliteRegistry.open(registry_path) as registry:
            for device_id in device_ids:
                now = datetime.now(UTC)
                await registry.create_pending(pending_record(device_id, now))
                await registry.mark_active(str(device_id), activation_data(now))

    anyio.run(insert)


def time_active_listing(registry_path: Path) -> tuple[int, float]:
    """Rows and seconds of `list_by_status(active)`, one of the reads start-up reconciliation makes."""

    async def listing() -> tuple[int, float]:
        async with await SqliteRegistry.open(registry_path) as registry:
            started = time.perf_counter()
            rows = await registry.list_by_status(DeviceStatus.ACTIVE)
            return len(rows), time.perf_counter() - started

    return anyio.run(listing)


def create_api_key(registry_path: Path) -> str:
    """What `zatca-appliance apikey create bench` does, without a process of its own."""

    async def create() -> str:
        async with await SqliteRegistry.open(registry_path) as registry:
            return await registry.create_api_key("bench")

    return anyio.run(create)
