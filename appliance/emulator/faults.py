"""Injected misbehaviour: a queue of faults, each spent on the next requests to ZATCA endpoints."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from appliance.emulator.settings import FaultKind, FaultSpec


class PendingFault(msgspec.Struct, frozen=True):
    kind: FaultKind
    remaining: int
    seconds: float | None


@dataclass(slots=True)
class _Entry:
    spec: FaultSpec
    remaining: int


class FaultQueue:
    """First in, first out: a fault applies to its next `count` requests, then the next fault does."""

    def __init__(self, initial: Iterable[FaultSpec] = ()) -> None:
        self._entries: deque[_Entry] = deque()
        for spec in initial:
            self.add(spec)

    def add(self, spec: FaultSpec) -> None:
        self._entries.append(_Entry(spec, spec.count))

    def clear(self) -> None:
        self._entries.clear()

    def pending(self) -> list[PendingFault]:
        return [PendingFault(entry.spec.kind, entry.remaining, entry.spec.seconds) for entry in self._entries]

    def take(self) -> FaultSpec | None:
        """The fault the current request suffers, if any; spends one of its count."""
        if not self._entries:
            return None
        entry = self._entries[0]
        entry.remaining -= 1
        if entry.remaining == 0:
            self._entries.popleft()
        return entry.spec
