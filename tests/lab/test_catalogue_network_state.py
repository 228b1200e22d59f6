"""Network, host-path, huge-page, name-collision and guest-state checks, judged by real migrations.

Three lab hosts of their own (prefix mcnet): net-a and net-b alike (bridge br-prod,
hugetlbfs, /srv/on-both, the address 192.0.2.10 on lo, libvirt network labnet
active), net-c bare (only bridge br-alt, which --xml scenarios name; no hugetlbfs, labnet defined but inactive).
/srv/only-on-a exists on net-a only. Every scenario runs migcheck, then the real
`virsh migrate` with the same flags, and asserts both agree (tests/lab/pairing.py).

What the real migrations said (libvirt 9.0, QEMU 7.2), as the assertions pin it:

| scenario | flags | migcheck | virsh migrate |
|---|---|---|---|
| bridge br-prod on both | --live | ok | migrates |
| bridge only on the source | --live | blocked | Cannot get interface MTU on 'br-prod': No such device |
| shut-off bridge guest, no bridge on target | --offline --persistent | ok | defined on the target |
| bridge only on the source, --xml naming the target's br-alt | --live --xml F | ok | migrates |
| --xml still naming the missing bridge | --live --xml F | blocked | Cannot get interface MTU on 'br-prod': No such device |
| --xml with 2 vCPUs | --live --xml F | blocked | unsupported configuration: Target domain vCPU max 2 does not match source 1 |
| --xml with machine pc-q35-7.1 | --live --xml F | blocked | unsupported configuration: Target domain machine type pc-q35-7.1 does not match source pc-q35-7.2 |
| --xml naming a missing file | --live --xml F | blocked | Failed to open file '...' |
| macvtap on br-prod, on both | --live | ok | migrates |
| macvtap source device missing | --live | blocked | Unable to get index for interface br-prod: No such device |
| libvirt network active on both | --live | ok | migrates |
| network not defined on target | --live | blocked | Network not found: no network with matching name 'anet' |
| network defined, inactive on target | --live | blocked | Requested operation is not valid: network 'labnet' is not active |
| portgroup missing on target | --live | ok (warn) | migrates: libvirt ignores the unknown portgroup |
| NAT network, its bridge named otherwise on target | --live | ok | migrates |
| bridge network (live XML type='bridge' on br-prod), target's network on br-other | --live | ok | migrates |
| bridge network missing on target (which has br-prod) | --live | blocked | Network not found: no network with matching name 'fwdonly-a' |
| bridge network inactive on target | --live | blocked | Requested operation is not valid: network 'fwdoff' is not active |
| bridge network active on target, its bridge absent | --live | blocked | Cannot get interface MTU on 'br-gone': No such device |
| macvtap network (live XML type='direct' on nic-a), target's network on nic-b | --live | ok | migrates |
| macvtap network missing on target | --live | blocked | Network not found: no network with matching name 'mvgone' |
| macvtap network active on target, its NIC absent | --live | blocked | Unable to get index for interface nic-gone: No such device |
| cdrom, startupPolicy optional / requisite, ISO only on source | --live | ok (warn) | migrates; the target's drive is empty |
| cdrom, startupPolicy mandatory / none, ISO only on source | --live | blocked | Cannot access storage file '/srv/only-on-a/media.iso': No such file or directory |
| read-only disk, startupPolicy optional, image only on source | --live | blocked | Cannot access storage file '/srv/only-on-a/media.iso': No such file or directory |
| --migrate-disks vdz (no such disk) | --live --copy-storage-all | blocked | invalid argument: disk target vdz not found |
| --migrate-disks vdz (no such disk) | --live | ok | migrates (libvirt ignores the list without storage copy) |
| nwfilter on both | --live | ok | migrates |
| nwfilter only on the source | --live | blocked | internal error: referenced filter 'mc-only-a' is missing |
| serial file, dir only on source | --live | blocked | Unable to open file: /srv/only-on-a/console.log: No such file or directory |
| serial file, dir on both | --live | ok | migrates |
| unix bind socket, dir only on source | --live | blocked | Unable to bind to UNIX socket path '/srv/only-on-a/agent.sock': No such file or directory |
| guest agent channel (generated socket path) | --live | ok | migrates |
| unix connect, listener on both | --live | ok | migrates |
| unix connect, no socket on target | --live | blocked | unable to stat: /srv/on-both/ext.sock: No such file or directory |
| unix connect, stale socket on target | --live | blocked | Failed to connect to '/srv/on-both/ext.sock': Connection refused |
| unix connect with reconnect, stale socket | --live | ok | migrates |
| hugepages, hugetlbfs on both | --live | ok | migrates |
| hugepages, hugetlbfs only on source | --live | blocked | internal error: hugetlbfs filesystem is not mounted or disabled by administrator config |
| same name running on target | --live | blocked | operation failed: domain 'NAME' already exists with uuid OTHER |
| same name, other UUID, defined on target | --live | blocked | operation failed: domain 'NAME' already exists with uuid OTHER |
| same name, other UUID, --dname | --live --dname | ok | migrates |
| same UUID, other name, defined on target | --live | blocked | operation failed: domain 'NAME-old' is already defined with uuid UUID |
| same name and UUID running on target | --live | blocked | Requested operation is not valid: domain 'NAME' is already active |
| same name and UUID defined on target | --live | ok (warn) | migrates; target keeps its stored definition |
| same name and UUID defined on target | --live --persistent | ok | migrates; definition replaced |
| shut-off guest | --live | blocked | Requested operation is not valid: domain is not running |
| shut-off guest | --offline --persistent | ok | defined on the target |
| a dump job in progress (slow reader) | --live | blocked | Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCoreDump) |
| paused guest after `virsh dump` | --live | risky | internal error: unable to execute QEMU command 'migrate': Can't migrate the vm that was paused due to previous migration |
| the same, migcheck --qmp | --live | blocked | (the same error) |
| dumped, then resumed and paused again, migcheck --qmp | --live | ok | migrates |
| the same without --qmp | --live | risky | migrates (libvirt keeps the dump's job statistics) |
| VNC on the source's own IP | --live | blocked | ... -vnc 10.251.77.75:0,...: Failed to bind socket: Cannot assign requested address |
| VNC on an address both hosts have | --live | ok | migrates |
| VNC on a libvirt network (another address on the target) | --live | ok | migrates |
| VNC on a libvirt network missing on the target | --live | blocked | Network not found: no network with matching name 'glnet' |
| VNC on a fixed port (autoport='no') taken on the target | --live | blocked | ... Failed to find an available port: Address already in use |
| TCP serial bound to the source's own IP | --live | blocked | ... -chardev socket,...,host=10.251.77.75,port=4555,...: Failed to bind socket: Cannot assign requested address |
| TCP serial on 0.0.0.0, port already listened on on the target | --live | blocked | ... -chardev socket,...,host=0.0.0.0,port=4556,...: Failed to find an available port: Address already in use |
| TCP serial on 0.0.0.0, port free on the target | --live | ok | migrates |
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.pairing import guest, migcheck, pair

pytestmark = pytest.mark.lab

PREFIX, SUBNET = "mcnet", "10.251.77.64/26"
STATE_DIR = Path("/var/tmp/migcheck-lab-mcnet")
SHARED_IP = "192.0.2.10"  # on lo of net-a and net-b
OTHER_UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"

GLNET = ("<network><name>glnet</name><bridge name='virbr-gl' stp='off'/><dns enable='no'/>"
         "<ip address='192.168.{octet}.1' netmask='255.255.255.0'/></network>")
LABNET = """<network><name>{name}</name><bridge name='{bridge}' stp='off'/>{pgs}</network>"""
FILTER = "<filter name='{name}' chain='root'><filterref filter='allow-arp'/></filter>"
FWD_BRIDGE = "<network><name>{name}</name><forward mode='bridge'/><bridge name='{bridge}'/></network>"
FWD_MACVTAP = "<network><name>{name}</name><forward mode='bridge'><interface dev='{dev}'/></forward></network>"
ONLY_A_ISO = "/srv/only-on-a/media.iso"

# A Unix socket listener (or a stale socket file: bind, never listen) inside a lab host.
LISTENER = ("import os, socket, sys\np = sys.argv[1]\ntry:\n    os.unlink(p)\nexcept OSError:\n    pass\n"
            "s = socket.socket(socket.AF_UNIX)\ns.bind(p)\nif sys.argv[2] == 'listen':\n    s.listen(8)\n"
            "    conns = []\n    while True:\n        conns.append(s.accept())\n")
EXT_SOCK = "/srv/on-both/ext.sock"


def _seed_cache() -> None:
    """Start from the main lab's QEMU capabilities cache, if there is one (a warm bring-up)."""
    main = Path("/var/tmp/migcheck-lab/cache")
    if main.is_dir():
        shutil.copytree(main, STATE_DIR / "cache", dirs_exist_ok=True)


