"""Parse XML from hosts without trusting it.

Every XML document migcheck reads comes from a host and is parsed here:
entity declarations (billion laughs, external entities) and DTDs are refused by
defusedxml, and oversized documents are refused before parsing.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_XML_BYTES = 16 * 1024 * 1024


class UnsafeOrBadXML(ValueError):
    """The XML could not be parsed safely: malformed, too large, or using entities."""


def parse_xml(text: str | bytes, what: str = "XML") -> Element:
    if len(text) > MAX_XML_BYTES:
        raise UnsafeOrBadXML(f"{what} is {len(text)} bytes, more than the {MAX_XML_BYTES} allowed")
    try:
        return SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnsafeOrBadXML(f"{what} refused: it declares a DTD or entities ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise UnsafeOrBadXML(f"{what} is not well-formed: {exc}") from exc


def to_text(elem: Element) -> str:
    """Serialise an element parsed by :func:`parse_xml` back to text."""
    import xml.etree.ElementTree as ET

    return ET.tostring(elem, encoding="unicode")
