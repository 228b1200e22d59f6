"""Pass and fail fixtures for the live-drift checks and QEMU's own blocked-reasons (--qmp)."""

from migcheck.report.model import Verdict
from tests.unit.factories import argv, guest_xml, rules_of, run, source, target

PT_ON = "<cpu mode='host-passthrough' migratable='on'/>"
LOG = "2026-11-26 01:00:00.000+0000: starting up libvirt version: {lv}, package: 1, qemu version: {qv}Debian\n"


def src(**kw):
    return source(guest_xml(cpu=PT_ON), argv("host,migratable=on"), **kw)


def test_deleted_qemu_binary_is_drift():
    r = run(src(exe_link="/usr/bin/qemu-system-x86_64 (deleted)"), target())
    assert "drift.qemu-binary-replaced" in rules_of(r, "warn")
    assert r.verdict == Verdict.OK  # a warning, not a blocker


def test_current_qemu_binary_is_not_drift():
    assert "drift.qemu-binary-replaced" not in rules_of(run(src(exe_link="/usr/bin/qemu-system-x86_64"), target()))


def test_guest_started_by_older_libvirt_is_drift():
    r = run(src(log_head=LOG.format(lv="8.0.0", qv="6.2.0")), target())
    f = next(f for f in r.findings if f.rule == "drift.started-by-other-version")
    assert "libvirt 8.0.0 at start, 9.0.0 now" in f.message


def test_guest_started_by_installed_versions_is_not_drift():
    r = run(src(log_head=LOG.format(lv="9.0.0", qv="7.2.0")), target())
    assert "drift.started-by-other-version" not in rules_of(r)


def test_pending_inactive_change_warns_without_persistent_and_informs_with():
    s = src()
    s.domain.inactive_xml = s.domain.live_xml.replace("<vcpu placement='static'>1</vcpu>",
                                                      "<vcpu placement='static'>4</vcpu>")
    r = run(s, target(), "--live")
    f = next(f for f in r.findings if f.rule == "drift.inactive-config-differs")
    assert f.severity.value == "warn" and any("vcpus" in e for e in f.evidence)
    assert "drift.inactive-config-differs" in rules_of(run(s, target(), "--live --persistent"), "info")


def test_identical_inactive_config_is_not_drift():
    assert "drift.inactive-config-differs" not in rules_of(run(src(), target()))


def test_qmp_reason_maps_to_the_predicting_check():
    s = src(qmp_blocked_reasons=["State blocked by non-migratable CPU device (invtsc flag)"])
    r = run(s, target())
    f = next(f for f in r.findings if f.message.startswith("QEMU refuses"))
    assert f.rule == "cpu.invtsc-without-tsc-frequency" and f.severity.value == "block"


def test_unknown_qmp_reason_is_a_verbatim_blocker():
    s = src(qmp_blocked_reasons=["Migration is disabled: something new"])
    r = run(s, target())
    f = next(f for f in r.findings if f.rule == "qemu.blocked-reasons")
    assert "something new" in f.message and r.verdict == Verdict.BLOCKED


def test_no_qmp_reasons_is_no_finding_and_failed_qmp_is_unknown():
    assert "qemu.blocked-reasons" not in rules_of(run(src(qmp_blocked_reasons=[]), target()))
    s = src()
    s.errors["qmp"] = "QEMU older than 6.0 does not report blocked-reasons"
    assert "qemu.blocked-reasons" in rules_of(run(s, target()), "unknown")


def test_error_texts_map_to_checks():
    from migcheck.checks.errors import rule_for_error

    assert rule_for_error("error: Requested operation is not valid: cannot migrate domain: State blocked by "
                          "non-migratable CPU device (invtsc flag)") == "cpu.invtsc-without-tsc-frequency"
    assert rule_for_error("error: Cannot get interface MTU on 'br-prod': No such device") == "network.bridge-missing"
    assert rule_for_error("error: Unsafe migration: Migration without shared storage is unsafe") == "storage.not-shared"
    assert rule_for_error("error: something nobody predicted") is None


def test_live_cpu_expansion_alone_is_not_drift():
    """libvirt expands the CPU in the live XML (model features); the next boot changes nothing."""
    s = src()
    s.domain.live_xml = s.domain.live_xml.replace(
        PT_ON, "<cpu mode='custom' match='exact'><model>qemu64</model><feature policy='require' name='x2apic'/></cpu>")
    s.domain.inactive_xml = s.domain.live_xml.replace("<feature policy='require' name='x2apic'/>", "")
    assert "drift.inactive-config-differs" not in rules_of(run(s, target(), "--live"))


def test_pending_cpu_mode_change_is_drift():
    s = src()
    s.domain.inactive_xml = s.domain.live_xml.replace(PT_ON, "<cpu mode='host-passthrough' migratable='off'/>")
    f = next(f for f in run(s, target(), "--live").findings if f.rule == "drift.inactive-config-differs")
    assert any("migratable" in e for e in f.evidence)