def _define(host, kind: str, name: str, xml: str, start: bool = True) -> None:
    path = f"/tmp/{kind}-{name}.xml"
    host.write_file(path, xml)
    host.virsh(f"{kind}-define", path)
    if start:
        host.virsh(f"{kind}-start", name)


@pytest.fixture(scope="module")
def lab():
    require_lab()
    _seed_cache()
    shared_ip = ["ip", "addr", "add", f"{SHARED_IP}/32", "dev", "lo"]
    specs = [
        HostSpec("net-a", bridges=["br-prod", "nic-a"], dirs=["/srv/only-on-a", "/srv/on-both"], hugetlbfs=True,
                 setup=[shared_ip]),
        HostSpec("net-b", bridges=["br-prod", "br-other", "nic-b"], dirs=["/srv/on-both"], hugetlbfs=True,
                 setup=[shared_ip]),
        HostSpec("net-c", bridges=["br-alt", "br-fwd"]),  # br-alt: the bridge an --xml can name there
    ]
    with Lab(specs, prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR) as lab:
        a, b, c = lab.hosts
        for h in (a, b):
            _define(h, "net", "labnet", LABNET.format(name="labnet", bridge="virbr-lab", pgs=""))
            _define(h, "nwfilter", "mc-custom", FILTER.format(name="mc-custom"), start=False)
        _define(c, "net", "labnet", LABNET.format(name="labnet", bridge="virbr-lab", pgs=""), start=False)
        _define(a, "net", "anet", LABNET.format(name="anet", bridge="virbr-anet", pgs=""))
        _define(a, "net", "pgnet", LABNET.format(name="pgnet", bridge="virbr-pg", pgs="<portgroup name='web'/>"))
        _define(b, "net", "pgnet", LABNET.format(name="pgnet", bridge="virbr-pg", pgs="<portgroup name='db'/>"))
        _define(a, "nwfilter", "mc-only-a", FILTER.format(name="mc-only-a"), start=False)
        for h, octet in ((a, 150), (b, 151)):  # the same network name, another address on each host
            _define(h, "net", "glnet", GLNET.format(octet=octet))
        # networks the live XML shows as their bridge or NIC (see "networks seen as their bridge")
        _define(a, "net", "natnet", LABNET.format(name="natnet", bridge="virbr-n1", pgs=""))
        _define(b, "net", "natnet", LABNET.format(name="natnet", bridge="virbr-n2", pgs=""))
        for name in ("fwd", "fwdoff", "fwdgone", "fwdonly-a"):
            _define(a, "net", name, FWD_BRIDGE.format(name=name, bridge="br-prod"))
        _define(b, "net", "fwd", FWD_BRIDGE.format(name="fwd", bridge="br-other"))  # the same network, another bridge
        _define(c, "net", "fwdoff", FWD_BRIDGE.format(name="fwdoff", bridge="br-fwd"), start=False)
        _define(c, "net", "fwdgone", FWD_BRIDGE.format(name="fwdgone", bridge="br-gone"))  # active, bridge absent
        for name in ("mvnet", "mvgone"):
            _define(a, "net", name, FWD_MACVTAP.format(name=name, dev="nic-a"))
        _define(b, "net", "mvnet", FWD_MACVTAP.format(name="mvnet", dev="nic-b"))
        _define(c, "net", "mvgone", FWD_MACVTAP.format(name="mvgone", dev="nic-gone"))
        a.run(["truncate", "-s", "1M", ONLY_A_ISO], check=True)
        yield lab


