"""What the ZATCA client returns: frozen Structs whose reprs never show a token or secret."""

from __future__ import annotations

from typing import Any

import msgspec


class Credentials(msgspec.Struct, frozen=True):
    """A CSID as Basic-auth material: the token exactly as ZATCA sent it, and its secret."""

    binary_security_token: str
    secret: str

    def __repr__(self) -> str:
        return "Credentials(binary_security_token=<hidden>, secret=<hidden>)"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [("binary_security_token", "<hidden>"), ("secret", "<hidden>")]


class CsidResponse(msgspec.Struct, frozen=True):
    """One issued CSID (compliance or production)."""

    request_id: str
    disposition_message: str
    binary_security_token: str
    secret: str
    token_type: str | None
    certificate_der: bytes

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.binary_security_token, self.secret)

    def __repr__(self) -> str:
        return (
            f"CsidResponse(request_id={self.request_id!r}, "
            f"disposition_message={self.disposition_message!r}, token_type={self.token_type!r}, "
            f"certificate_der=<{len(self.certificate_der)} bytes>, "
            "binary_security_token=<hidden>, secret=<hidden>)"
        )

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("request_id", self.request_id),
            ("disposition_message", self.disposition_message),
            ("token_type", self.token_type),
            ("binary_security_token", "<hidden>"),
            ("secret", "<hidden>"),
        ]


class RenewalOutcome(msgspec.Struct, frozen=True):
    """Result of `PATCH /production/csids`.

    `issued=True`: HTTP 200, `csid` is the new production CSID.
    `issued=False`: HTTP 428, a normal outcome: `csid` holds renewed *compliance* credentials;
    the compliance checks must pass with them, then `request_production_csid` with its request id.
    """

    issued: bool
    csid: CsidResponse


class CsidWire(msgspec.Struct):
    """The CSID answer as it arrives; every field optional so that absence is ours to judge."""

    request_id: int | str | None = msgspec.field(default=None, name="requestID")
    disposition_message: str | None = msgspec.field(default=None, name="dispositionMessage")
    binary_security_token: str | None = msgspec.field(default=None, name="binarySecurityToken")
    secret: str | None = None
    token_type: str | None = msgspec.field(default=None, name="tokenType")
