"""ZATCA gateway adapter: the client, its frozen response models and token decoding."""

from appliance.zatca.client import (
    CLEARANCE,
    COMPLIANCE_CSID,
    COMPLIANCE_INVOICE,
    PRODUCTION_CSID,
    PRODUCTION_CSID_RENEWAL,
    REPORTING,
    CallObserver,
    ZatcaClient,
    ZatcaEndpoint,
)
from appliance.zatca.invoices import InvoiceMessage, InvoiceResult, InvoiceSubmission
from appliance.zatca.models import Credentials, CsidResponse, RenewalOutcome
from appliance.zatca.token import decode_binary_security_token

__all__ = [
    "CLEARANCE",
    "COMPLIANCE_CSID",
    "COMPLIANCE_INVOICE",
    "PRODUCTION_CSID",
    "PRODUCTION_CSID_RENEWAL",
    "REPORTING",
    "CallObserver",
    "Credentials",
    "CsidResponse",
    "InvoiceMessage",
    "InvoiceResult",
    "InvoiceSubmission",
    "RenewalOutcome",
    "ZatcaClient",
    "ZatcaEndpoint",
    "decode_binary_security_token",
]