def _hosts(lab):
    return lab.hosts  # net-a, net-b, net-c


def _pair_vm(lab, src, dst, name, flags, *, devices="", extra_xml="", start=True, **expect):
    with guest(lab, src, name, lab.guest_xml(name, extra_devices=devices, extra_xml=extra_xml), start=start):
        return pair(lab, src, dst, name, flags, **expect)


def _state(host, name: str) -> str:
    p = host.virsh("domstate", name, check=False)
    return p.stdout.strip() if p.returncode == 0 else "undefined"


# ------------------------------------------------------------------ bridges and macvtap

BRIDGE = "<interface type='bridge'><source bridge='br-prod'/><model type='virtio'/></interface>"
MACVTAP = "<interface type='direct'><source dev='br-prod' mode='bridge'/><model type='virtio'/></interface>"


def test_bridge_on_both_hosts_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    out = _pair_vm(lab, a, b, "net-br-ok", ["--live"], devices=BRIDGE, expect="ok")
    assert "network.bridge-missing" not in out.rules()


def test_bridge_missing_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-br-missing", ["--live"], devices=BRIDGE, expect="blocked",
             expect_rule="network.bridge-missing",
             expect_error="Cannot get interface MTU on 'br-prod': No such device")


def test_offline_move_of_a_bridge_guest_needs_no_bridge(lab):
    a, _, c = _hosts(lab)
    with guest(lab, a, "net-br-offline", lab.guest_xml("net-br-offline", extra_devices=BRIDGE), start=False):
        out = pair(lab, a, c, "net-br-offline", ["--offline", "--persistent"], expect="ok")
        assert out.migrated and _state(c, "net-br-offline") == "shut off"


def test_macvtap_device_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-mv-ok", ["--live"], devices=MACVTAP, expect="ok")


def test_macvtap_device_missing_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-mv-missing", ["--live"], devices=MACVTAP, expect="blocked",
             expect_rule="network.direct-device-missing",
             expect_error="Unable to get index for interface br-prod: No such device")


# ------------------------------------------------------------------ --xml: the definition the target receives


def _dest_xml(host, name: str, tmp: Path, label: str, edit) -> str:
    """The running guest's migratable XML, edited, in a local file for virsh migrate --xml (and migcheck)."""
    text = edit(host.virsh("dumpxml", "--migratable", name).stdout)
    path = tmp / f"{name}-{label}.xml"
    path.write_text(text)
    return str(path)


def test_xml_naming_the_targets_bridge_is_ok_and_migrates(lab, tmp_path):
    """br-prod is missing on net-c (blocked without --xml, above); an --xml naming net-c's br-alt migrates."""
    a, _, c = _hosts(lab)
    with guest(lab, a, "net-xml-br", lab.guest_xml("net-xml-br", extra_devices=BRIDGE)):
        xml = _dest_xml(a, "net-xml-br", tmp_path, "br-alt", lambda t: t.replace("'br-prod'", "'br-alt'"))
        out = pair(lab, a, c, "net-xml-br", ["--live", "--xml", xml], expect="ok")
        assert not {"network.bridge-missing", "flags.destination-xml"} & out.rules()
        assert "br-alt" in c.virsh("dumpxml", "net-xml-br").stdout


def test_xml_still_naming_the_missing_bridge_is_blocked_and_fails(lab, tmp_path):
    a, _, c = _hosts(lab)
    with guest(lab, a, "net-xml-same", lab.guest_xml("net-xml-same", extra_devices=BRIDGE)):
        xml = _dest_xml(a, "net-xml-same", tmp_path, "same", lambda t: t)
        pair(lab, a, c, "net-xml-same", ["--live", "--xml", xml], expect="blocked",
             expect_rule="network.bridge-missing", expect_error="Cannot get interface MTU on 'br-prod': No such device")


XML_ABI = {
    "vcpus": (lambda t: re.sub(r"(<vcpu[^>]*>)1<", r"\g<1>2<", t), "Target domain vCPU max 2 does not match source 1"),
    "machine": (lambda t: t.replace("machine='pc-q35-7.2'", "machine='pc-q35-7.1'"),
                "Target domain machine type pc-q35-7.1 does not match source pc-q35-7.2"),
}


