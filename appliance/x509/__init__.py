"""The ZATCA CSR: registration-field rules (`fields`) and the byte-exact PKCS#10 request (`csr`)."""

from appliance.x509.csr import build_zatca_csr, csr_request_value, csr_to_pem
from appliance.x509.fields import (
    CsrFields,
    build_csr_fields,
    egs_serial_number,
    parse_invoice_type,
    validate_registration_fields,
)

__all__ = [
    "CsrFields",
    "build_csr_fields",
    "build_zatca_csr",
    "csr_request_value",
    "csr_to_pem",
    "egs_serial_number",
    "parse_invoice_type",
    "validate_registration_fields",
]
