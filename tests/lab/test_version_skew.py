"""Version skew, proven by real migrations between hosts of two versions (issue 8).

old-a runs this machine's libvirt 9.0 / QEMU 7.2; new-b runs libvirt 11.3 /
QEMU 10.0 from bookworm-backports in its own root (tests/lab/vroot.py, built
once and cached under /var/tmp/migcheck-lab-roots). Every scenario runs
migcheck first and then the real `virsh migrate`, in both directions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.guest import disable_features_xml
from tests.lab.pairing import guest, pair
from tests.lab.vroot import BACKPORTS

pytestmark = pytest.mark.lab

OLD_MACHINE = "pc-q35-7.2"  # the newest q35 of QEMU 7.2, known to both QEMUs
TARGET_OLDER = "platform.target-older"


@pytest.fixture(scope="module")
def vlab() -> Iterator[Lab]:
    require_lab()
    lab = Lab([HostSpec("old-a"), HostSpec("new-b", root=BACKPORTS)], prefix="mcver",
              subnet="10.251.77.192/26", state_dir="/var/tmp/migcheck-lab-mcver")
    with lab:
        inodes = lab.netns_inodes()
        yield lab
    # new-b's mounts (overlay root, proc, sysfs, dev, run) lived in its mount namespace
    # only; leftovers() looks for mounts under the state dir in every mount namespace.
    left = lab.leftovers(inodes)
    assert not left, f"lab teardown left: {left}"


def _hosts(lab: Lab):
    return lab.host("old-a"), lab.host("new-b")


def _version(host, what: str) -> tuple[int, ...]:
    out = host.virsh("version").stdout
    m = re.search(rf"{what} (\d+)\.(\d+)\.(\d+)", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def _newest_q35(host) -> str:
    caps = host.virsh("capabilities").stdout
    names = set(re.findall(r">(pc-q35-\d+\.\d+)<", caps))
    return max(names, key=lambda n: tuple(int(x) for x in n.rsplit("-", 1)[1].split(".")))


def _cpu(lab: Lab, mode: str, extra: str = "") -> str:
    return f"<cpu mode='{mode}'>{disable_features_xml(lab.cpu_quirks)}{extra}</cpu>"


def _named(model: str, extra: str = "") -> str:
    return f"<cpu mode='custom' match='exact'><model fallback='forbid'>{model}</model>{extra}</cpu>"


def _needs_kvm(lab: Lab) -> None:
    if not lab.kvm:
        pytest.skip("needs KVM: host-model and host-passthrough CPUs differ from TCG's")


def test_the_hosts_run_different_versions(vlab: Lab) -> None:
    old, new = _hosts(vlab)
    assert _version(old, "libvirt")[:2] == (9, 0) and _version(old, "hypervisor: QEMU")[:2] == (7, 2)
    assert _version(new, "libvirt") >= (11, 3, 0) and _version(new, "hypervisor: QEMU") >= (10, 0, 0)
    assert vlab.roots and all(r.versions.get("libvirt-daemon") for r in vlab.roots.values())
    # Commands given to new-b run in its own root: its virsh is the newer one too.
    assert new.run(["virsh", "--version"], check=True).stdout.startswith("11.")
    assert old.run(["virsh", "--version"], check=True).stdout.startswith("9.0")


# ---- machine types ---------------------------------------------------------

def test_old_machine_type_old_to_new_is_ok_and_migrates(vlab: Lab) -> None:
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-m72", machine=OLD_MACHINE)
    with guest(vlab, old, "skew-m72", xml):
        out = pair(vlab, old, new, "skew-m72", ["--live"], expect="ok")
        assert out.migrated and TARGET_OLDER not in out.rules()


def test_newest_machine_type_new_to_old_is_blocked_and_fails(vlab: Lab) -> None:
    old, new = _hosts(vlab)
    machine = _newest_q35(new)
    assert machine not in old.virsh("capabilities").stdout
    with guest(vlab, new, "skew-mnew", vlab.guest_xml("skew-mnew", machine=machine)):
        out = pair(vlab, new, old, "skew-mnew", ["--live"], expect="blocked",
                   expect_rule="platform.machine-type-unknown", expect_error="does not support machine type")
        assert machine in out.migrate_error and TARGET_OLDER in out.rules("warn")


def test_old_newest_machine_type_new_to_old_is_ok_with_warning_and_migrates(vlab: Lab) -> None:
    """A newer source is not a failure by itself: the old QEMU's own machine type, default CPU."""
    old, new = _hosts(vlab)
    with guest(vlab, new, "skew-back", vlab.guest_xml("skew-back", machine=OLD_MACHINE)):
        out = pair(vlab, new, old, "skew-back", ["--live"], expect="ok")
        assert out.migrated and TARGET_OLDER in out.rules("warn")


