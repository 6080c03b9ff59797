"""The API-key store on a real SQLite file."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.domain import ApiKeyRole
from appliance.errors import Conflict, ValidationFailed
from appliance.storage import SqliteRegistry
from appliance.storage.apikeys import NewApiKey


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SteppingClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def registry(tmp_path: Path, clock: SteppingClock) -> AsyncIterator[SqliteRegistry]:
    async with await SqliteRegistry.open(tmp_path / "registry.sqlite3", clock=clock) as opened:
        yield opened


@pytest.mark.anyio
async def test_created_key_authenticates_as_its_name(registry: SqliteRegistry) -> None:
    key = await registry.create_api_key("pos-fleet")
    other = await registry.create_api_key("back-office")

    assert key.startswith("zak_") and len(key) >= 4 + 43
    assert key != other
    assert await registry.authenticate(key) == "pos-fleet"
    assert await registry.authenticate(other) == "back-office"


@pytest.mark.anyio
@pytest.mark.parametrize("presented", ["", "zak_", "not-a-key", "\udcff"])
async def test_unknown_keys_do_not_authenticate(registry: SqliteRegistry, presented: str) -> None:
    await registry.create_api_key("pos-fleet")
    assert await registry.authenticate(presented) is None


@pytest.mark.anyio
async def test_almost_right_key_does_not_authenticate(registry: SqliteRegistry) -> None:
    key = await registry.create_api_key("pos-fleet")
    last = key[-1]
    assert await registry.authenticate(key[:-1] + ("A" if last != "A" else "B")) is None
    assert await registry.authenticate(key + "x") is None
    assert await registry.authenticate(key.upper()) is None


@pytest.mark.anyio
async def test_revoked_key_is_refused_and_listed_as_revoked(
    registry: SqliteRegistry, clock: SteppingClock
) -> None:
    key = await registry.create_api_key("pos-fleet")
    clock.now += timedelta(hours=1)

    assert await registry.revoke_api_key("pos-fleet") is True
    assert await registry.revoke_api_key("pos-fleet") is False
    assert await registry.revoke_api_key("never-existed") is False

    assert await registry.authenticate(key) is None
    [info] = await registry.list_api_keys()
    assert (info.name, info.revoked_at) == ("pos-fleet", clock.now)


@pytest.mark.anyio
async def test_a_name_is_never_given_to_a_second_key(registry: SqliteRegistry) -> None:
    """Issue 13 item 10: a revoked name could be created again, so `apikey:NAME` named two keys."""
    old = await registry.create_api_key("pos-fleet")
    with pytest.raises(Conflict, match="pos-fleet"):
        await registry.create_api_key("pos-fleet")
    assert await registry.authenticate(old) == "pos-fleet"

    await registry.revoke_api_key("pos-fleet")
    with pytest.raises(Conflict, match="never reused"):
        await registry.create_api_key("pos-fleet")

    assert await registry.authenticate(old) is None
    assert [(k.name, k.revoked_at is not None) for k in await registry.list_api_keys()] == [
        ("pos-fleet", True)
    ]


@pytest.mark.anyio
async def test_every_key_has_its_own_id_and_the_default_roles(registry: SqliteRegistry) -> None:
    first = await registry.create_api_key("pos-fleet")
    second = await registry.create_api_key("back-office")

    scopes = [await registry.authenticate_key(key) for key in (first, second)]

    assert all(scope is not None for scope in scopes)
    ids = [scope.key_id for scope in scopes if scope is not None]
    assert len(set(ids)) == 2 and all(key_id.startswith("key_") for key_id in ids)
    assert [info.key_id for info in await registry.list_api_keys()] == ids
    for scope in scopes:
        assert scope is not None and scope.vats is None
        assert scope.roles == {ApiKeyRole.REGISTER, ApiKeyRole.INVOICE, ApiKeyRole.READ}
        assert scope.actor == f"apikey:{scope.key_id}"


@pytest.mark.anyio
async def test_a_scoped_key_carries_its_vats_roles_and_quota(registry: SqliteRegistry) -> None:
    key, key_id = await registry.create_scoped_api_key(
        NewApiKey(
            name="branch-a",
            roles=frozenset({ApiKeyRole.READ}),
            vats=frozenset({"311111111100003"}),
            registrations_per_hour=5,
        )
    )
    scope = await registry.authenticate_key(key)
    assert scope is not None
    assert (scope.key_id, scope.name, scope.registrations_per_hour) == (key_id, "branch-a", 5)
    assert scope.sees_vat("311111111100003") and not scope.sees_vat("399999999900003")
    assert scope.has_role(ApiKeyRole.READ) and not scope.has_role(ApiKeyRole.REGISTER)
    [record] = [r for r in await registry.audit_records() if r.event == "apikey.created"]
    assert f"id={key_id}" in record.detail and "vats=311111111100003" in record.detail


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (NewApiKey(name="x", roles=frozenset()), "role"),
        (NewApiKey(name="x", vats=frozenset()), "vat"),
        (NewApiKey(name="x", vats=frozenset({"123"})), "vat"),
        (NewApiKey(name="x", registrations_per_hour=0), "registrations_per_hour"),
        (NewApiKey(name="key_0123456789abcdef"), "name"),
    ],
)
async def test_unusable_scopes_are_refused(registry: SqliteRegistry, request_: NewApiKey, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await registry.create_scoped_api_key(request_)
    assert field in {problem.field for problem in caught.value.problems}
    assert await registry.list_api_keys() == []


@pytest.mark.anyio
async def test_a_key_is_revoked_by_its_id_too(registry: SqliteRegistry) -> None:
    key, key_id = await registry.create_scoped_api_key(NewApiKey(name="pos-fleet"))
    assert await registry.revoke_api_key(key_id) is True
    assert await registry.authenticate(key) is None


@pytest.mark.anyio
async def test_list_shows_every_key_oldest_first(registry: SqliteRegistry, clock: SteppingClock) -> None:
    created = clock.now
    await registry.create_api_key("a")
    clock.now += timedelta(minutes=5)
    await registry.create_api_key("b")

    keys = await registry.list_api_keys()

    assert [(k.name, k.created_at, k.revoked_at, k.last_used_at) for k in keys] == [
        ("a", created, None, None),
        ("b", created + timedelta(minutes=5), None, None),
    ]


@pytest.mark.anyio
async def test_last_used_is_recorded_at_most_once_a_minute(
    registry: SqliteRegistry, clock: SteppingClock
) -> None:
    key = await registry.create_api_key("pos-fleet")
    first_use = clock.now + timedelta(seconds=1)

    async def last_used() -> datetime | None:
        [info] = await registry.list_api_keys()
        return info.last_used_at

    clock.now = first_use
    await registry.authenticate(key)
    assert await last_used() == first_use

    clock.now = first_use + timedelta(seconds=59)
    await registry.authenticate(key)
    assert await last_used() == first_use

    clock.now = first_use + timedelta(seconds=60)
    await registry.authenticate(key)
    assert await last_used() == clock.now


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["", " padded ", "x" * 65, "tab\there"])
async def test_unusable_names_are_refused(registry: SqliteRegistry, name: str) -> None:
    with pytest.raises(ValidationFailed):
        await registry.create_api_key(name)
    assert await registry.list_api_keys() == []


def contents_of_files_in(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


@pytest.mark.anyio
async def test_database_files_hold_only_a_hash_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    registry = await SqliteRegistry.open(path)
    key = await registry.create_api_key("pos-fleet")
    secret_part = key.removeprefix("zak_")

    # While open, the key may still sit in the WAL: look at every file SQLite wrote.
    files_while_open = contents_of_files_in(tmp_path)
    await registry.close()
    files_after_close = contents_of_files_in(tmp_path)

    assert any(name.endswith("-wal") for name in files_while_open)
    for contents in (*files_while_open.values(), *files_after_close.values()):
        assert secret_part.encode() not in contents
    [database] = files_after_close.values()
    assert hashlib.sha256(key.encode()).digest() in database


@pytest.mark.anyio
async def test_operator_chosen_key_authenticates(registry: SqliteRegistry) -> None:
    chosen = "dev-key-chosen-by-the-operator"
    await registry.add_api_key("dev-given", chosen)
    assert await registry.authenticate(chosen) == "dev-given"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "chosen", ["short", " padded-key-with-spaces-around ", "key-with-non-ascii-ééééééééé"]
)
async def test_weak_or_odd_chosen_keys_are_refused(registry: SqliteRegistry, chosen: str) -> None:
    with pytest.raises(ValidationFailed):
        await registry.add_api_key("dev-given", chosen)
    assert await registry.authenticate(chosen) is None


@pytest.mark.anyio
async def test_revoked_chosen_key_cannot_be_brought_back(registry: SqliteRegistry) -> None:
    chosen = "dev-key-chosen-by-the-operator"
    await registry.add_api_key("dev-given", chosen)
    await registry.revoke_api_key("dev-given")

    with pytest.raises(Conflict, match="issued before"):
        await registry.add_api_key("dev-given-again", chosen)
    assert await registry.authenticate(chosen) is None
