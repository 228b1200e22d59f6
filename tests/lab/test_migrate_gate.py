"""`migcheck migrate`, QEMU's own answer (--qmp) and live drift, on real lab hosts (issue 5)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.lab.guest import disable_features_xml
from tests.lab.pairing import MIGCHECK, guest, migcheck

pytestmark = pytest.mark.lab


def _qemu_pid(host, name: str) -> str:
    return host.read_file(f"/run/libvirt/qemu/{name}.pid").strip()


def _domains(host) -> str:
    return host.virsh("list", "--all", "--name").stdout


def _invtsc_xml(lab, name):
    cpu = f"<cpu mode='host-passthrough' migratable='off'>{disable_features_xml(lab.cpu_quirks)}</cpu>"
    return lab.guest_xml(name, cpu)


def test_migrate_refuses_the_invtsc_guest_without_touching_it(lab2, tmp_path):
    if not lab2.kvm:
        pytest.skip("needs KVM: the invtsc blocker is KVM-only")
    a, b = lab2.hosts
    with guest(lab2, a, "gate-inv", _invtsc_xml(lab2, "gate-inv")):
        pid = _qemu_pid(a, "gate-inv")
        p = subprocess.run([MIGCHECK, "migrate", a.name, b.name, "gate-inv", "--live", "--misses-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 1, p.stderr
        assert "not migrating gate-inv: verdict blocked" in p.stderr
        assert "cpu.invtsc-without-tsc-frequency" in p.stdout
        assert "running virsh" not in p.stderr
        assert _qemu_pid(a, "gate-inv") == pid, "the guest was restarted"
        assert "gate-inv" not in _domains(b)
        assert a.virsh("domstate", "gate-inv").stdout.strip() == "paused"


def test_migrate_moves_a_clean_guest_for_real(lab2, tmp_path):
    a, b = lab2.hosts
    with guest(lab2, a, "gate-clean", lab2.guest_xml("gate-clean")):
        p = subprocess.run([MIGCHECK, "migrate", a.name, b.name, "gate-clean", "--live", "--misses-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "migrated from" in p.stderr
        assert "gate-clean" in b.virsh("list", "--name").stdout
        assert "gate-clean" not in a.virsh("list", "--name").stdout  # not running there any more
        assert not any(tmp_path.iterdir()), "a successful migration recorded a miss"


def test_qmp_reports_qemus_blocked_reason(lab2):
    if not lab2.kvm:
        pytest.skip("needs KVM: the invtsc blocker is KVM-only")
    a, b = lab2.hosts
    with guest(lab2, a, "gate-qmp", _invtsc_xml(lab2, "gate-qmp")):
        code, report, _ = migcheck(a.name, b.name, "gate-qmp", ["--live"], "--qmp")
        assert code == 1
        from_qemu = [f for f in report["findings"] if f["message"].startswith("QEMU refuses to migrate")]
        assert from_qemu, report["findings"]
        assert from_qemu[0]["rule"] == "cpu.invtsc-without-tsc-frequency"
        assert "State blocked by non-migratable CPU device (invtsc flag)" in from_qemu[0]["message"]
        # documented side effect of --qmp
        assert "custom-monitor" in a.read_file("/var/log/libvirt/qemu/gate-qmp.log")


def test_without_qmp_the_guest_is_not_tainted(lab2):
    a, b = lab2.hosts
    with guest(lab2, a, "gate-noqmp", lab2.guest_xml("gate-noqmp")):
        code, report, _ = migcheck(a.name, b.name, "gate-noqmp", ["--live"])
        assert code == 0, report
        assert "custom-monitor" not in a.read_file("/var/log/libvirt/qemu/gate-noqmp.log")


def test_qemu_binary_replaced_after_start_is_drift(lab2):
    a, b = lab2.hosts
    # QEMU finds its modules and data relative to its binary (../lib, ../share): mirror /usr's layout
    base = "/var/lib/libvirt/images/drift"
    copy = f"{base}/bin/qemu-system-x86_64"
    for h in (a, b):  # the same emulator path on both hosts (per-host /var/lib/libvirt)
        h.run(["mkdir", "-p", f"{base}/bin"], check=True)
        h.run(["ln", "-sfn", "/usr/lib", f"{base}/lib"], check=True)
        h.run(["ln", "-sfn", "/usr/share", f"{base}/share"], check=True)
        h.run(["cp", "/usr/bin/qemu-system-x86_64", copy], check=True)
    xml = lab2.guest_xml("gate-drift").replace("<devices>", f"<devices><emulator>{copy}</emulator>", 1)
    try:
        with guest(lab2, a, "gate-drift", xml):
            code, report, _ = migcheck(a.name, b.name, "gate-drift", ["--live"])
            assert "drift.qemu-binary-replaced" not in {f["rule"] for f in report["findings"]}
            # an "upgrade": a new file replaces the binary the running guest was started from
            a.run(["cp", "/usr/bin/qemu-system-x86_64", copy + ".new"], check=True)
            a.run(["mv", copy + ".new", copy], check=True)
            code, report, _ = migcheck(a.name, b.name, "gate-drift", ["--live"])
            drift = [f for f in report["findings"] if f["rule"] == "drift.qemu-binary-replaced"]
            assert drift, json.dumps(report["findings"], indent=1)
            assert "(deleted)" in drift[0]["message"]
    finally:
        for h in (a, b):
            h.run(["rm", "-rf", base])
