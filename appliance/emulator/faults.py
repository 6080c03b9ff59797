"""Injected misbehaviour: a queue of faults, each spent on the next requests to ZATCA endpoints.

A fault limited to one endpoint waits for a request to that endpoint; the others go on in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from appliance.emulator.settings import EndpointName, FaultKind, FaultSpec, FaultTarget


class PendingFault(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: FaultKind
    remaining: int
    seconds: float | None
    endpoint: FaultTarget | None = None


@dataclass(slots=True)
class _Entry:
    spec: FaultSpec
    remaining: int


class FaultQueue:
    """First in, first out: a fault applies to its next `count` requests, then the next fault does.

    A request suffers the first pending fault that applies to its endpoint.
    """

    def __init__(self, initial: Iterable[FaultSpec] = ()) -> None:
        self._entries: deque[_Entry] = deque()
        for spec in initial:
            self.add(spec)

    def add(self, spec: FaultSpec) -> None:
        self._entries.append(_Entry(spec, spec.count))

    def clear(self) -> None:
        self._entries.clear()

    def pending(self) -> list[PendingFault]:
        return [
            PendingFault(entry.spec.kind, entry.remaining, entry.spec.seconds, entry.spec.endpoint)
            for entry in self._entries
        ]

    def take(self, endpoint: EndpointName | None = None) -> FaultSpec | None:
        """The fault the current request suffers, if any; spends one of its count.

        `endpoint` None (a request not tied to one endpoint) only meets faults not limited to one.
        """
        entry = next((entry for entry in self._entries if entry.spec.applies_to(endpoint)), None)
        if entry is None:
            return None
        entry.remaining -= 1
        if entry.remaining == 0:
            self._entries.remove(entry)
        return entry.spec