@pytest.mark.parametrize("change", sorted(XML_ABI))
def test_xml_changing_the_abi_is_blocked_and_fails(lab, tmp_path, change):
    """Even with the bridge fixed, an --xml of another vCPU count or machine type is refused by libvirt's
    ABI stability check in the Begin phase."""
    a, _, c = _hosts(lab)
    edit, text = XML_ABI[change]
    name = f"net-xml-{change}"
    with guest(lab, a, name, lab.guest_xml(name, extra_devices=BRIDGE)):
        assert "pc-q35-7.2" in a.virsh("dumpxml", name).stdout or change != "machine"
        xml = _dest_xml(a, name, tmp_path, change, lambda t: edit(t.replace("'br-prod'", "'br-alt'")))
        out = pair(lab, a, c, name, ["--live", "--xml", xml], expect="blocked", expect_rule="flags.destination-xml",
                   expect_error=text)
        assert "network.bridge-missing" not in out.rules()


def test_xml_file_missing_is_blocked_and_fails(lab, tmp_path):
    a, _, c = _hosts(lab)
    with guest(lab, a, "net-xml-none", lab.guest_xml("net-xml-none")):
        pair(lab, a, c, "net-xml-none", ["--live", "--xml", str(tmp_path / "absent.xml")], expect="blocked",
             expect_rule="flags.destination-xml", expect_error="Failed to open file")


# ------------------------------------------------------------------ libvirt networks, portgroups, nwfilters

def _net_iface(net: str, portgroup: str = "", filterref: str = "") -> str:
    pg = f" portgroup='{portgroup}'" if portgroup else ""
    fr = f"<filterref filter='{filterref}'/>" if filterref else ""
    return f"<interface type='network'><source network='{net}'{pg}/><model type='virtio'/>{fr}</interface>"


def test_network_active_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-net-ok", ["--live"], devices=_net_iface("labnet"), expect="ok")


def test_network_missing_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-net-missing", ["--live"], devices=_net_iface("anet"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Network not found: no network with matching name 'anet'")


def test_network_inactive_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-net-inactive", ["--live"], devices=_net_iface("labnet"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Requested operation is not valid: network 'labnet' is not active")


def test_portgroup_missing_on_target_migrates_with_a_warning(lab):
    """libvirt finds no portgroup of that name on the target and plugs the guest in without one."""
    a, b, _ = _hosts(lab)
    out = _pair_vm(lab, a, b, "net-pg-missing", ["--live"], devices=_net_iface("pgnet", portgroup="web"),
                   expect="ok")
    assert "network.libvirt-network" in out.rules("warn")


def test_nwfilter_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    iface = BRIDGE.replace("</interface>", "<filterref filter='mc-custom'/></interface>")
    _pair_vm(lab, a, b, "net-filter-ok", ["--live"], devices=iface, expect="ok")


def test_nwfilter_missing_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    iface = BRIDGE.replace("</interface>", "<filterref filter='mc-only-a'/></interface>")
    _pair_vm(lab, a, b, "net-filter-missing", ["--live"], devices=iface, expect="blocked",
             expect_rule="network.nwfilter-missing",
             expect_error="internal error: referenced filter 'mc-only-a' is missing")


# ------------------------------------------------------------------ networks seen as their bridge
# A running guest's live XML shows an interface on a forward-mode-bridge network as <interface type='bridge'>
# <source network='fwd' bridge='br-prod'/>, on a macvtap network as type='direct' dev='nic-a'; the migration
# sends type='network' and the target resolves the network itself.

def _live_iface(host, vm: str) -> str:
    xml = host.virsh("dumpxml", vm).stdout
    return xml[xml.index("<interface"):xml.index("</interface>")]


def test_nat_network_with_another_bridge_name_on_target_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-nat-otherbr", ["--live"], devices=_net_iface("natnet"), expect="ok")


def test_bridge_network_with_another_bridge_on_target_is_ok_and_migrates(lab):
    """Live XML: type='bridge' on br-prod, which net-b lacks; its network 'fwd' hands out br-other."""
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-fwd-otherbr", lab.guest_xml("net-fwd-otherbr", extra_devices=_net_iface("fwd"))):
        live = _live_iface(a, "net-fwd-otherbr")
        assert "type='bridge'" in live and "bridge='br-prod'" in live and "network='fwd'" in live, live
        out = pair(lab, a, b, "net-fwd-otherbr", ["--live"], expect="ok")
    assert "network.bridge-missing" not in out.rules()


def test_bridge_network_missing_on_target_is_blocked_and_fails(lab):
    """The live XML names br-prod, which net-b has; net-b lacks the network itself."""
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-fwd-missing", ["--live"], devices=_net_iface("fwdonly-a"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Network not found: no network with matching name 'fwdonly-a'")


def test_bridge_network_inactive_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-fwd-inactive", ["--live"], devices=_net_iface("fwdoff"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Requested operation is not valid: network 'fwdoff' is not active")


def test_bridge_network_whose_bridge_is_missing_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-fwd-brgone", ["--live"], devices=_net_iface("fwdgone"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Cannot get interface MTU on 'br-gone': No such device")


def test_macvtap_network_with_another_nic_on_target_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-mv-othernic", lab.guest_xml("net-mv-othernic", extra_devices=_net_iface("mvnet"))):
        live = _live_iface(a, "net-mv-othernic")
        assert "type='direct'" in live and "dev='nic-a'" in live, live
        out = pair(lab, a, b, "net-mv-othernic", ["--live"], expect="ok")
    assert "network.direct-device-missing" not in out.rules()


