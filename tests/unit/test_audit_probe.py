"""The fleet probe brings back, for every pair, exactly the RawHosts probe_pair (migcheck SRC DST VM) gathers.

Both run against the same fake hosts (a fake libvirt connection and a fake SFTP), through
migcheck.probe.gather's own session and gather functions. When probe_pair gains a stage, this
test fails until migcheck.audit.fleet cuts the same answers.
"""

from __future__ import annotations

import threading

import libvirt
import pytest

from migcheck.checks.registry import probe_plan

from migcheck.audit import probe as audit_probe
from migcheck.audit.fleet import source_raw, target_raw

AUDIT_THREAD_PREFIXES = ("audit-",)  # the per-host probe threads of audit/probe.py
from migcheck.audit.inventory import parse_inventory
from migcheck.connectors.hostspec import parse_host
from migcheck.probe import gather, session
from migcheck.probe.gather import ProbeOptions
from migcheck.probe.pair import probe_pair
from migcheck.probe.raw import PathStat
from tests.unit.fleetgen import DEFAULT_PROFILES, UUID_PLACEHOLDER, domcaps_text

QEMU = "/usr/bin/qemu-system-x86_64"


def _guest(name: str, uuid: str, devices: str = "", cpu: str = "", disk: str | None = None, dom_id: int = 0) -> str:
    disk_xml = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
                "<target dev='vda' bus='virtio'/></disk>") if disk else ""
    return (f"<domain type='kvm'{f' id={chr(39)}{dom_id}{chr(39)}' if dom_id else ''}><name>{name}</name>"
            f"<uuid>{uuid}</uuid><memory unit='KiB'>65536</memory><vcpu>1</vcpu>"
            f"<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>{cpu}"
            f"<devices><emulator>{QEMU}</emulator>{disk_xml}{devices}</devices></domain>")


class FakeDomain:
    def __init__(self, name, uuid, running, xml, dom_id):
        self._name, self._uuid, self.running, self.xml, self.dom_id = name, uuid, running, xml, dom_id

    def name(self): return self._name
    def UUIDString(self): return self._uuid
    def ID(self): return self.dom_id if self.running else -1
    def state(self): return [1 if self.running else 5, 1]
    def isPersistent(self): return 1
    def XMLDesc(self, flags=0): return self.xml.replace(f" id='{self.dom_id}'", "") if flags else self.xml
    def jobInfo(self): return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    def jobStats(self, flags=0): return {"type": 0}
    def snapshotNum(self, flags=0): return 0
    def blockJobInfo(self, disk, flags=0): return {}


class FakeNet:
    def __init__(self, name): self._name = name
    def name(self): return self._name
    def isActive(self): return 1
    def XMLDesc(self, flags=0): return f"<network><name>{self._name}</name><bridge name='virbr-{self._name}'/></network>"


class FakeNamed:
    def __init__(self, name): self._name = name
    def name(self): return self._name


