"""Issue 13 over real HTTP: strict JSON, one live device per EGS unit, scoped API keys, retirement.

The session's service (real SoftHSM token, emulator on loopback); keys are made with the CLI,
the token is judged with pkcs11-tool and the registry read straight from its SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.service import VAT, RunningService, cli, registration_body
from tests.integration.test_registration_e2e import post_registration
from tests.support.pkcs11_tool import list_private_keys

OTHER_VAT = "300000000000003"


def create_key(service: RunningService, name: str, *options: str) -> tuple[str, str]:
    """A new key and its id (printed on stderr)."""
    done = cli(
        "apikey", "create", f"{name}-{uuid.uuid4().hex[:8]}", *options, "--config", str(service.config_path)
    )
    return done.stdout.strip(), done.stderr.strip().removeprefix("key id: ")


def register(
    service: RunningService, emulator: Any, api_key: str | None = None, **overrides: Any
) -> httpx.Response:
    body = registration_body(**overrides)
    body["OTP"] = emulator.mint_otp(body["Environment"], body["Organization"]["Vat"])
    with service.client(api_key=api_key) as client:
        return post_registration(service, client, body)


def audit_rows(service: RunningService, device_id: str) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{service.registry_path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT event, actor FROM audit_log WHERE device_id = ? ORDER BY seq", (device_id,)
        ).fetchall()
    return [(event, actor) for event, actor in rows]


def codes(response: httpx.Response) -> set[str]:
    return {item["code"] for item in response.json()["errorList"]}


# Item 3: strict JSON ---------------------------------------------------------------------------


def test_an_exact_duplicate_field_is_a_400_naming_it_and_registers_nothing(
    service: RunningService, service_token: Any
) -> None:
    keys_before = set(list_private_keys(service_token))
    text = json.dumps(registration_body(invoice_format="Model"))
    body = text[:-1] + ', "InvoiceFormat": "Xml"}'
    with service.client() as client:
        response = client.post(
            "/v1/Devices/Register", content=body.encode(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert {(item["code"], item.get("field")) for item in response.json()["errorList"]} == {
        ("Duplicate-Field", "InvoiceFormat")
    }
    assert set(list_private_keys(service_token)) == keys_before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415(service: RunningService, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with service.client() as client:
        response = client.post(
            "/v1/Devices/Register", content=json.dumps(registration_body()).encode(), headers=headers
        )
    assert response.status_code == 415, response.text
    assert codes(response) == {"Unsupported-Media-Type"}


# Item 4: one live device per EGS unit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("DUPX-{tag}", "1-ZatcaAppliance|2-1.0|3-DUPX-{tag}"),
        ("Caf\u00e9-{tag}", "Cafe\u0301-{tag}"),
    ],
)
def test_two_spellings_of_one_unit_are_one_device(
    service: RunningService, emulator: Any, first: str, second: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    registered = register(service, emulator, egs_serial=first.format(tag=tag))
    assert registered.status_code == 200, registered.text
    again = register(service, emulator, egs_serial=second.format(tag=tag))
    assert again.status_code == 409, again.text
    assert registered.json()["deviceId"] in again.json()["errorList"][0]["message"]


# Items 6 and 10: scoped keys --------------------------------------------------------------------


def test_a_key_for_one_vat_cannot_see_or_act_for_another(service: RunningService, emulator: Any) -> None:
    key_a, key_a_id = create_key(service, "branch-a", "--vat", VAT)
    other = register(service, emulator, vat=OTHER_VAT)  # by the unscoped session key
    assert other.status_code == 200, other.text
    other_id = other.json()["deviceId"]

    mine = register(service, emulator, api_key=key_a)
    assert mine.status_code == 200, mine.text
    refused = register(service, emulator, api_key=key_a, vat=OTHER_VAT)
    assert refused.status_code == 403 and codes(refused) == {"Forbidden"}
    with service.client(api_key=key_a) as client:
        assert client.get(f"/v1/Devices/{other_id}").status_code == 404
        assert client.delete(f"/v1/Devices/{other_id}").status_code == 404
        listed = client.get("/v1/Devices", params={"limit": 500}).json()
        assert client.get(f"/v1/Devices/{mine.json()['deviceId']}").status_code == 200
    assert listed["items"] and {item["vat"] for item in listed["items"]} == {VAT}
    # The device is recorded, and audited, under the key's id, not its name.
    row = service.registry_rows()[mine.json()["deviceId"]]
    assert row["created_by"] == key_a_id and key_a_id.startswith("key_")
    assert ("key.generated", f"apikey:{key_a_id}") in audit_rows(service, mine.json()["deviceId"])


def test_a_key_without_a_role_is_403(service: RunningService, emulator: Any) -> None:
    reader, _ = create_key(service, "reader", "--role", "read")
    registrar, _ = create_key(service, "registrar", "--role", "register")
    device = register(service, emulator)
    assert device.status_code == 200, device.text
    device_id = device.json()["deviceId"]

    assert register(service, emulator, api_key=reader).status_code == 403
    with service.client(api_key=reader) as client:
        assert client.get(f"/v1/Devices/{device_id}").status_code == 200
        # Not its device and not an admin: may see it, may not retire it.
        assert client.delete(f"/v1/Devices/{device_id}").status_code == 403
    with service.client(api_key=registrar) as client:
        assert client.get("/v1/Devices").status_code == 403


def test_a_registration_quota_answers_429(service: RunningService, emulator: Any) -> None:
    limited, _ = create_key(service, "limited", "--registrations-per-hour", "1")
    assert register(service, emulator, api_key=limited).status_code == 200
    refused = register(service, emulator, api_key=limited)
    assert refused.status_code == 429 and codes(refused) == {"Rate-Limited"}
    assert int(refused.headers["retry-after"]) > 0


# Retirement ------------------------------------------------------------------------------------


@pytest.mark.parametrize("invoice_format", ["Model", "Xml"])
def test_the_owning_key_retires_its_device_and_the_unit_registers_again(
    service: RunningService, emulator: Any, service_token: Any, invoice_format: str
) -> None:
    owner, owner_id = create_key(service, "owner", "--vat", VAT)
    serial = f"RET-{uuid.uuid4().hex[:8]}"
    registered = register(service, emulator, api_key=owner, egs_serial=serial, invoice_format=invoice_format)
    assert registered.status_code == 200, registered.text
    device_id = registered.json()["deviceId"]
    assert uuid.UUID(device_id).hex in list_private_keys(service_token)

    with service.client(api_key=owner) as client:
        retired = client.delete(f"/v1/Devices/{device_id}")
        assert retired.status_code == 200, retired.text
        assert client.delete(f"/v1/Devices/{device_id}").status_code == 409
        shown = client.get(f"/v1/Devices/{device_id}").json()

    assert (retired.json()["status"], retired.json()["retiredBy"]) == ("retired", f"apikey:{owner_id}")
    assert shown["status"] == "retired" and shown["retiredAt"]
    assert uuid.UUID(device_id).hex not in list_private_keys(service_token)
    assert service.registry_rows()[device_id]["status"] == "retired"
    events = audit_rows(service, device_id)
    assert ("device.retired", f"apikey:{owner_id}") in events
    assert ("key.destroyed", f"apikey:{owner_id}") in events
    again = register(service, emulator, api_key=owner, egs_serial=serial)
    assert again.status_code == 200, again.text


def test_devices_retire_on_the_command_line(
    service: RunningService, emulator: Any, service_token: Any
) -> None:
    registered = register(service, emulator)
    assert registered.status_code == 200, registered.text
    device_id = registered.json()["deviceId"]

    done = cli("devices", "retire", device_id, "--config", str(service.config_path))

    assert "key destroyed" in done.stdout
    assert uuid.UUID(device_id).hex not in list_private_keys(service_token)
    assert service.registry_rows()[device_id]["retired_by"] == "cli"
    assert ("device.retired", "cli") in audit_rows(service, device_id)
