"""Shared by the reliability tests: service configuration, registry/token invariants, error bodies."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from appliance.config import (
    AppConfig,
    LoggingSettings,
    ServerSettings,
    StorageSettings,
    ZatcaBaseUrls,
    ZatcaSettings,
)
from tests.fixtures.emulator import EmulatorProcess
from tests.fixtures.service import RunningService, cli, free_port, write_config
from tests.fixtures.softhsm import SoftHsmToken, create_token
from tests.reliability.tally import TALLY
from tests.support.pkcs11_tool import list_private_keys

DEVICE_LABEL_PREFIX = "zatca-device-"
ERROR_SOURCES = {"Appliance", "ZATCA"}
IDLE_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05


def new_token(directory: Path, label: str = "zatca-reliability") -> SoftHsmToken:
    directory.mkdir(parents=True, exist_ok=True)
    return create_token(directory, label)


def service_config(home: Path, token: SoftHsmToken, base_urls: ZatcaBaseUrls) -> AppConfig:
    """A service on a free loopback port, using `token` and a registry under `home`."""
    return AppConfig(
        server=ServerSettings(host="127.0.0.1", port=free_port()),
        hsm=token.settings(),
        zatca=ZatcaSettings(base_urls=base_urls, read_timeout=2.0, connect_timeout=2.0),
        storage=StorageSettings(data_dir=str(home / "data")),
        logging=LoggingSettings(level="INFO", format="json"),
    )


def configured_service(home: Path, config: AppConfig) -> RunningService:
    """Write the config and an API key; the caller starts the process."""
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / "config.yaml"
    write_config(config_path, config)
    api_key = cli("apikey", "create", "reliability", "--config", str(config_path)).stdout.strip()
    return RunningService(
        config=config, config_path=config_path, log_path=home / "service.log", api_key=api_key
    )


def assert_error_body(response: httpx.Response) -> None:
    assert_error_document(response.status_code, response.headers.get("content-type", ""), response.content)


def assert_error_document(status: int, content_type: str, payload: bytes) -> None:
    """The appliance's one error shape: {"status": "Failed", "errorList": [{code, message, source, ...}]}."""
    assert content_type.startswith("application/json"), (status, content_type, payload[:500])
    body = json.loads(payload)
    assert isinstance(body, dict), (status, body)
    assert body.get("status") == "Failed", (status, body)
    items = body.get("errorList")
    assert isinstance(items, list) and items, (status, body)
    for item in items:
        assert isinstance(item, dict), (status, body)
        assert isinstance(item.get("code"), str) and item["code"], (status, body)
        assert isinstance(item.get("message"), str) and item["message"], (status, body)
        assert item.get("source") in ERROR_SOURCES, (status, body)
        assert item.get("field") is None or isinstance(item["field"], str), (status, body)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def pending_rows(service: RunningService) -> list[dict[str, Any]]:
    return [row for row in service.registry_rows().values() if row["status"] == "pending"]


def wait_until_idle(service: RunningService) -> None:
    """Registrations finish their bookkeeping even when the client went away; wait for that."""
    wait_until(lambda: not pending_rows(service), "the service to finish its pending registrations")


def check_invariants(
    service: RunningService, token: SoftHsmToken, *, failed_rows_keep_no_key: bool = True
) -> int:
    """The registry and the token agree; returns how many records (rows + keys) were checked.

    - every appliance key (label `zatca-device-...`) in the token has a registry row, with that label;
    - every active row has its key and the credentials of an active device;
    - no two live (pending/active) rows for the same environment, VAT and EGS serial;
    - no pending row (call this once the service is idle);
    - with `failed_rows_keep_no_key`, no failed row still has a key in the token.
    """
    rows = service.registry_rows()
    keys = {
        key.id_hex: key
        for key in list_private_keys(token).values()
        if key.label.startswith(DEVICE_LABEL_PREFIX)
    }
    by_key_id = {row["key_id_hex"]: row for row in rows.values()}
    problems: list[str] = []
    for key_id, key in keys.items():
        row = by_key_id.get(key_id)
        if row is None:
            problems.append(f"token key {key.label} ({key_id}) has no registry row")
        elif row["key_label"] != key.label:
            problems.append(
                f"token key {key_id} is labelled {key.label!r}, its row says {row['key_label']!r}"
            )
        elif row["status"] == "failed" and failed_rows_keep_no_key:
            problems.append(f"failed device {row['device_id']} still has its key {key.label} in the token")
    for row in rows.values():
        if row["status"] == "active":
            if row["key_id_hex"] not in keys and not signs_with(token, row["key_id_hex"]):
                problems.append(f"active device {row['device_id']} has no key in the token")
            if not (row["binary_security_token"] and row["secret_ciphertext"] and row["certificate_serial"]):
                problems.append(f"active device {row['device_id']} lacks its credentials")
        elif row["status"] == "pending":
            problems.append(f"device {row['device_id']} is still pending although the service is idle")
        elif row["status"] == "failed" and not row["failure_code"]:
            problems.append(f"failed device {row['device_id']} has no failure code")
    live = Counter(
        (row["environment"], row["vat"], row["egs_serial"])
        for row in rows.values()
        if row["status"] in ("pending", "active")
    )
    problems += [f"{count} live devices for {unit}" for unit, count in live.items() if count > 1]
    checked = len(rows) + len(keys)
    TALLY.records_checked += checked
    assert not problems, "\n".join(problems)
    return checked


def compliance_requests(emulator: EmulatorProcess) -> int:
    """CSR submissions the emulator has received so far (all environments), counted on arrival."""
    return sum(count for name, count in emulator.request_counts().items() if name.endswith("/compliance"))


def rows_with_serials(service: RunningService, serials: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(serials)
    return [row for row in service.registry_rows().values() if row["egs_serial"] in wanted]


def signs_with(token: SoftHsmToken, key_id_hex: str) -> bool:
    """Whether the token signs with the private key of this CKA_ID: proof the key exists.

    SoftHSM's object enumeration from a fresh process right after a kill -9 and restart has
    (rarely) left out an object that exists: the listing missed an active device's key that
    was listed, and signed, when looked at again. A key that signs is in the token, so only a key
    that neither lists nor signs counts as missing."""
    with tempfile.TemporaryDirectory() as scratch:
        digest = Path(scratch) / "digest"
        digest.write_bytes(hashlib.sha256(key_id_hex.encode()).digest())
        result = token.pkcs11_tool(
            "--sign",
            "-m",
            "ECDSA",
            "--id",
            key_id_hex,
            "--input-file",
            str(digest),
            "--output-file",
            str(Path(scratch) / "signature"),
            login=True,
        )
        signed = result.returncode == 0 and (Path(scratch) / "signature").stat().st_size > 0
    if signed:
        TALLY.listing_misses += 1
    return signed
