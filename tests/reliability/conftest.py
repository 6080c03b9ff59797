"""Fixtures of the reliability suite and its closing summary (requests fuzzed, faults, crashes, records)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.config import ZatcaBaseUrls
from tests.fixtures.service import RunningService
from tests.fixtures.softhsm import SoftHsmToken
from tests.reliability.support import new_token, prepare_service, service_config
from tests.reliability.tally import TALLY

_ran = False


@dataclass
class PrivateService:
    """A service process of its own, with its own token and registry."""

    service: RunningService
    token: SoftHsmToken
    home: Path


class Fleet:
    """Starts private services on demand and stops every one of them at teardown."""

    def __init__(self, root: Path, emulator: Any) -> None:
        self._root = root
        self._emulator = emulator
        self._started: list[RunningService] = []

    def prepare(
        self,
        name: str,
        *,
        token: SoftHsmToken | None = None,
        base_urls: ZatcaBaseUrls | None = None,
        **config: Any,
    ) -> PrivateService:
        home = self._root / name
        token = token or new_token(home / "token")
        settings = service_config(home, token, base_urls or self._emulator.base_urls(), **config)
        running = prepare_service(home, settings)
        self._started.append(running)
        return PrivateService(running, token, home)

    def start(self, name: str, **kwargs: Any) -> PrivateService:
        private = self.prepare(name, **kwargs)
        private.service.start()
        return private

    def stop_all(self) -> None:
        for running in self._started:
            if running.process is not None and running.process.poll() is None:
                running.stop()
            running.process = None


@pytest.fixture
def fleet(tmp_path: Path, emulator: Any) -> Iterator[Fleet]:
    services = Fleet(tmp_path, emulator)
    yield services
    services.stop_all()


@pytest.fixture(scope="module")
def module_fleet(tmp_path_factory: pytest.TempPathFactory, emulator: Any) -> Iterator[Fleet]:
    services = Fleet(tmp_path_factory.mktemp("fleet"), emulator)
    yield services
    services.stop_all()


@pytest.fixture(autouse=True)
def _count_this_run() -> None:
    global _ran  # noqa: PLW0603 - one flag per pytest process, read by the summary hook
    _ran = True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ran:
        return
    terminalreporter.write_sep("=", "reliability summary")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
