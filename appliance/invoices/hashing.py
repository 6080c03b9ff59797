"""The invoice hash (zatca-invoice-signing.md 3): the SDK's pre-hash XSLT, then inclusive C14N.

The SDK removes three subtrees (the stamp, the QR reference, cac:Signature) with an identity XSLT that
keeps every other node, whitespace included, and canonicalizes what is left. lxml's `remove()` also drops
the removed element's tail, so the tail is moved onto the previous node first (pitfall P1). Inclusive C14N
without comments (P2, P3): for a whole document C14N 1.0 and 1.1 give the same bytes.
"""

from __future__ import annotations

import base64
import copy
import hashlib

from lxml import etree

from appliance.errors import InvoiceDocumentError
from appliance.invoices.namespaces import CBC

# The XPaths of the SDK's invoice.xsl, verbatim in meaning (local names, as the stylesheet matches them).
_REMOVED = etree.XPath(
    "//*[local-name()='Invoice']//*[local-name()='UBLExtensions']"
    " | //*[local-name()='AdditionalDocumentReference'][cbc:ID[normalize-space(text())='QR']]"
    " | //*[local-name()='Invoice']//*[local-name()='Signature']",
    namespaces={"cbc": CBC},
)

# No DTD loading, no entity expansion from outside, no network: invoices come from clients.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_invoice(xml: bytes) -> etree._Element:
    """The document's root element; whitespace and comments are kept as written (pitfalls P4, P5)."""
    try:
        root = etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvoiceDocumentError(f"the invoice is not well-formed XML: {exc}") from exc
    if root is None:
        raise InvoiceDocumentError("the invoice is empty")
    return root


def remove_keeping_tail(element: etree._Element) -> None:
    """Detach `element`, leaving its tail text where it was, as the XSLT does."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail or ""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(element)


def hash_input(root: etree._Element) -> bytes:
    """The canonical bytes the hash is taken over. `root` is not modified."""
    # The whole tree, so that processing instructions around the root are canonicalized as the XSLT
    # output would carry them.
    work = copy.deepcopy(root.getroottree())
    work_root = work.getroot()
    # Nested matches (a Signature inside UBLExtensions) go with their ancestor; skip them once detached.
    for element in _REMOVED(work_root):
        if isinstance(element, etree._Element) and _attached(element, work_root):
            remove_keeping_tail(element)
    return etree.tostring(work, method="c14n", exclusive=False, with_comments=False)


def invoice_hash_bytes(root: etree._Element) -> bytes:
    """The 32 raw bytes of the invoice hash: the input of the signature (section 4.3)."""
    return hashlib.sha256(hash_input(root)).digest()


def invoice_hash_of(root: etree._Element) -> str:
    return base64.b64encode(invoice_hash_bytes(root)).decode("ascii")


def invoice_hash(xml: bytes) -> str:
    """Base64 of SHA-256 of the canonical invoice after the three removals (44 characters)."""
    return invoice_hash_of(parse_invoice(xml))


def _attached(element: etree._Element, root: etree._Element) -> bool:
    node: etree._Element | None = element
    while node is not None:
        if node is root:
            return True
        node = node.getparent()
    return False
