"""How an emulator instance behaves: where it keeps its state, which faults it starts with."""

from __future__ import annotations

from typing import Literal

import msgspec

FaultKind = Literal["latency", "error-500", "timeout", "malformed-json", "wrong-key", "connection-drop"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency",
    "error-500",
    "timeout",
    "malformed-json",
    "wrong-key",
    "connection-drop",
)
# Which ZATCA endpoint a request is for; `invoices` in a fault stands for the last three.
EndpointName = Literal[
    "compliance", "production-csids", "renewal", "compliance-invoices", "reporting", "clearance"
]
FaultTarget = Literal[
    "compliance", "production-csids", "renewal", "compliance-invoices", "reporting", "clearance", "invoices"
]
FAULT_TARGETS: tuple[FaultTarget, ...] = (
    "compliance",
    "production-csids",
    "renewal",
    "compliance-invoices",
    "reporting",
    "clearance",
    "invoices",
)
INVOICE_ENDPOINTS: frozenset[str] = frozenset({"compliance-invoices", "reporting", "clearance"})
DEFAULT_LATENCY_SECONDS = 1.0


class FaultSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Misbehave on the next `count` requests to the ZATCA endpoints.

    `seconds` is the added delay of a `latency` fault (default 1 s) and must be absent otherwise.
    `endpoint` limits the fault to requests for one endpoint (`invoices`: the three invoice
    endpoints); without it the fault hits whatever ZATCA request comes next.
    `connection-drop` starts the answer, then closes the connection before the body.
    """

    kind: FaultKind
    count: int = 1
    seconds: float | None = None
    endpoint: FaultTarget | None = None

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

    def applies_to(self, endpoint: EndpointName | None) -> bool:
        if self.endpoint is None or self.endpoint == endpoint:
            return True
        return self.endpoint == "invoices" and endpoint in INVOICE_ENDPOINTS


class EmulatorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str
    # Mark every compliance step passed at issuance, so `POST /production/csids` succeeds at once.
    auto_pass_compliance_steps: bool = False
    # Answer `PATCH /production/csids` with 428 and fresh compliance credentials instead of 200.
    renewal_requires_compliance: bool = False
    # Refuse compliance documents of this kind (e.g. `simplified-credit-note`) with a KSA error.
    refuse_kind: str | None = None
    # Accept compliance documents of this kind without crediting its step, so that
    # `POST /production/csids` answers Missing-ComplianceSteps (a step ZATCA has no record of).
    forget_kind: str | None = None
    faults: tuple[FaultSpec, ...] = ()
    otp_ttl_seconds: float = 3600.0
    # How long a `timeout` fault holds a request before it finally answers 504.
    hang_seconds: float = 120.0


def parse_fault_argument(text: str) -> FaultSpec:
    """`KIND[@ENDPOINT][:COUNT[:SECONDS]]`, e.g. `error-500:2`, `latency:3:0.5`, `timeout@reporting:2`."""
    head, *rest = text.split(":")
    kind, _, endpoint = head.partition("@")
    if kind not in FAULT_KINDS or len(rest) > 2:
        raise ValueError(
            f"expected KIND[@ENDPOINT][:COUNT[:SECONDS]] with KIND one of {', '.join(FAULT_KINDS)}"
        )
    if endpoint and endpoint not in FAULT_TARGETS:
        raise ValueError(f"ENDPOINT must be one of {', '.join(FAULT_TARGETS)}, got {endpoint!r}")
    try:
        count = int(rest[0]) if rest else 1
        seconds = float(rest[1]) if len(rest) == 2 else None
    except ValueError as exc:
        raise ValueError(f"COUNT must be an integer and SECONDS a number in {text!r}") from exc
    return msgspec.convert(
        {"kind": kind, "count": count, "seconds": seconds, "endpoint": endpoint or None}, FaultSpec
    )