def test_macvtap_network_missing_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-mv-missing", ["--live"], devices=_net_iface("mvgone"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Network not found: no network with matching name 'mvgone'")


def test_macvtap_network_whose_nic_is_missing_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-mv-nicgone", ["--live"], devices=_net_iface("mvgone"), expect="blocked",
             expect_rule="network.libvirt-network",
             expect_error="Unable to get index for interface nic-gone: No such device")


# ------------------------------------------------------------------ media with a startupPolicy

def _cdrom(path: str, policy: str | None, device: str = "cdrom") -> str:
    sp = f" startupPolicy='{policy}'" if policy else ""
    target = "<target dev='sda' bus='sata'/>" if device == "cdrom" else "<target dev='vdb' bus='virtio'/>"
    return (f"<disk type='file' device='{device}'><driver name='qemu' type='raw'/><source file='{path}'{sp}/>"
            f"{target}<readonly/></disk>")


@pytest.mark.parametrize("policy", ["optional", "requisite"])
def test_cdrom_that_may_be_dropped_missing_on_target_migrates_with_a_warning(lab, policy):
    """The target's libvirt drops the missing media (no cold boot) and the guest arrives with an empty drive."""
    a, b, _ = _hosts(lab)
    vm = f"net-cd-{policy}"
    with guest(lab, a, vm, lab.guest_xml(vm, extra_devices=_cdrom(ONLY_A_ISO, policy))):
        out = pair(lab, a, b, vm, ["--live"], expect="ok")
        assert ONLY_A_ISO not in b.virsh("dumpxml", vm).stdout  # the drive is empty there
    assert "storage.missing-on-target" in out.rules("warn")


@pytest.mark.parametrize("policy", ["mandatory", None])
def test_cdrom_that_must_be_there_missing_on_target_is_blocked_and_fails(lab, policy):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, f"net-cd-{policy or 'default'}", ["--live"], devices=_cdrom(ONLY_A_ISO, policy),
             expect="blocked", expect_rule="storage.missing-on-target",
             expect_error=f"Cannot access storage file '{ONLY_A_ISO}': No such file or directory")


def test_optional_disk_missing_on_target_is_blocked_and_fails(lab):
    """'optional' lets libvirt drop only a cdrom or floppy on an incoming migration, not a disk."""
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-dk-optional", ["--live"], devices=_cdrom(ONLY_A_ISO, "optional", device="disk"),
             expect="blocked", expect_rule="storage.missing-on-target",
             expect_error=f"Cannot access storage file '{ONLY_A_ISO}': No such file or directory")


# ------------------------------------------------------------------ --migrate-disks naming no disk of the guest

def test_migrate_disks_naming_an_unknown_disk_with_storage_copy_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-md-copy", ["--live", "--copy-storage-all", "--migrate-disks", "vdz"], expect="blocked",
             expect_rule="flags.rejected-combination", expect_error="invalid argument: disk target vdz not found")


def test_migrate_disks_naming_an_unknown_disk_without_storage_copy_is_ok_and_migrates(lab):
    """Without --copy-storage-* libvirt 9.0 ignores the list."""
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-md-nocopy", ["--live", "--migrate-disks", "vdz"], expect="ok")


# ------------------------------------------------------------------ chardev files and sockets

def _serial_file(path: str) -> str:
    return f"<serial type='file'><source path='{path}'/><target port='1'/></serial>"


def _unix_channel(mode: str, path: str, reconnect: bool = False) -> str:
    rc = "<reconnect enabled='yes' timeout='5'/>" if reconnect else ""
    return (f"<channel type='unix'><source mode='{mode}' path='{path}'>{rc}</source>"
            "<target type='virtio' name='org.example.ext'/></channel>")


def test_serial_file_in_a_directory_only_on_the_source_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-serial-missing", ["--live"], devices=_serial_file("/srv/only-on-a/console.log"),
             expect="blocked", expect_rule="paths.chardev-directory",
             expect_error="Unable to open file: /srv/only-on-a/console.log: No such file or directory")


def test_serial_file_in_a_directory_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-serial-ok", ["--live"], devices=_serial_file("/srv/on-both/console.log"), expect="ok")


def test_unix_bind_socket_in_a_directory_only_on_the_source_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-bind-missing", ["--live"], devices=_unix_channel("bind", "/srv/only-on-a/agent.sock"),
             expect="blocked", expect_rule="paths.chardev-directory",
             expect_error="Unable to bind to UNIX socket path '/srv/only-on-a/agent.sock': No such file or directory")


def test_guest_agent_channel_with_generated_socket_is_ok_and_migrates(lab):
    """libvirt generates the socket under /var/lib/libvirt/qemu/channel/target/domain-ID-NAME/ on each host."""
    a, b, _ = _hosts(lab)
    agent = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
    out = _pair_vm(lab, a, b, "net-agent", ["--live"], devices=agent, expect="ok")
    assert "paths.chardev-directory" not in out.rules()