class FakeConn:
    def __init__(self, host: "FakeHost"):
        self.h = host

    def getHostname(self): return self.h.name + ".example"
    def getLibVersion(self): return self.h.profile.libvirt
    def getVersion(self): return self.h.profile.qemu
    def getCapabilities(self): return self.h.profile.caps_xml.replace(UUID_PLACEHOLDER, self.h.uuid)
    def getFreeMemory(self): return 8 * 1024 ** 3

    def listAllDomains(self, flags=0):
        active = bool(flags & libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        if not flags & (libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE | libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
            return list(self.h.domains.values())  # as libvirt: no filter, every domain
        return [d for d in self.h.domains.values() if d.running == active]

    def listAllNetworks(self, flags=0): return [FakeNet(n) for n in self.h.profile.networks]
    def listAllNWFilters(self, flags=0): return [FakeNamed("clean-traffic")]
    def listAllSecrets(self, flags=0): return []
    def listAllStoragePools(self, flags=0): return []

    def lookupByName(self, name):
        return self.h.domains[name]

    def getDomainCapabilities(self, emulator, arch, machine, virttype, flags=0):
        return domcaps_text(self.h.profile, machine or "pc-q35-7.2")

    def compareHypervisorCPU(self, emulator, arch, machine, virttype, xml, flags=0):
        return 2 if "Haswell" in xml or self.h.profile.cpu_gen >= 2 else 1

    def baselineHypervisorCPU(self, emulator, arch, machine, virttype, xmls, flags=0):
        return xmls[0].replace("<cpu ", "<cpu expanded='yes' ", 1)  # written out by this host (a marker)

    def close(self): return 0


class FakeFiles:
    def __init__(self, host: "FakeHost"):
        self.h = host

    def read(self, path, limit=1024 * 1024, offset=0):
        if path not in self.h.files:
            raise FileNotFoundError(2, "No such file", path)
        return self.h.files[path][offset:offset + limit]

    def readlink(self, path):
        return QEMU

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/")[0] for p in self.h.files if p.startswith(prefix)}
        if not names:
            raise FileNotFoundError(2, "No such directory", path)
        return sorted(names)

    def stat(self, path):
        if path in self.h.files:
            return PathStat(path=path, exists=True, size=len(self.h.files[path]), mtime=1.0)
        if path in self.h.dirs:
            return PathStat(path=path, exists=True, is_dir=True)
        return PathStat(path=path, exists=False)

    def close(self):
        pass


class FakeHost:
    def __init__(self, name, profile, uuid, dirs=(), files=None):
        self.name, self.profile, self.uuid = name, profile, uuid
        self.dirs = set(dirs) | {f"/sys/class/net/{b}" for b in profile.bridges}
        self.files = {"/proc/meminfo": b"MemTotal: 16000000 kB\nMemAvailable: 8000000 kB\n",
                      "/proc/self/mountinfo": b"22 1 254:0 / / rw - ext4 /dev/vda rw\n",
                      "/sys/devices/system/cpu/online": b"0-3\n", QEMU: b"\x7fELF",
                      # a console port taken: read by probe_pair only for a guest binding TCP ports (b2)
                      "/proc/net/tcp": b"  sl  local_address rem_address   st\n"
                                       b"   0: 00000000:11CB 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
                      # one USB device: listed by probe_pair only for a guest with a USB hostdev (b1)
                      "/sys/bus/usb/devices/1-1/idVendor": b"1050\n", "/sys/bus/usb/devices/1-1/idProduct": b"0402\n",
                      "/sys/bus/usb/devices/1-1/busnum": b"1\n", "/sys/bus/usb/devices/1-1/devnum": b"3\n"}
        self.files.update(files or {})
        self.domains: dict[str, FakeDomain] = {}

    def add(self, name, uuid, running=True, **kw):
        dom_id = len(self.domains) + 1
        xml = _guest(name, uuid, dom_id=dom_id if running else 0, **kw)
        self.domains[name] = FakeDomain(name, uuid, running, xml, dom_id)
        if running:
            pid = 1000 + dom_id
            self.files[f"/run/libvirt/qemu/{name}.pid"] = str(pid).encode()
            self.files[f"/run/libvirt/qemu/{name}.xml"] = (f"<domstatus state='running' pid='{pid}'>{xml}"
                                                          "</domstatus>").encode()
            self.files[f"/proc/{pid}/cmdline"] = b"\0".join([QEMU.encode(), b"-name", f"guest={name}".encode(),
                                                              b"-cpu", b"qemu64"]) + b"\0"
            self.files[f"/var/log/libvirt/qemu/{name}.log"] = b"starting up libvirt version: 9.0.0, qemu version: 7.2.0\n"


class FakeSsh:
    hosts: dict[str, FakeHost] = {}

    def __init__(self, target, options):
        self.target = target
        self.client = None  # no transport: libvirt is not tunnelled over it

    def connect(self):
        return self

    @property
    def files(self):
        return FakeFiles(self.hosts[self.target.host])

    def run(self, argv, timeout, limit=64 * 1024):
        """getent ahosts NAME, answered from the fake hosts' names (fb.example -> 192.0.2.2)."""
        assert argv[:3] == ["getent", "ahosts", "--"], argv
        names = sorted(self.hosts)
        for i, n in enumerate(names, 1):
            if argv[3] == n + ".example":
                return 0, f"192.0.2.{i}    STREAM {argv[3]}\n192.0.2.{i}    DGRAM\n"
        return 2, ""

    def close(self):
        pass


@pytest.fixture
def fake_fleet(monkeypatch):
    p_old, p_new = DEFAULT_PROFILES[1], DEFAULT_PROFILES[3]
    hosts = {
        "fa": FakeHost("fa", p_old, "aaaaaaaa-0000-4000-8000-000000000001", dirs=["/srv/logs"],
                       files={"/mnt/nfs/images/a1.qcow2": bytes.fromhex("514649fb00000003") + bytes(56)}),
        "fb": FakeHost("fb", p_new, "bbbbbbbb-0000-4000-8000-000000000002",
                       files={"/etc/libvirt/qemu.conf": b'migrate_tls_x509_cert_dir = "/etc/pki/mig"\n',
                              "/mnt/nfs/images/a1.qcow2": bytes.fromhex("514649fb00000003") + bytes(56)}),
        "fc": FakeHost("fc", p_old, "aaaaaaaa-0000-4000-8000-000000000001"),  # a clone: same host UUID as fa
    }
    hosts["fa"].add("a1", "11111111-0000-4000-8000-000000000001", disk="/mnt/nfs/images/a1.qcow2",
                    devices="<interface type='bridge'><source bridge='br-prod'/></interface>")
    hosts["fa"].add("a2", "11111111-0000-4000-8000-000000000002",
                    devices="<serial type='file'><source path='/srv/logs/a2.log'/></serial>")
    hosts["fa"].add("a3", "11111111-0000-4000-8000-000000000003", running=False)
    hosts["fb"].add("b1", "22222222-0000-4000-8000-000000000001",
                    cpu="<cpu mode='custom' match='exact'><model fallback='forbid'>Haswell-noTSX</model></cpu>",
                    devices="<hostdev mode='subsystem' type='usb'><source><vendor id='0x1050'/>"
                            "<product id='0x0402'/></source></hostdev>")
    hosts["fb"].add("b2", "22222222-0000-4000-8000-000000000002",
                    cpu="<cpu mode='host-passthrough' migratable='on'/>",
                    devices="<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial>")
    hosts["fc"].add("a1", "99999999-0000-4000-8000-000000000009", running=False)  # a name collision
    hosts["fc"].add("c1", "33333333-0000-4000-8000-000000000001", disk="/var/lib/libvirt/images/c1.img")
    by_uri = {}
    for h in hosts.values():
        by_uri[parse_host(f"root@{h.name}").uri] = h

    def open_conn(uri):
        base = uri.split("?")[0]
        for u, h in by_uri.items():
            if u.split("?")[0] == base:
                return FakeConn(h)
        raise AssertionError(uri)

    FakeSsh.hosts = hosts
    monkeypatch.setattr(session, "open_readonly", open_conn)
    monkeypatch.setattr(session, "open_readwrite", open_conn)
    monkeypatch.setattr(session, "SshConnection", FakeSsh)
    monkeypatch.setenv("MIGCHECK_NO_TUNNEL", "1")
    return hosts


def test_fleet_probe_cuts_exactly_what_probe_pair_gathers(fake_fleet) -> None:
    inv = parse_inventory("groups:\n  g: [root@fa, root@fb, root@fc]\n", "fleet.yml")
    options = ProbeOptions(timeout=30, connect_timeout=5, tunnel=False, plan=probe_plan)
    fleet = audit_probe.probe_fleet(inv, options, jobs=2)
    assert all(h.ok and not h.target_error for h in fleet.values()), {n: (h.error, h.target_error) for n, h in fleet.items()}
    assert set(fleet["root@fa"].guests) == {"a1", "a2", "a3"}
    n = 0
    for src_name, host in fleet.items():
        for vm, g in host.guests.items():
            assert g.error is None, g.error
            for dst_name in inv.candidates(src_name):
                pair = probe_pair(parse_host(src_name), parse_host(dst_name), vm, options)
                # the audit asks a source about every candidate target's name at once; a pair, about one
                asked = source_raw(host, g)
                assert set(pair.source.resolved) == {dst_name.split("@")[1] + ".example"}
                asked.resolved = {k: v for k, v in asked.resolved.items() if k in pair.source.resolved}
                assert asked == pair.source, (vm, src_name)
                assert target_raw(fleet[dst_name], g) == pair.target, (vm, src_name, dst_name)
                n += 1
    assert n == 7 * 2
    # the cases the fakes were built for really occur
    a1 = fleet["root@fa"].guests["a1"]
    assert target_raw(fleet["root@fb"], a1).image_headers  # the NFS image is there, read
    assert "/etc/pki/mig/server-cert.pem" in target_raw(fleet["root@fb"], a1).paths  # fb's own qemu.conf
    # b1's custom CPU is judged by its candidate target fa (the fake answers 2, superset, for Haswell)
    assert [a.result for a in target_raw(fleet["root@fa"], fleet["root@fb"].guests["b1"]).cpu_compare.values()] == [2]
    # the TCP tables go with the guest that binds a port (b2), and only with it
    assert "/proc/net/tcp" in target_raw(fleet["root@fa"], fleet["root@fb"].guests["b2"]).files
    assert "/proc/net/tcp" not in target_raw(fleet["root@fa"], fleet["root@fb"].guests["b1"]).files
    assert "/proc/net/tcp" not in source_raw(fleet["root@fb"], fleet["root@fb"].guests["b2"]).files
    # the USB devices likewise, with the guest that has a USB hostdev (b1)
    assert [d.vendor for d in target_raw(fleet["root@fa"], fleet["root@fb"].guests["b1"]).usb_devices] == ["1050"]
    assert target_raw(fleet["root@fa"], fleet["root@fb"].guests["b2"]).usb_devices is None
    leaked = [t.name for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()
              and t.name.startswith(AUDIT_THREAD_PREFIXES)]
    assert not leaked, f"threads still running after probe_fleet returned: {leaked}"


def test_a_host_that_fails_is_reported_and_the_audit_goes_on(fake_fleet, monkeypatch) -> None:
    real = session.open_readonly

    def refuse_fc(uri):
        if "@fc/" in uri:
            from migcheck.connectors.libvirt_conn import LibvirtError

            raise LibvirtError("Cannot recv data: ssh: connect to host fc port 22: Connection refused")
        return real(uri)

    monkeypatch.setattr(session, "open_readonly", refuse_fc)
    inv = parse_inventory("groups:\n  g: [root@fa, root@fb, root@fc]\n", "fleet.yml")
    fleet = audit_probe.probe_fleet(inv, ProbeOptions(timeout=30, connect_timeout=5), jobs=3)
    assert fleet["root@fc"].error and "Connection refused" in fleet["root@fc"].error
    assert fleet["root@fa"].ok and fleet["root@fb"].ok


def test_a_hung_host_times_out_alone(fake_fleet, monkeypatch) -> None:
    real = session.open_readonly
    release = threading.Event()

    def hang_fb(uri):
        if "@fb/" in uri:
            release.wait(20)
        return real(uri)

    monkeypatch.setattr(session, "open_readonly", hang_fb)
    inv = parse_inventory("groups:\n  g: [root@fa, root@fb, root@fc]\n", "fleet.yml")
    try:
        fleet = audit_probe.probe_fleet(inv, ProbeOptions(timeout=2, connect_timeout=1), jobs=1)
    finally:
        release.set()
    assert "no complete answer within 2s" in (fleet["root@fb"].error or "")
    assert fleet["root@fa"].ok and fleet["root@fc"].ok  # the slot of the hung host went to the next one


def _stop_after_guests_were_read(monkeypatch, fake_fleet, host: str, vm: str, module) -> None:
    """The guest is destroyed right after its facts were read: at its host's first domain capabilities question
    (the hosts are probed in parallel: another host's question must not destroy it before it is read)."""
    real = module.ask_domcaps
    dom = fake_fleet[host].domains[vm]

    def destroy_then(session, *args, **kwargs):
        if session.target.spec == f"root@{host}":
            dom.running = False
        return real(session, *args, **kwargs)

    monkeypatch.setattr(module, "ask_domcaps", destroy_then)


def test_a_guest_destroyed_mid_audit_is_unknown_and_the_rest_goes_on(fake_fleet, monkeypatch) -> None:
    _stop_after_guests_were_read(monkeypatch, fake_fleet, "fa", "a1", audit_probe)
    inv = parse_inventory("groups:\n  g: [root@fa, root@fb, root@fc]\n", "fleet.yml")
    fleet = audit_probe.probe_fleet(inv, ProbeOptions(timeout=30, connect_timeout=5, tunnel=False, plan=probe_plan),
                                    jobs=3)
    assert all(h.ok and not h.target_error for h in fleet.values())
    a1 = fleet["root@fa"].guests["a1"]
    assert a1.error == "the guest 'a1' changed while it was being probed (it is not running any more: stopped or migrated away): run the audit again"
    others = [g for h in fleet.values() for g in h.guests.values() if g is not a1]
    assert len(others) == 6 and all(g.error is None for g in others), [(g.name, g.error) for g in others]


def test_guests_changed_names_each_way_a_guest_changes() -> None:
    class Conn:
        def __init__(self, doms): self.doms = doms
        def listAllDomains(self, flags=0):
            assert flags == 0  # every domain, running or not
            return self.doms

    u1, u2 = "11111111-0000-4000-8000-000000000001", "22222222-0000-4000-8000-000000000002"
    now = [FakeDomain("same", u1, True, "", 5), FakeDomain("stopped", u1, False, "", 6),
           FakeDomain("restarted", u1, True, "", 9), FakeDomain("other", u2, True, "", 7),
           FakeDomain("started", u1, True, "", 3)]
    before = {"same": (u1, 5, 1), "stopped": (u1, 6, 3), "restarted": (u1, 8, 1), "other": (u1, 7, 1),
              "started": (u1, -1, 5), "gone": (u1, 4, 1)}
    got = gather.guests_changed(Conn(now), before)
    assert set(got) == {"stopped", "restarted", "other", "started", "gone"}
    assert "(it is not running any more: stopped or migrated away)" in got["stopped"] and "(it was restarted)" in got["restarted"]
    assert "(it started)" in got["started"] and "other UUID" in got["other"]
    assert "disappeared while it was being probed" in got["gone"]


def test_a_guest_destroyed_mid_pair_probe_is_unknown(fake_fleet, monkeypatch) -> None:
    """probe_pair: the source checks at its end that the guest is the one whose facts it read."""
    from migcheck.probe import gather as g

    dom = fake_fleet["fa"].domains["a1"]
    real = g.gather_domcaps

    def destroy_then(*args, **kwargs):
        dom.running = False
        return real(*args, **kwargs)

    monkeypatch.setattr(g, "gather_domcaps", destroy_then)
    options = ProbeOptions(timeout=30, connect_timeout=5, tunnel=False, plan=probe_plan)
    with pytest.raises(session.ProbeError, match=r"'a1' changed while it was being probed \(it was running, "
                                                 r"now shut off\)"):
        probe_pair(parse_host("root@fa"), parse_host("root@fb"), "a1", options)
