"""Fixtures of the reliability suite and its closing summary (requests fuzzed, faults, crashes, records)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.fleet import Fleet
from tests.reliability.tally import TALLY

_ran = False


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
