"""The `ext:UBLExtensions` subtree of the SDK template (zatca-invoice-signing.md 4.1), built with lxml.

Namespace declarations sit where the SDK puts them (sig/sac/sbc on UBLDocumentSignatures, ds on
ds:Signature, xades on QualifyingProperties) and nowhere else: SignedProperties carries no local
declaration, as 4.4 recommends, so its dom4j form is the plain one. The subtree is indented in the SDK's
4-space style; that whitespace is inside the hashed SignedProperties text but outside the invoice hash.
"""

from __future__ import annotations

from lxml import etree

from appliance.invoices.namespaces import XPATH_NS
from appliance.invoices.xades import signed_properties_digest

C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
XPATH_FILTER = "http://www.w3.org/TR/1999/REC-xpath-19991116"
SIGNATURE_PROPERTIES = "http://www.w3.org/2000/09/xmldsig#SignatureProperties"
EXCLUDED = (
    "not(//ancestor-or-self::ext:UBLExtensions)",
    "not(//ancestor-or-self::cac:Signature)",
    "not(//ancestor-or-self::cac:AdditionalDocumentReference[cbc:ID='QR'])",
)
_SIGNED_PROPERTIES = etree.XPath(".//xades:SignedProperties", namespaces=XPATH_NS)
_PROPERTIES_DIGEST = etree.XPath(
    ".//ds:Reference[@URI='#xadesSignedProperties']/ds:DigestValue", namespaces=XPATH_NS
)


def _sub(
    parent: etree._Element,
    name: str,
    text: str | None = None,
    attrib: dict[str, str] | None = None,
    declare: tuple[str, ...] = (),
) -> etree._Element:
    """A child named `prefix:local`; the prefix is declared here when listed or not yet in scope."""
    prefix, local = name.split(":")
    uri = XPATH_NS[prefix]
    wanted = {p: XPATH_NS[p] for p in declare}
    if parent.nsmap.get(prefix) != uri:
        wanted[prefix] = uri
    element = etree.SubElement(parent, f"{{{uri}}}{local}", attrib=attrib, nsmap=wanted or None)
    if text is not None:
        element.text = text
    return element


def build_stamp(
    root: etree._Element,
    *,
    invoice_hash: str,
    signature_value: str,
    certificate_text: str,
    cert_digest: str,
    issuer: str,
    serial: str,
    signing_time: str,
) -> etree._Element:
    """The filled stamp, appended as the root's last child (the caller moves it); SP digest not yet set."""
    extensions = _sub(root, "ext:UBLExtensions")
    extension = _sub(extensions, "ext:UBLExtension")
    _sub(extension, "ext:ExtensionURI", "urn:oasis:names:specification:ubl:dsig:enveloped:xades")
    content = _sub(extension, "ext:ExtensionContent")
    signatures = _sub(content, "sig:UBLDocumentSignatures", declare=("sig", "sac", "sbc"))
    information = _sub(signatures, "sac:SignatureInformation")
    _sub(information, "cbc:ID", "urn:oasis:names:specification:ubl:signature:1")
    _sub(information, "sbc:ReferencedSignatureID", "urn:oasis:names:specification:ubl:signature:Invoice")
    signature = _sub(information, "ds:Signature", attrib={"Id": "signature"}, declare=("ds",))

    signed_info = _sub(signature, "ds:SignedInfo")
    _sub(signed_info, "ds:CanonicalizationMethod", attrib={"Algorithm": C14N11})
    _sub(signed_info, "ds:SignatureMethod", attrib={"Algorithm": ECDSA_SHA256})
    invoice_reference = _sub(signed_info, "ds:Reference", attrib={"Id": "invoiceSignedData", "URI": ""})
    transforms = _sub(invoice_reference, "ds:Transforms")
    for expression in EXCLUDED:
        transform = _sub(transforms, "ds:Transform", attrib={"Algorithm": XPATH_FILTER})
        _sub(transform, "ds:XPath", expression)
    _sub(transforms, "ds:Transform", attrib={"Algorithm": C14N11})
    _sub(invoice_reference, "ds:DigestMethod", attrib={"Algorithm": SHA256})
    _sub(invoice_reference, "ds:DigestValue", invoice_hash)
    properties_reference = _sub(
        signed_info,
        "ds:Reference",
        attrib={"Type": SIGNATURE_PROPERTIES, "URI": "#xadesSignedProperties"},
    )
    _sub(properties_reference, "ds:DigestMethod", attrib={"Algorithm": SHA256})
    _sub(properties_reference, "ds:DigestValue", "")

    _sub(signature, "ds:SignatureValue", signature_value)
    x509_data = _sub(_sub(signature, "ds:KeyInfo"), "ds:X509Data")
    _sub(x509_data, "ds:X509Certificate", certificate_text)

    qualifying = _sub(
        _sub(signature, "ds:Object"),
        "xades:QualifyingProperties",
        attrib={"Target": "signature"},
        declare=("xades",),
    )
    signed_properties = _sub(qualifying, "xades:SignedProperties", attrib={"Id": "xadesSignedProperties"})
    signed_signature = _sub(signed_properties, "xades:SignedSignatureProperties")
    _sub(signed_signature, "xades:SigningTime", signing_time)
    cert = _sub(_sub(signed_signature, "xades:SigningCertificate"), "xades:Cert")
    cert_digest_element = _sub(cert, "xades:CertDigest")
    _sub(cert_digest_element, "ds:DigestMethod", attrib={"Algorithm": SHA256})
    _sub(cert_digest_element, "ds:DigestValue", cert_digest)
    issuer_serial = _sub(cert, "xades:IssuerSerial")
    _sub(issuer_serial, "ds:X509IssuerName", issuer)
    _sub(issuer_serial, "ds:X509SerialNumber", serial)

    etree.indent(extensions, space="    ", level=1)
    return extensions


def fill_signed_properties_digest(extensions: etree._Element) -> str:
    """Digest the SignedProperties as embedded (call once the stamp sits in its final place)."""
    signed_properties = _SIGNED_PROPERTIES(extensions)
    digest_values = _PROPERTIES_DIGEST(extensions)
    assert isinstance(signed_properties, list) and isinstance(digest_values, list)
    properties, target = signed_properties[0], digest_values[0]
    assert isinstance(properties, etree._Element) and isinstance(target, etree._Element)
    digest = signed_properties_digest(properties)
    target.text = digest
    return digest
