"""The verifier's result types (re-exported by verify.py), apart so that check modules can share them."""

from __future__ import annotations

import msgspec

NOT_CHECKED = "not checked: "  # reason prefix of a check the document or the call is not subject to


class Check(msgspec.Struct, frozen=True):
    name: str
    ok: bool
    reason: str


class VerificationReport(msgspec.Struct, frozen=True):
    checks: list[Check]
    invoice_hash: str  # recomputed; "" when the XML could not be parsed
    uuid: str | None
    icv: int | None
    pih: str | None
    is_simplified: bool

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]
