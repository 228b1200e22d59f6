"""The lab does what migcheck's tests rely on: real, distinct hosts and real migrations."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.guest import disable_features_xml

pytestmark = pytest.mark.lab

INVTSC_BLOCKED = "State blocked by non-migratable CPU device (invtsc flag)"
REPO = Path(__file__).resolve().parents[2]


def _host_uuid(lab: Lab, host) -> str:
    # Over ssh from the root namespace, as migcheck will see it.
    caps = subprocess.run(["virsh", "-c", host.uri, "capabilities"], capture_output=True,
                          text=True, timeout=30, check=True).stdout
    m = re.search(r"<host>\s*<uuid>([0-9a-f-]+)</uuid>", caps)
    assert m, caps[:500]
    return m.group(1)


def _start_guest(host, xml: str, name: str) -> subprocess.CompletedProcess:
    host.write_file(f"/var/lib/libvirt/images/{name}.xml", xml)
    host.virsh("define", f"/var/lib/libvirt/images/{name}.xml")
    return host.virsh("start", "--paused", name, check=False)


def _forget(lab: Lab, name: str) -> None:
    for h in lab.hosts:
        h.virsh("destroy", name, check=False)
        h.virsh("undefine", name, check=False)


def test_hosts_have_distinct_identities(lab2: Lab) -> None:
    a, b = lab2.hosts
    assert [h.run(["hostname"], check=True).stdout.strip() for h in (a, b)] == ["mc-a", "mc-b"]
    uuids = {_host_uuid(lab2, h) for h in (a, b)}
    assert len(uuids) == 2, uuids


def test_ssh_by_name(lab2: Lab) -> None:
    for h in lab2.hosts:
        p = subprocess.run(["ssh", h.name, "hostname"], capture_output=True, text=True, timeout=30)
        assert (p.returncode, p.stdout.strip()) == (0, h.name), p.stderr
    # Host to host too: what a peer-to-peer migration needs.
    a, b = lab2.hosts
    assert a.run(["ssh", b.name, "hostname"], check=True).stdout.strip() == b.name


def test_real_live_migration(lab2: Lab) -> None:
    a, b = lab2.hosts
    try:
        p = _start_guest(a, lab2.guest_xml("selfcheck-live"), "selfcheck-live")
        assert p.returncode == 0, p.stderr
        p = lab2.migrate(a, b, "selfcheck-live", ["--live"])
        assert p.returncode == 0, p.stderr
        assert b.virsh("domstate", "selfcheck-live").stdout.strip() == "paused"
        assert a.virsh("domstate", "selfcheck-live").stdout.strip() == "shut off"
        # And back, peer to peer: a's libvirtd connects to mc-b by itself over ssh.
        p = lab2.migrate(b, a, "selfcheck-live", ["--live", "--p2p"])
        assert p.returncode == 0, p.stderr
        assert a.virsh("domstate", "selfcheck-live").stdout.strip() == "paused"
    finally:
        _forget(lab2, "selfcheck-live")


def test_non_migratable_cpu_is_blocked_by_invtsc(lab2: Lab) -> None:
    if not lab2.kvm:
        pytest.skip("no usable KVM: under TCG QEMU has no invtsc migration blocker")
    a, b = lab2.hosts
    name = "selfcheck-invtsc"
    try:
        p = _start_guest(a, lab2.guest_xml(name, cpu_xml="<cpu mode='host-passthrough' migratable='off'/>"), name)
        if p.returncode != 0 and lab2.cpu_quirks and "failed to set MSR" in p.stderr:
            # This machine cannot start any -cpu host guest as is (see guest.host_cpu_quirks);
            # the same CPU minus the offending feature still carries invtsc.
            fixed = f"<cpu mode='host-passthrough' migratable='off'>{disable_features_xml(lab2.cpu_quirks)}</cpu>"
            a.virsh("undefine", name, check=False)
            p = _start_guest(a, lab2.guest_xml(name, cpu_xml=fixed), name)
        assert p.returncode == 0, p.stderr
        p = lab2.migrate(a, b, name, ["--live"])
        assert p.returncode != 0
        assert INVTSC_BLOCKED in p.stderr, p.stderr
    finally:
        _forget(lab2, name)


def _second_lab_dir(lab2: Lab) -> Path:
    """State dir of a second lab beside lab2, seeded with lab2's QEMU caps cache."""
    sd = Path(f"{lab2.state_dir}-selfcheck")
    shutil.copytree(lab2.state_dir / "cache", sd / "cache", dirs_exist_ok=True)
    return sd


