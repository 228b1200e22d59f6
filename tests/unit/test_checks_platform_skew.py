"""platform.machine-type-unknown between QEMU 10.0 and 7.2 hosts (issue 8)."""

from migcheck.checks.platform import machine_version
from tests.unit.factories import argv, caps, guest_xml, run, source, target

RULE = "platform.machine-type-unknown"


def _caps_with_machines(*names: str) -> str:
    text = caps(uuid="22222222-2222-2222-2222-222222222222")
    extra = "".join(f"<machine maxCpus='288'>{n}</machine>" for n in names)
    return text.replace("<machine>isapc</machine>", f"<machine>isapc</machine>{extra}")  # the x86_64 guest


def test_newest_alike_machine_types_in_qemu_order():
    dst = target(host_caps=_caps_with_machines("pc-q35-9.1", "pc-q35-10.0", "pc-q35-9.2", "pc-q35-2.4"))
    r = run(source(guest_xml(machine="pc-q35-10.1"), argv(machine="pc-q35-10.1")), dst)
    f = next(f for f in r.findings if f.rule == RULE)
    assert f.severity.value == "block"
    assert "newest alike: pc-q35-9.1, pc-q35-9.2, pc-q35-10.0" in f.evidence[0]


def test_machine_version():
    assert machine_version("pc-q35-10.0") == (10, 0) > machine_version("pc-q35-9.2")
    assert machine_version("pc-q35-4.0.1") == (4, 0, 1)
    assert machine_version("q35") == () and machine_version("pc-q35-rhel8.2.0") == ()