class _Sockets:
    """Unix socket listeners and stale socket files inside lab hosts, removed on exit."""

    def __init__(self):
        self.procs: list[tuple[object, subprocess.Popen]] = []
        self.files: list[tuple[object, str]] = []

    def listen(self, host, path: str = EXT_SOCK) -> None:
        p = subprocess.Popen(host.nsenter_argv(["python3", "-c", LISTENER, path, "listen"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append((host, p))
        self.files.append((host, path))
        deadline = time.monotonic() + 10
        while path not in host.run(["cat", "/proc/net/unix"]).stdout:
            if time.monotonic() > deadline or p.poll() is not None:
                raise AssertionError(f"no listener on {path} in {host.name}")
            time.sleep(0.1)

    def stale(self, host, path: str = EXT_SOCK) -> None:
        host.run(["python3", "-c", LISTENER, path, "stale"], check=True)
        self.files.append((host, path))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for _, p in self.procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for host, path in self.files:
            host.run(["rm", "-f", path])


def test_unix_connect_to_a_listener_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    with _Sockets() as socks:
        socks.listen(a)
        socks.listen(b)
        _pair_vm(lab, a, b, "net-conn-ok", ["--live"], devices=_unix_channel("connect", EXT_SOCK), expect="ok")


def test_unix_connect_socket_missing_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    with _Sockets() as socks:
        socks.listen(a)
        _pair_vm(lab, a, b, "net-conn-missing", ["--live"], devices=_unix_channel("connect", EXT_SOCK),
                 expect="blocked", expect_rule="paths.chardev-directory",
                 expect_error=f"unable to stat: {EXT_SOCK}: No such file or directory")


def test_unix_connect_to_a_stale_socket_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    with _Sockets() as socks:
        socks.listen(a)
        socks.stale(b)
        _pair_vm(lab, a, b, "net-conn-stale", ["--live"], devices=_unix_channel("connect", EXT_SOCK),
                 expect="blocked", expect_rule="paths.chardev-directory",
                 expect_error=f"Failed to connect to '{EXT_SOCK}': Connection refused")


def test_unix_connect_with_reconnect_to_a_stale_socket_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    with _Sockets() as socks:
        socks.listen(a)
        socks.stale(b)
        _pair_vm(lab, a, b, "net-conn-reconnect", ["--live"],
                 devices=_unix_channel("connect", EXT_SOCK, reconnect=True), expect="ok")


# ------------------------------------------------------------------ huge pages

HUGEPAGES = "<memoryBacking><hugepages/></memoryBacking>"


def test_hugepages_with_hugetlbfs_on_both_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-huge-ok", ["--live"], extra_xml=HUGEPAGES, expect="ok")


def test_hugepages_without_hugetlbfs_on_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-huge-missing", ["--live"], extra_xml=HUGEPAGES, expect="blocked",
             expect_rule="resources.hugepages",
             expect_error="internal error: hugetlbfs filesystem is not mounted or disabled by administrator config")


# ------------------------------------------------------------------ name collisions

def _target_twin(lab, host, name: str, uuid: str, *, running: bool, memory_mib: int = 64) -> None:
    xml = lab.guest_xml(name, memory_mib=memory_mib).replace("<vcpu>", f"<uuid>{uuid}</uuid><vcpu>", 1)
    host.write_file(f"/tmp/{name}-twin.xml", xml)
    host.virsh("define", f"/tmp/{name}-twin.xml")
    if running:
        host.virsh("start", "--paused", name)


def _forget(lab, *names: str) -> None:
    for h in lab.hosts:
        for n in names:
            h.virsh("destroy", n, check=False)
            h.virsh("undefine", n, check=False)


def _uuid(host, name: str) -> str:
    return host.virsh("domuuid", name).stdout.strip()


@pytest.mark.parametrize("running", [True, False], ids=["running", "defined"])
def test_same_name_other_uuid_on_target_is_blocked_and_fails(lab, running):
    a, b, _ = _hosts(lab)
    name = f"net-col-name-{'run' if running else 'def'}"
    with guest(lab, a, name, lab.guest_xml(name)):
        _target_twin(lab, b, name, OTHER_UUID, running=running)
        pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="platform.name-collision",
             expect_error=f"operation failed: domain '{name}' already exists with uuid {OTHER_UUID}")


def test_same_name_other_uuid_with_dname_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    name = "net-col-dname"
    try:
        with guest(lab, a, name, lab.guest_xml(name)):
            _target_twin(lab, b, name, OTHER_UUID, running=False)
            out = pair(lab, a, b, name, ["--live", "--dname", f"{name}-new"], expect="ok")
            assert _state(b, f"{name}-new") == "paused" and _uuid(b, name) == OTHER_UUID
            assert "platform.name-collision" not in out.rules()
    finally:
        _forget(lab, f"{name}-new")


def test_same_uuid_other_name_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    name = "net-col-uuid"
    try:
        with guest(lab, a, name, lab.guest_xml(name)):
            uuid = _uuid(a, name)
            _target_twin(lab, b, f"{name}-old", uuid, running=False)
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="platform.name-collision",
                 expect_error=f"operation failed: domain '{name}-old' is already defined with uuid {uuid}")
    finally:
        _forget(lab, f"{name}-old")


def test_same_guest_running_on_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    name = "net-col-both"
    with guest(lab, a, name, lab.guest_xml(name)):
        _target_twin(lab, b, name, _uuid(a, name), running=True)
        pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="platform.name-collision",
             expect_error=f"Requested operation is not valid: domain '{name}' is already active")


def _inactive_memory_kib(host, name: str) -> int:
    xml = host.virsh("dumpxml", "--inactive", name).stdout
    return int(re.search(r"<memory unit='KiB'>(\d+)</memory>", xml).group(1))


