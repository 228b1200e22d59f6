"""Parse XML from hosts without trusting it.

Every XML document migcheck reads comes from a host and is parsed here:
entity declarations (billion laughs, external entities) and DTDs are refused by
defusedxml, oversized documents are refused before parsing, and documents nested
deeper than any libvirt XML are refused while parsing (serialising them back,
as :func:`to_text` does, would overflow the Python stack).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, TreeBuilder

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_XML_BYTES = 16 * 1024 * 1024
MAX_XML_DEPTH = 128  # libvirt's own documents nest about 15 deep


class UnsafeOrBadXML(ValueError):
    """The XML could not be parsed safely: malformed, too large, or using entities."""


class BadXMLValue(ValueError):
    """A well-formed document holds a value libvirt never writes where a check needs it (a size that is
    not a number): refusing the document beats guessing, which could turn into a false "ok"."""

    def __init__(self, where: str, value: str, why: str = "which is not a number") -> None:
        super().__init__(f"{where} holds {value[:40]!r}{'...' if len(value) > 40 else ''}, {why}")
        self.where = where
        self.value = value


# no size libvirt writes has more digits (2**128 has 39); int() refuses past 4300 anyway
MAX_NUMBER_DIGITS = 40


def xml_number(value: str, where: str) -> int:
    """A non-negative decimal number as libvirt writes it, or BadXMLValue."""
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise BadXMLValue(where, value)
    if len(digits) > MAX_NUMBER_DIGITS:
        raise BadXMLValue(where, value, f"a number of {len(digits)} digits, larger than any host has")
    return int(digits)


class _DepthLimitedTreeBuilder(TreeBuilder):
    def __init__(self, what: str) -> None:
        super().__init__()
        self._what = what
        self._depth = 0

    def start(self, tag, attrs):
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise UnsafeOrBadXML(f"{self._what} nests elements more than {MAX_XML_DEPTH} deep")
        return super().start(tag, attrs)

    def end(self, tag):
        self._depth -= 1
        return super().end(tag)


def parse_xml(text: str | bytes, what: str = "XML") -> Element:
    if len(text) > MAX_XML_BYTES:
        raise UnsafeOrBadXML(f"{what} is {len(text)} bytes, more than the {MAX_XML_BYTES} allowed")
    try:
        # what SafeET.fromstring(text, forbid_dtd=True) does, with a depth limit
        parser = SafeET.DefusedXMLParser(target=_DepthLimitedTreeBuilder(what), forbid_dtd=True)
        parser.feed(text)
        return parser.close()
    except UnsafeOrBadXML:
        raise
    except DefusedXmlException as exc:
        raise UnsafeOrBadXML(f"{what} refused: it declares a DTD or entities ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise UnsafeOrBadXML(f"{what} is not well-formed: {exc}") from exc
    except (LookupError, ValueError) as exc:
        # the XML declaration names an unknown or unsupported encoding, or a str holds lone surrogates
        raise UnsafeOrBadXML(f"{what} cannot be decoded: {exc}") from exc


def to_text(elem: Element) -> str:
    """Serialise an element parsed by :func:`parse_xml` back to text."""
    import xml.etree.ElementTree as ET

    return ET.tostring(elem, encoding="unicode")
