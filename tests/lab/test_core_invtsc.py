"""The founding case, proven by real migrations between lab hosts (issue 2)."""

from __future__ import annotations

import pytest

from tests.lab.guest import disable_features_xml
from tests.lab.pairing import guest, migcheck, pair

pytestmark = pytest.mark.lab

INVTSC_ERROR = "State blocked by non-migratable CPU device (invtsc flag)"


def _needs_kvm(lab):
    if not lab.kvm:
        pytest.skip("needs KVM: under TCG QEMU has no invtsc blocker (/dev/kvm not usable here)")


def _cpu(lab, mode: str, extra: str = "", migratable: str | None = None) -> str:
    mig = f" migratable='{migratable}'" if migratable else ""
    return f"<cpu mode='{mode}'{mig}>{disable_features_xml(lab.cpu_quirks)}{extra}</cpu>"


def _host_tsc_hz(host) -> int:
    import re

    caps = host.virsh("capabilities").stdout
    m = re.search(r"<counter name='tsc' frequency='(\d+)'", caps)
    if not m:
        pytest.skip(f"this machine: {host.name} reports no TSC frequency in its capabilities")
    return int(m.group(1))


def _host_has_invtsc(host) -> bool:
    """Whether this machine's CPU has an invariant TSC, as libvirt reports it (a nested or old CPU may not)."""
    return "<feature name='invtsc'/>" in host.virsh("capabilities").stdout


def test_passthrough_migratable_off_is_blocked_and_fails(lab2):
    _needs_kvm(lab2)
    a, b = lab2.hosts
    with guest(lab2, a, "inv-pt-off", lab2.guest_xml("inv-pt-off", _cpu(lab2, "host-passthrough", migratable="off"))):
        if not _host_has_invtsc(a):
            # no invariant TSC on this CPU: nothing for QEMU to block, and migcheck must see that
            out = pair(lab2, a, b, "inv-pt-off", ["--live"], expect="ok")
            assert out.migrated and "cpu.invtsc-without-tsc-frequency" not in out.rules()
            return
        out = pair(lab2, a, b, "inv-pt-off", ["--live"], expect="blocked",
                   expect_rule="cpu.invtsc-without-tsc-frequency", expect_error=INVTSC_ERROR)
        finding = next(f for f in out.report["findings"] if f["rule"] == "cpu.invtsc-without-tsc-frequency")
        assert f"frequency='{_host_tsc_hz(a)}'" in finding["fix"]
        assert out.exit_code == 1


def test_plain_passthrough_is_ok_and_migrates(lab2):
    _needs_kvm(lab2)
    a, b = lab2.hosts
    with guest(lab2, a, "inv-pt-on", lab2.guest_xml("inv-pt-on", _cpu(lab2, "host-passthrough"))):
        out = pair(lab2, a, b, "inv-pt-on", ["--live"], expect="ok")
        assert out.exit_code == 0 and out.migrated


def test_explicit_invtsc_without_frequency_is_blocked_and_fails(lab2):
    _needs_kvm(lab2)
    a, b = lab2.hosts
    if not _host_has_invtsc(a):
        pytest.skip("this machine: its CPU has no invariant TSC, so a guest requiring invtsc cannot start")
    cpu = _cpu(lab2, "host-model", "<feature policy='require' name='invtsc'/>")
    with guest(lab2, a, "inv-feat", lab2.guest_xml("inv-feat", cpu)):
        pair(lab2, a, b, "inv-feat", ["--live"], expect="blocked",
             expect_rule="cpu.invtsc-without-tsc-frequency", expect_error=INVTSC_ERROR)


def test_invtsc_with_the_hosts_tsc_frequency_is_ok_and_migrates(lab2):
    _needs_kvm(lab2)
    a, b = lab2.hosts
    hz = _host_tsc_hz(a)
    cpu = _cpu(lab2, "host-passthrough", migratable="off")
    clock = f"<clock offset='utc'><timer name='tsc' frequency='{hz}'/></clock>"
    with guest(lab2, a, "inv-fixed", lab2.guest_xml("inv-fixed", cpu, clock_xml=clock)):
        out = pair(lab2, a, b, "inv-fixed", ["--live"], expect="ok")
        assert "cpu.invtsc-without-tsc-frequency" not in out.rules()


def test_missing_vm_is_unknown_with_one_line(lab2):
    a, b = lab2.hosts
    code, report, stderr = migcheck(a.name, b.name, "no-such-guest", ["--live"])
    assert code == 3 and report["verdict"] == "unknown"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "mc-a" in lines[0] and "no-such-guest" in lines[0], stderr
