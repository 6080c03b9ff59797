"""What a registration asks for, once validated at the edge (no I/O, importable anywhere)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.domain import Environment, InvoiceFormat


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """A registration whose fields have already been validated at the edge."""

    environment: Environment
    invoice_format: InvoiceFormat
    otp: str
    vat: str
    organization_name: str
    organization_unit: str
    country: str
    egs_serial: str
    location: str
    industry: str
    invoice_type: str

    def __repr__(self) -> str:  # the OTP stays out of every log line and traceback
        return (
            f"RegistrationRequest(environment={self.environment}, vat={self.vat}, "
            f"egs_serial={self.egs_serial!r}, invoice_format={self.invoice_format})"
        )
