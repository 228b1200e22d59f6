"""Numbers longer than any host writes (Python's int() refuses past 4300 digits with a bare ValueError)
are refused by name, as BadXMLValue, or ignored where the field is optional; found by the capabilities fuzzer."""

from __future__ import annotations

import pytest

from migcheck.facts.capabilities_xml import parse_capabilities_xml as parse_capabilities
from migcheck.facts.capabilities_xml import parse_domain_capabilities_xml as parse_domcaps
from migcheck.facts.domain_xml import parse_domain_xml as parse_domain
from migcheck.xmlsafe import BadXMLValue

HUGE = "9" * 5000

CAPS = ("<capabilities><host><uuid>a25c794c-34ad-11b2-a85c-b030533115b8</uuid><cpu><arch>x86_64</arch>"
        "<counter name='tsc' frequency='{f}' scaling='no'/></cpu></host></capabilities>")


def test_a_tsc_frequency_of_5000_digits_is_refused_by_name():
    assert parse_capabilities(CAPS.format(f="2100000000")).cpu.tsc_frequency == 2_100_000_000
    with pytest.raises(BadXMLValue, match="TSC counter frequency"):
        parse_capabilities(CAPS.format(f=HUGE))


def test_domcaps_vcpu_max_of_5000_digits_is_refused_by_name():
    doc = "<domainCapabilities><vcpu max='{m}'/></domainCapabilities>"
    assert parse_domcaps(doc.format(m="255")).max_vcpus == 255
    with pytest.raises(BadXMLValue, match="vcpu max"):
        parse_domcaps(doc.format(m=HUGE))


@pytest.mark.parametrize("port", [HUGE, "\u00b2"])  # 5000 digits; a superscript two, which str.isdigit() accepts
def test_graphics_ports_that_are_no_port_are_not_a_crash(port):
    doc = (f"<domain type='kvm'><name>v</name><memory>1024</memory><devices>"
           f"<graphics type='vnc' port='{port}' autoport='no'/></devices></domain>")
    assert parse_domain(doc).name == "v"