def test_same_guest_defined_on_target_migrates_and_keeps_the_targets_definition(lab):
    """The incoming guest becomes the target's persistent domain of that UUID; without --persistent the
    target's stored (here: 96 MiB) definition stays its next-boot configuration."""
    a, b, _ = _hosts(lab)
    name = "net-col-stale"
    with guest(lab, a, name, lab.guest_xml(name)):
        _target_twin(lab, b, name, _uuid(a, name), running=False, memory_mib=96)
        out = pair(lab, a, b, name, ["--live"], expect="ok")
        assert "platform.name-collision" in out.rules("warn")
        assert _state(b, name) == "paused" and _inactive_memory_kib(b, name) == 96 * 1024


def test_same_guest_defined_on_target_with_persistent_replaces_the_definition(lab):
    a, b, _ = _hosts(lab)
    name = "net-col-persist"
    with guest(lab, a, name, lab.guest_xml(name)):
        _target_twin(lab, b, name, _uuid(a, name), running=False, memory_mib=96)
        out = pair(lab, a, b, name, ["--live", "--persistent"], expect="ok")
        assert "platform.name-collision" not in out.rules()
        assert _state(b, name) == "paused" and _inactive_memory_kib(b, name) == 64 * 1024


# ------------------------------------------------------------------ guest state

def test_shut_off_guest_live_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-off-live", ["--live"], start=False, expect="blocked",
             expect_rule="platform.guest-not-running",
             expect_error="Requested operation is not valid: domain is not running")


def test_shut_off_guest_offline_persistent_is_ok_and_is_defined_on_target(lab):
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-off-move", lab.guest_xml("net-off-move"), start=False):
        out = pair(lab, a, b, "net-off-move", ["--offline", "--persistent"], expect="ok")
        assert out.migrated
        assert _state(b, "net-off-move") == "shut off"
        assert b.virsh("dominfo", "net-off-move").stdout.count("Persistent:     yes") == 1


def _dumped_paused_guest(lab, host, name: str, *, paused_again: bool = False) -> None:
    """A paused guest after `virsh dump` (not --memory-only): its QEMU is left in 'postmigrate'
    (paused_again: then resumed and paused, back to 'paused')."""
    core = f"/srv/only-on-a/{name}.core"
    host.virsh("dump", name, core, timeout=120)
    host.run(["rm", "-f", core])
    if paused_again:
        host.virsh("resume", name)
        host.virsh("suspend", name)
    status = host.run(["virsh", "qemu-monitor-command", name, '{"execute":"query-status"}']).stdout
    assert ('"paused"' if paused_again else '"postmigrate"') in status, status


POSTMIGRATE_ERROR = ("internal error: unable to execute QEMU command 'migrate': Can't migrate the vm that was "
                     "paused due to previous migration")


def test_paused_guest_after_a_dump_is_risky_without_qmp_and_fails(lab):
    """Without --qmp migcheck sees that a dump finished, not whether the guest was resumed since."""
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-dumped", lab.guest_xml("net-dumped")):
        _dumped_paused_guest(lab, a, "net-dumped")
        out = pair(lab, a, b, "net-dumped", ["--live"], expect="risky", expect_rule="state.postmigrate-paused")
        assert not out.migrated and POSTMIGRATE_ERROR in out.migrate_error, out.migrate_error


def test_paused_guest_after_a_dump_is_blocked_with_qmp_and_fails(lab):
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-dumped-qmp", lab.guest_xml("net-dumped-qmp")):
        _dumped_paused_guest(lab, a, "net-dumped-qmp")
        code, report, stderr = migcheck(a.name, b.name, "net-dumped-qmp", ["--live"], "--qmp")
        assert report.get("verdict") == "blocked", (code, report.get("findings"), stderr)
        assert any(f["rule"] == "state.postmigrate-paused" and f["severity"] == "block" for f in report["findings"])
        p = lab.migrate(a, b, "net-dumped-qmp", ["--live"])
        assert p.returncode != 0 and POSTMIGRATE_ERROR in p.stderr, p.stderr


def test_paused_again_after_a_dump_is_ok_with_qmp_and_migrates(lab):
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-redumped", lab.guest_xml("net-redumped")):
        _dumped_paused_guest(lab, a, "net-redumped", paused_again=True)
        code, report, stderr = migcheck(a.name, b.name, "net-redumped", ["--live"], "--qmp")
        assert report.get("verdict") == "ok", (code, report.get("findings"), stderr)
        p = lab.migrate(a, b, "net-redumped", ["--live"])
        assert p.returncode == 0, p.stderr


def test_paused_again_after_a_dump_is_still_risky_without_qmp_and_migrates(lab):
    """libvirt keeps the dump's statistics through resume and suspend: risky (state-dependent), and it migrates."""
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-redumped2", lab.guest_xml("net-redumped2")):
        _dumped_paused_guest(lab, a, "net-redumped2", paused_again=True)
        out = pair(lab, a, b, "net-redumped2", ["--live"], expect="risky", expect_rule="state.postmigrate-paused")
        assert out.migrated, out.migrate_error


def test_paused_guest_started_again_after_migrating_away_is_ok_and_migrates(lab):
    """libvirt keeps the statistics of a completed outgoing migration across a restart; that QEMU was killed
    when the migration succeeded, so the paused guest started since is not in 'postmigrate'."""
    a, b, _ = _hosts(lab)
    with guest(lab, a, "net-back", lab.guest_xml("net-back")):
        assert lab.migrate(a, b, "net-back", ["--live"]).returncode == 0
        b.virsh("destroy", "net-back")
        a.virsh("start", "--paused", "net-back")
        job = a.virsh("domjobinfo", "--completed", "--keep-completed", "net-back").stdout
        assert "Completed" in job and "Outgoing migration" in job, job  # the stale record is there
        out = pair(lab, a, b, "net-back", ["--live"], expect="ok")
        assert "state.postmigrate-paused" not in out.rules()


