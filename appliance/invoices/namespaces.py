"""Namespace URIs and prefixes of the ZATCA UBL 2.1 documents (zatca-invoice-signing.md 2.1).

The prefixes are not cosmetic: the SDK's XPaths and the SignedProperties digest are prefix-sensitive,
so every module builds elements with exactly these prefixes.
"""

from __future__ import annotations

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"
SIG = "urn:oasis:names:specification:ubl:schema:xsd:CommonSignatureComponents-2"
SAC = "urn:oasis:names:specification:ubl:schema:xsd:SignatureAggregateComponents-2"
SBC = "urn:oasis:names:specification:ubl:schema:xsd:SignatureBasicComponents-2"
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"

# The root always declares ext, even before the stamp exists (pitfall P6): declaring it later would
# change the canonical form of every element and so the invoice hash.
NSMAP_ROOT: dict[str | None, str] = {None: INVOICE_NS, "cac": CAC, "cbc": CBC, "ext": EXT}

# Prefix map for XPath queries over any of the documents.
XPATH_NS: dict[str, str] = {
    "inv": INVOICE_NS,
    "cac": CAC,
    "cbc": CBC,
    "ext": EXT,
    "sig": SIG,
    "sac": SAC,
    "sbc": SBC,
    "ds": DS,
    "xades": XADES,
}

# PIH of the first invoice of a chain: base64 of the hex text of SHA-256("0").
INITIAL_PIH = "NWZlY2ViNjZmZmM4NmYzOGQ5NTI3ODZjNmQ2OTZjNzljMmRiYzIzOWRkNGU5MWI0NjcyOWQ3M2EyN2ZiNTdlOQ=="


def qname(ns: str, local: str) -> str:
    """Clark notation `{ns}local`, as lxml wants it."""
    return f"{{{ns}}}{local}"