SECOND = dict(prefix="mcself", subnet="10.251.77.128/26")
SECOND_HOSTS = ["mcs-a", "mcs-b"]


def test_teardown_leaves_nothing(lab2: Lab) -> None:
    """A second lab beside lab2, with a running guest: its exit removes all of it."""
    require_lab()
    lab = Lab([HostSpec(n) for n in SECOND_HOSTS], state_dir=_second_lab_dir(lab2), **SECOND)
    with lab:
        inodes = lab.netns_inodes()
        a = lab.hosts[0]
        assert a.ip == "10.251.77.139"
        p = _start_guest(a, lab.guest_xml("selfcheck-teardown"), "selfcheck-teardown")
        assert p.returncode == 0, p.stderr
        assert lab.include_present()
    assert lab.leftovers(inodes) == []
    assert not lab.include_present()
    _lab2_still_fine(lab2)


def test_host_spec_options(lab2: Lab) -> None:
    """Bridges, private dirs, hugetlbfs, setup commands and an unknown host key."""
    require_lab()
    specs = [
        HostSpec("mcs-a"),
        HostSpec("mcs-b", bridges=["br-prod"], dirs=["/srv/only-on-mcs-b"], hugetlbfs=True,
                 setup=[["touch", "/srv/only-on-mcs-b/setup-ran"]]),
        HostSpec("mcs-c", ssh_host_key_registered=False),
    ]
    with Lab(specs, state_dir=_second_lab_dir(lab2), **SECOND) as lab:
        a, b, c = lab.hosts
        assert b.run(["ip", "link", "show", "br-prod"]).returncode == 0
        assert a.run(["ip", "link", "show", "br-prod"]).returncode != 0
        assert b.run(["ls", "/srv/only-on-mcs-b"], check=True).stdout.split() == ["setup-ran"]
        assert a.run(["ls", "/srv/only-on-mcs-b"]).returncode != 0
        assert not Path("/srv/only-on-mcs-b").exists()  # not in the root namespace either
        assert " /dev/hugepages hugetlbfs " in b.read_file("/proc/mounts")
        assert " /dev/hugepages " not in a.read_file("/proc/mounts")
        # The unknown host key refuses ssh and libvirt alike, as for an operator.
        p = subprocess.run(["virsh", "-c", c.uri, "version"], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "Host key verification failed" in p.stderr, p.stderr
        assert c.virsh("version").returncode == 0  # while its libvirtd is fine
        # Real failures of real guests, on the host that lacks the resource.
        nic = "<interface type='bridge'><source bridge='br-prod'/><model type='virtio'/></interface>"
        p = _start_guest(b, lab.guest_xml("selfcheck-br", extra_devices=nic), "selfcheck-br")
        assert p.returncode == 0, p.stderr
        p = lab.migrate(b, a, "selfcheck-br", ["--live"])
        assert p.returncode != 0 and "br-prod" in p.stderr, p.stderr
        if lab.hugepages_reserved >= 32:
            hp = lab.guest_xml("selfcheck-hp", extra_xml="<memoryBacking><hugepages/></memoryBacking>")
            p = _start_guest(b, hp, "selfcheck-hp")
            assert p.returncode == 0, p.stderr
            p = _start_guest(a, hp, "selfcheck-hp")
            assert p.returncode != 0 and "hugetlbfs" in p.stderr, p.stderr


def test_cli_down_cleans_up_after_a_crash(lab2: Lab) -> None:
    """`up` from a process that is gone, state file lost: `down` still finds everything."""
    require_lab()
    sd = _second_lab_dir(lab2)
    cli = [sys.executable, "-m", "tests.lab"]
    opts = ["--prefix", SECOND["prefix"], "--state-dir", str(sd)]
    p = subprocess.run([*cli, "up", "--hosts", ",".join(SECOND_HOSTS), "--subnet", SECOND["subnet"], *opts],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lab = Lab.attach(SECOND["prefix"], sd)
    inodes = lab.netns_inodes()
    assert len(inodes) == 2 and all(h.alive() for h in lab.hosts)
    (sd / "lab.json").unlink()  # the crash also lost the state file
    p = subprocess.run([*cli, "down", *opts], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert lab.leftovers(inodes) == []
    _lab2_still_fine(lab2)


def _lab2_still_fine(lab2: Lab) -> None:
    assert lab2.include_present()
    for h in lab2.hosts:
        assert h.alive()
        p = subprocess.run(["virsh", "-c", h.uri, "version"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