def test_machine_type_newer_qemu_dropped_is_blocked_old_to_new(vlab: Lab) -> None:
    """A newer target is not always fine either: QEMU 10.0 no longer has pc-i440fx-2.3 (7.2 does)."""
    old, new = _hosts(vlab)
    machine = "pc-i440fx-2.3"
    if machine not in old.virsh("capabilities").stdout or machine in new.virsh("capabilities").stdout:
        pytest.skip(f"this machine: {machine} is not one that only the older QEMU has here")
    with guest(vlab, old, "skew-m23", vlab.guest_xml("skew-m23", machine=machine)):
        out = pair(vlab, old, new, "skew-m23", ["--live"], expect="blocked",
                   expect_rule="platform.machine-type-unknown", expect_error="does not support machine type")
        assert TARGET_OLDER not in out.rules()


# ---- devices ---------------------------------------------------------------

VIRTIO_SOUND = "<sound model='virtio'/>"


def test_virtio_sound_is_blocked_new_to_old(vlab: Lab) -> None:
    """QEMU 10.0 cannot migrate virtio sound at all (a source-side blocker); libvirt 9.0 cannot
    even define it, so there is no old -> new case."""
    old, new = _hosts(vlab)
    with guest(vlab, new, "skew-snd", vlab.guest_xml("skew-snd", extra_devices=VIRTIO_SOUND, machine=OLD_MACHINE)):
        pair(vlab, new, old, "skew-snd", ["--live"], expect="blocked",
             expect_rule="devices.non-migratable-device", expect_error="non-migratable device")
    old.write_file("/tmp/skew-snd-old.xml", vlab.guest_xml("skew-snd-old", extra_devices=VIRTIO_SOUND))
    p = old.virsh("define", "/tmp/skew-snd-old.xml", check=False)
    assert p.returncode != 0 and "'virtio'" in p.stderr, p.stderr


def test_ich9_sound_migrates_both_ways(vlab: Lab) -> None:
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-hda", extra_devices="<sound model='ich9'/>", machine=OLD_MACHINE)
    with guest(vlab, new, "skew-hda", xml):
        out = pair(vlab, new, old, "skew-hda", ["--live"], expect="ok")
        assert out.migrated and "devices.non-migratable-device" not in out.rules()
        out = pair(vlab, old, new, "skew-hda", ["--live"], expect="ok")
        assert out.migrated


# ---- CPU models and features ------------------------------------------------

def test_named_model_both_know_migrates_both_ways(vlab: Lab) -> None:
    """kvm64: a CPU model both libvirts and QEMUs know; new -> old works (with the warning)."""
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-kvm64", cpu_xml=_named("kvm64"), machine=OLD_MACHINE)
    with guest(vlab, new, "skew-kvm64", xml):
        out = pair(vlab, new, old, "skew-kvm64", ["--live"], expect="ok")
        assert out.migrated and TARGET_OLDER in out.rules("warn")
        out = pair(vlab, old, new, "skew-kvm64", ["--live"], expect="ok")
        assert out.migrated and TARGET_OLDER not in out.rules()


def test_host_model_old_to_new_is_ok_and_migrates(vlab: Lab) -> None:
    _needs_kvm(vlab)
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-hm-up", cpu_xml=_cpu(vlab, "host-model"), machine=OLD_MACHINE)
    with guest(vlab, old, "skew-hm-up", xml):
        out = pair(vlab, old, new, "skew-hm-up", ["--live"], expect="ok")
        assert out.migrated


def _known_features(host) -> set[str]:
    """The CPU feature names the host's own libvirt knows (its x86 CPU map)."""
    text = host.run(["cat", "/usr/share/libvirt/cpu_map/x86_features.xml"], check=True).stdout
    names = set(re.findall(r"<feature name='([\w.-]+)'", text))
    assert len(names) > 100, f"{host.name}: no CPU map read"
    return names


def _cpu_host_features(host, vm: str) -> set[str]:
    """The CPU features the host's QEMU gives `-cpu host` (query-cpu-model-expansion through a running guest)."""
    import json

    cmd = json.dumps({"execute": "query-cpu-model-expansion",
                      "arguments": {"type": "full", "model": {"name": "host"}}})
    props = json.loads(host.virsh("qemu-monitor-command", vm, cmd).stdout)["return"]["model"]["props"]
    return {name for name, value in props.items() if value is True}


