"""The declarations the audit's grouping stands on (@check(reads=...)) name real facts, and the rule holds."""

from __future__ import annotations

import pytest

from migcheck.audit.evaluate import IN_KEY, VIEWS_IN_KEY
from migcheck.checks.registry import VIEWS, all_checks
from tests.unit.declared_reads import TracedTarget, allowed_reads, known_reads
from tests.unit.factories import guest_xml, source, target


def test_every_declared_read_names_a_fact_or_a_view() -> None:
    checks = all_checks()  # their modules register the conditions
    known = known_reads()
    unknown = {c.id: sorted(c.reads - known) for c in checks if c.reads - known}
    assert unknown == {}


def test_the_views_the_audit_keys_by_are_the_views_checks_may_declare() -> None:
    assert VIEWS_IN_KEY == set(VIEWS)
    assert IN_KEY <= known_reads()


def test_a_view_allows_its_fact_and_a_condition_only_where_it_holds() -> None:
    from migcheck.checks.registry import REGISTRY
    from migcheck.facts.domain_xml import parse_domain_xml
    from migcheck.flags import parse_flags

    assert allowed_reads(REGISTRY["platform.target-hostname-localhost"]) == {"spec", "hostname", "errors", "qemu_conf"}
    assert allowed_reads(REGISTRY["platform.guest-not-running"]) == {"spec"}  # reads nothing: not even the errors
    usb = REGISTRY["devices.usb-device-missing"]
    plain = parse_domain_xml(guest_xml())
    with_usb = parse_domain_xml(guest_xml(devices="<hostdev mode='subsystem' type='usb'><source><vendor id='0x1'/>"
                                                  "<product id='0x2'/></source></hostdev>"))
    live = parse_flags(["--live"])
    assert "usb_devices" not in allowed_reads(usb, plain, live)
    assert "usb_devices" in allowed_reads(usb, with_usb, live)


def test_the_tracer_names_what_a_check_reads() -> None:
    from migcheck.facts.host import build_host_facts

    log: set[str] = set()
    dst = TracedTarget(build_host_facts(target()), log)
    dst.caps.uuid, dst.memory, dst.domcaps_for(build_host_facts(source(guest_xml())).guest.live)
    assert log == {"caps.uuid", "memory", "domcaps"}
    with pytest.raises(AttributeError):
        dst.memory = None
