"""How an emulator instance behaves: where it keeps its state, which faults it starts with."""

from __future__ import annotations

from typing import Literal

import msgspec

FaultKind = Literal["latency", "error-500", "timeout", "malformed-json", "wrong-key"]
FAULT_KINDS: tuple[FaultKind, ...] = ("latency", "error-500", "timeout", "malformed-json", "wrong-key")
DEFAULT_LATENCY_SECONDS = 1.0


class FaultSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Misbehave on the next `count` requests to the ZATCA endpoints.

    `seconds` is the added delay of a `latency` fault (default 1 s) and must be absent otherwise.
    """

    kind: FaultKind
    count: int = 1
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"fault count must be at least 1, got {self.count}")
        if self.kind == "latency":
            if self.seconds is not None and not 0 < self.seconds <= 3600:
                raise ValueError(f"latency seconds must be in (0, 3600], got {self.seconds}")
        elif self.seconds is not None:
            raise ValueError(f"seconds applies to latency faults only, not {self.kind}")

    @property
    def delay_seconds(self) -> float:
        return self.seconds if self.seconds is not None else DEFAULT_LATENCY_SECONDS


class EmulatorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str
    # Mark every compliance step passed at issuance, so `POST /production/csids` succeeds at once.
    auto_pass_compliance_steps: bool = False
    # Answer `PATCH /production/csids` with 428 and fresh compliance credentials instead of 200.
    renewal_requires_compliance: bool = False
    faults: tuple[FaultSpec, ...] = ()
    otp_ttl_seconds: float = 3600.0
    # How long a `timeout` fault holds a request before it finally answers 504.
    hang_seconds: float = 120.0


def parse_fault_argument(text: str) -> FaultSpec:
    """`KIND[:COUNT[:SECONDS]]` from the command line, e.g. `error-500:2` or `latency:3:0.5`."""
    kind, *rest = text.split(":")
    if kind not in FAULT_KINDS or len(rest) > 2:
        raise ValueError(f"expected KIND[:COUNT[:SECONDS]] with KIND one of {', '.join(FAULT_KINDS)}")
    try:
        count = int(rest[0]) if rest else 1
        seconds = float(rest[1]) if len(rest) == 2 else None
    except ValueError as exc:
        raise ValueError(f"COUNT must be an integer and SECONDS a number in {text!r}") from exc
    return FaultSpec(kind=kind, count=count, seconds=seconds)