def test_host_model_expanded_by_new_libvirt_is_blocked_new_to_old(vlab: Lab) -> None:
    """The newer libvirt's host-model carries feature names libvirt 9.0 does not know.

    The old target's compareHypervisorCPU fails on the same unknown name as the
    real migration does, and migcheck quotes it.
    """
    _needs_kvm(vlab)
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-hm-down", cpu_xml=_cpu(vlab, "host-model"), machine=OLD_MACHINE)
    with guest(vlab, new, "skew-hm-down", xml):
        # what this machine's CPU makes of it: the live CPU's feature names that libvirt 9.0's map lacks
        live = set(re.findall(r"<feature policy='\w+' name='([\w.-]+)'/>", new.virsh("dumpxml", "skew-hm-down").stdout))
        unknown_to_old = live - _known_features(old)
        if not unknown_to_old:
            # an older CPU: every name is one libvirt 9.0 knows too, so nothing refuses it on those grounds
            out = pair(vlab, new, old, "skew-hm-down", ["--live"], expect="ok")
            assert out.migrated
            return
        out = pair(vlab, new, old, "skew-hm-down", ["--live"], expect="blocked",
                   expect_rule="cpu.guest-cpu-not-on-target", expect_error="unknown CPU feature")
        assert re.search(r"unknown CPU feature: ([\w.-]+)", out.migrate_error).group(1) in unknown_to_old
        unknown = re.search(r"unknown CPU feature: ([\w.-]+)", out.migrate_error).group(1)
        finding = next(f for f in out.report["findings"] if f["rule"] == "cpu.guest-cpu-not-on-target")
        assert unknown in finding["message"], (unknown, finding)


def test_host_passthrough_new_to_old_loses_features_but_migrates(vlab: Lab) -> None:
    """-cpu host carries no feature list: nothing refuses the migration, the old libvirt need
    not know the new names. Where QEMU 7.2's -cpu host shows the guest less than QEMU 10's
    (erms, fsrm on the machines seen so far; measured here by asking both QEMUs), it is risky
    and names them; where it shows the same, ok. Either way it migrates. Back from old to new is ok."""
    _needs_kvm(vlab)
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-pt", cpu_xml=_cpu(vlab, "host-passthrough"), machine=OLD_MACHINE)
    # what the two QEMUs' -cpu host give on this machine's CPU, asked of each QEMU itself
    with guest(vlab, old, "skew-pt-probe", vlab.guest_xml("skew-pt-probe", cpu_xml=_cpu(vlab, "host-passthrough"),
                                                            machine=OLD_MACHINE)):
        on_old = _cpu_host_features(old, "skew-pt-probe")
    with guest(vlab, new, "skew-pt", xml):
        lost = (_cpu_host_features(new, "skew-pt") - on_old) & _known_features(old) & _known_features(new)
        out = pair(vlab, new, old, "skew-pt", ["--live"], expect="risky" if lost else "ok")
        if lost:
            finding = next(f for f in out.report["findings"] if f["rule"] == "cpu.passthrough-target-lacks-features")
            assert finding["severity"] == "risk" and any(f in finding["message"] for f in lost), (lost, finding)
        assert out.migrated, out.migrate_error
        assert TARGET_OLDER in out.rules("warn")
        out = pair(vlab, old, new, "skew-pt", ["--live"], expect="ok")
        assert out.migrated


def test_named_model_with_features_the_host_model_omits(vlab: Lab) -> None:
    """EPYC on an AMD host runs with topoext, which neither libvirt's host-model CPU lists.

    Both hosts' compareHypervisorCPU call the guest's live CPU incompatible
    (missing topoext), the source's too, while the guest runs there: the
    comparison does not see that feature. The lab's hosts share one physical
    CPU, which migcheck reads from both kernels: ok, with the quirk as an info
    line, and the migration succeeds in both directions. (Hosts whose CPUs
    differ keep the risk: tests/unit/test_checks_cpu_skew.py.)
    """
    _needs_kvm(vlab)
    old, new = _hosts(vlab)
    xml = vlab.guest_xml("skew-epyc", cpu_xml=_named("EPYC", "<feature policy='disable' name='svm'/>"),
                         machine=OLD_MACHINE)
    with guest(vlab, new, "skew-epyc", xml, start=False):
        started = new.virsh("start", "--paused", "skew-epyc", check=False)
        if started.returncode != 0:
            assert "incompatible with host CPU" in started.stderr, started.stderr
            pytest.skip("this machine: its CPU cannot run EPYC (not an AMD host): "
                        + started.stderr.strip().splitlines()[-1][:160])
        live = new.virsh("dumpxml", "skew-epyc").stdout
        if "name='topoext'" not in live:
            pytest.skip("this machine: its QEMU gives EPYC no topoext (not an AMD host): nothing to show")
        for src, dst in ((new, old), (old, new)):
            out = pair(vlab, src, dst, "skew-epyc", ["--live"], expect="ok")
            quirk = [f for f in out.report["findings"] if f["rule"] == "cpu.guest-cpu-not-on-target"]
            if quirk:  # only where this libvirt's comparison misses topoext on both sides
                assert quirk[0]["severity"] == "info" and "same physical CPU" in quirk[0]["message"], quirk
            assert out.migrated, out.migrate_error
