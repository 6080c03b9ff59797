"""Private service instances for the reliability tests: each with its own token and registry.

The session `service` runs on the session's token; tests that crash, fuzz or misconfigure a
service start their own here, so nothing they do leaks into other tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config import ZatcaBaseUrls
from tests.fixtures.service import RunningService
from tests.fixtures.softhsm import SoftHsmToken
from tests.reliability.support import configured_service, new_token, service_config


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

    def prepare(self, name: str, *, base_urls: ZatcaBaseUrls | None = None) -> PrivateService:
        """Token, configuration and API key in `<root>/<name>`; the process is not started."""
        home = self._root / name
        token = new_token(home / "token")
        settings = service_config(home, token, base_urls or self._emulator.base_urls())
        running = configured_service(home, settings)
        self._started.append(running)
        return PrivateService(running, token, home)

    def start(self, name: str, *, base_urls: ZatcaBaseUrls | None = None) -> PrivateService:
        private = self.prepare(name, base_urls=base_urls)
        private.service.start()
        return private

    def stop_all(self) -> None:
        for running in self._started:
            if running.process is not None and running.process.poll() is None:
                running.stop()
            running.process = None
