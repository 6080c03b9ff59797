"""The SignedProperties digest (zatca-invoice-signing.md 4.4): dom4j's `Node.asXML()`, re-created.

The SDK hashes dom4j's serialization of the embedded `xades:SignedProperties` element, not any C14N form.
dom4j writes a namespace declaration on an element when that prefix/URI pair is not yet declared within
the fragment being written (so `xmlns:ds` lands on every `ds:*` leaf, each closing before the next opens),
the element's own namespace first, then the declarations written on it in the document, then attributes
in document order; childless elements self-close; text keeps its whitespace and escapes `& < >` only.

lxml does not expose which declarations were written on an element, only the in-scope map. By default a
declaration is taken as local when the element's map differs from its parent's, which misses a redundant
re-declaration of an inherited prefix (the stamp never writes one). The verifier passes the declarations
as read from the source bytes (`source_declarations`), which catches those too.
"""

from __future__ import annotations

import base64
import hashlib
from io import BytesIO

from lxml import etree

_Scope = dict[str | None, str]
Declarations = dict[str, _Scope]  # element path (ElementTree.getpath) -> declarations written on it


def source_declarations(xml: bytes) -> Declarations:
    """The namespace declarations each element carries in the source bytes, keyed by element path."""
    found: Declarations = {}
    pending: _Scope = {}
    events = etree.iterparse(
        BytesIO(xml), events=("start-ns", "start"), resolve_entities=False, no_network=True, load_dtd=False
    )
    for event, item in events:
        if event == "start-ns" and isinstance(item, tuple):
            prefix, uri = item
            pending[str(prefix) or None] = str(uri)
        elif pending and isinstance(item, etree._Element):
            found[item.getroottree().getpath(item)] = pending
            pending = {}
    return found


def signed_properties_text(element: etree._Element, declarations: Declarations | None = None) -> str:
    """The string dom4j's `asXML()` returns for `element` as it sits in its document."""
    out: list[str] = []
    _write(element, {}, out, declarations)
    return "".join(out)


def signed_properties_digest(element: etree._Element, declarations: Declarations | None = None) -> str:
    """base64 of the lowercase hex SHA-256 of the dom4j text (88 characters)."""
    text = signed_properties_text(element, declarations)
    hex_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return base64.b64encode(hex_digest.encode("ascii")).decode("ascii")


def _write(
    element: etree._Element, declared: _Scope, out: list[str], declarations: Declarations | None
) -> None:
    qname = etree.QName(element)
    prefix = element.prefix
    name = f"{prefix}:{qname.localname}" if prefix else qname.localname
    scope = dict(declared)
    out.append(f"<{name}")
    own_uri = qname.namespace or ""
    if scope.get(prefix, "") != own_uri:
        scope[prefix] = own_uri
        out.append(_declaration(prefix, own_uri))
    for local_prefix, uri in _local_declarations(element, declarations).items():
        if scope.get(local_prefix, "") != uri:
            scope[local_prefix] = uri
            out.append(_declaration(local_prefix, uri))
    for key, value in element.attrib.items():
        out.append(f' {_attribute_name(element, str(key), scope, out)}="{_escape_attribute(str(value))}"')
    if element.text is None and len(element) == 0:
        out.append("/>")
        return
    out.append(">")
    out.append(_escape_text(element.text or ""))
    for child in element:
        if isinstance(child, etree._Comment):
            out.append(f"<!--{child.text or ''}-->")
        elif isinstance(child, etree._ProcessingInstruction):
            out.append(f"<?{child.target} {child.text or ''}?>")
        else:
            _write(child, scope, out, declarations)
        out.append(_escape_text(child.tail or ""))
    out.append(f"</{name}>")


def _local_declarations(element: etree._Element, declarations: Declarations | None) -> _Scope:
    if declarations is not None:
        return declarations.get(element.getroottree().getpath(element), {})
    parent = element.getparent()
    inherited: _Scope = dict(parent.nsmap) if parent is not None else {}
    return {prefix: uri for prefix, uri in element.nsmap.items() if inherited.get(prefix) != uri}


def _declaration(prefix: str | None, uri: str) -> str:
    return f' xmlns:{prefix}="{uri}"' if prefix else f' xmlns="{uri}"'


def _attribute_name(element: etree._Element, key: str, scope: _Scope, out: list[str]) -> str:
    qname = etree.QName(key)
    if qname.namespace is None:
        return key
    prefix = next((p for p, uri in element.nsmap.items() if uri == qname.namespace and p), None)
    if prefix is None:
        return qname.localname
    if scope.get(prefix) != qname.namespace:
        # dom4j declares an attribute's namespace ahead of the attribute itself.
        scope[prefix] = qname.namespace
        out.append(_declaration(prefix, qname.namespace))
    return f"{prefix}:{qname.localname}"


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(text: str) -> str:
    return _escape_text(text).replace('"', "&quot;")
