"""ZATCA gateway adapter: the client, its frozen response models and token decoding."""

from appliance.zatca.client import (
    COMPLIANCE_CSID,
    PRODUCTION_CSID,
    PRODUCTION_CSID_RENEWAL,
    CallObserver,
    ZatcaClient,
    ZatcaEndpoint,
)
from appliance.zatca.models import Credentials, CsidResponse, RenewalOutcome
from appliance.zatca.token import decode_binary_security_token

__all__ = [
    "COMPLIANCE_CSID",
    "PRODUCTION_CSID",
    "PRODUCTION_CSID_RENEWAL",
    "CallObserver",
    "Credentials",
    "CsidResponse",
    "RenewalOutcome",
    "ZatcaClient",
    "ZatcaEndpoint",
    "decode_binary_security_token",
]
