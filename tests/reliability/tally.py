"""What the reliability suite did, counted for the closing summary (see conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Tally:
    requests_fuzzed: int = 0
    faults_injected: int = 0
    crashes_survived: int = 0
    records_checked: int = 0
    # Keys pkcs11-tool did not list but that signed when asked (see support.signs_with).
    listing_misses: int = 0

    def lines(self) -> list[str]:
        return [f"{field.name.replace('_', ' ')}: {getattr(self, field.name)}" for field in fields(self)]


# One per pytest process: the suite runs in a single process (no xdist), so a module global is the
# session's tally.
TALLY = Tally()