# A reader that drains a FIFO slowly: `virsh dump` into it keeps the dump job (and its lock) for a minute.
SLOW_READER = "import sys, time\nf = open(sys.argv[1], 'rb')\nwhile f.read(4096):\n    time.sleep(1)\n"


def test_guest_with_a_dump_job_in_progress_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    name = "net-job"
    fifo = f"/srv/only-on-a/{name}.fifo"
    with guest(lab, a, name, lab.guest_xml(name)):
        a.run(["rm", "-f", fifo])
        a.run(["mkfifo", fifo], check=True)
        reader = subprocess.Popen(a.nsenter_argv(["python3", "-c", SLOW_READER, fifo]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dump = subprocess.Popen(a.nsenter_argv(["virsh", "-c", "qemu:///system", "dump", name, fifo]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while "Job type:         None" in a.virsh("domjobinfo", name, check=False).stdout:
                assert time.monotonic() < deadline and dump.poll() is None, "the dump job did not start"
                time.sleep(0.2)
            pair(lab, a, b, name, ["--live"], expect="blocked", expect_rule="state.job-active",
                 expect_error="Timed out during operation: cannot acquire state change lock "
                              "(held by monitor=remoteDispatchDomainCoreDump)")
        finally:
            reader.terminate()
            reader.wait(timeout=10)
            try:
                dump.wait(timeout=60)  # fails on the closed FIFO, which ends the job
            except subprocess.TimeoutExpired:
                dump.kill()
                dump.wait(timeout=10)
            a.run(["rm", "-f", fifo])


# ------------------------------------------------------------------ graphics listen address

def _vnc(addr: str) -> str:
    return f"<graphics type='vnc' port='-1' autoport='yes' listen='{addr}'/>"


def test_vnc_on_the_sources_own_address_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-vnc-own", ["--live"], devices=_vnc(a.ip), expect="blocked",
             expect_rule="paths.graphics-listen",
             expect_error="Failed to bind socket: Cannot assign requested address")


VNC_ON_GLNET = "<graphics type='vnc' port='-1' autoport='yes'><listen type='network' network='glnet'/></graphics>"


def test_vnc_listening_on_a_network_with_another_address_on_the_target_is_ok_and_migrates(lab):
    """The live XML shows the source's address of the network; the target's libvirt resolves it again."""
    a, b, _ = _hosts(lab)
    out = _pair_vm(lab, a, b, "net-vnc-glnet", ["--live"], devices=VNC_ON_GLNET, expect="ok")
    assert "paths.graphics-listen" not in out.rules()


def test_vnc_listening_on_a_network_missing_on_the_target_is_blocked_and_fails(lab):
    a, _, c = _hosts(lab)
    _pair_vm(lab, a, c, "net-vnc-nonet", ["--live"], devices=VNC_ON_GLNET, expect="blocked",
             expect_rule="paths.graphics-listen",
             expect_error="Network not found: no network with matching name 'glnet'")


def test_vnc_on_a_fixed_port_taken_on_the_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    with _listener(b, 5911):
        _pair_vm(lab, a, b, "net-vnc-port", ["--live"],
                 devices="<graphics type='vnc' port='5911' autoport='no' listen='0.0.0.0'/>", expect="blocked",
                 expect_rule="paths.graphics-listen",
                 expect_error="Failed to find an available port: Address already in use")


def test_vnc_on_an_address_both_hosts_have_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    out = _pair_vm(lab, a, b, "net-vnc-shared", ["--live"], devices=_vnc(SHARED_IP), expect="ok")
    assert "paths.graphics-listen" not in out.rules()


# ------------------------------------------------------------------ TCP character devices

def _tcp_serial(host: str, port: int) -> str:
    return (f"<serial type='tcp'><source mode='bind' host='{host}' service='{port}'/><protocol type='telnet'/>"
            "<target port='0'/></serial>")


def test_tcp_serial_bound_to_the_sources_own_address_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    _pair_vm(lab, a, b, "net-tcp-own", ["--live"], devices=_tcp_serial(a.ip, 4555), expect="blocked",
             expect_rule="paths.chardev-tcp-bind", expect_error="Failed to bind socket: Cannot assign requested address")


@contextlib.contextmanager
def _listener(host, port: int):
    """Something on host listening on 0.0.0.0:port (another guest's serial port, say)."""
    code = ("import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('0.0.0.0', {port}))\ns.listen()\ntime.sleep(600)\n")
    proc = subprocess.Popen(host.nsenter_argv(["python3", "-c", code]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while f":{port:04X} " not in host.read_file("/proc/net/tcp") and time.monotonic() < deadline:
            time.sleep(0.05)
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_tcp_serial_whose_port_is_taken_on_the_target_is_blocked_and_fails(lab):
    a, b, _ = _hosts(lab)
    with _listener(b, 4556):
        _pair_vm(lab, a, b, "net-tcp-taken", ["--live"], devices=_tcp_serial("0.0.0.0", 4556), expect="blocked",
                 expect_rule="paths.chardev-tcp-bind",
                 expect_error="Failed to find an available port: Address already in use")


def test_tcp_serial_on_a_free_port_is_ok_and_migrates(lab):
    a, b, _ = _hosts(lab)
    with _listener(b, 4558):  # another port is taken: no matter
        out = _pair_vm(lab, a, b, "net-tcp-free", ["--live"], devices=_tcp_serial("0.0.0.0", 4557), expect="ok")
    assert "paths.chardev-tcp-bind" not in out.rules()
