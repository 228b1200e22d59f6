"""Generated fleets: HostProbe objects as migcheck.audit.probe would bring them back, no SSH.

Hosts follow a few *profiles* (CPU model, QEMU/libvirt versions, bridges, libvirt networks,
folders, NFS, TLS files, swtpm), as a real fleet does: a group (rack, cluster) has one to
three profiles. Hosts of one profile differ where real hosts differ: host UUID, hostname,
addresses, free memory, the domains defined on them. Guests come from a handful of templates
(default CPU, host-passthrough, a named CPU model; disks on NFS or local; bridge or libvirt
network interfaces; a serial log in a folder only some hosts have; VNC on a host address;
huge pages; shut off) with per-guest names, UUIDs, MACs, disk paths and memory sizes.

Answers to the guest-specific questions (domain capabilities, CPU comparisons, path stats)
follow from the profiles, as the hosts would give them.

``small_fleet`` also plants the corner cases the grouping must get right: two inventory
entries for one machine (same host UUID), cloned hosts sharing a UUID, a hostname that is
localhost, name collisions (a guest of the same name running, or defined with another UUID,
on some targets), targets short of memory, a host that could not be probed, one whose
answers timed out, one without SSH, a guest whose probe failed, malformed XML.
"""

from __future__ import annotations

import random
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from migcheck.audit.fleet import Answer, GuestProbe, HostProbe, image_wanted, source_raw
from migcheck.audit.probe import questions_for
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.probe.raw import (CpuCompareAnswer, NetworkInfo, PathStat, PeerDomain, PoolInfo, RawDomain, RawHost,
                                SecretInfo)

from tests.corpus.libvirt_corpus import CORPUS  # ../shared/corpus/libvirt beside the checkout
QEMU = "/usr/bin/qemu-system-x86_64"

CPU_FEATURES = ["ds", "acpi", "ss", "ht", "tm", "pbe", "dtes64", "monitor", "ds_cpl", "vmx", "smx", "est", "tm2",
                "xtpr", "pdcm", "dca", "osxsave", "f16c", "rdrand", "arat", "tsc_adjust", "cmt", "stibp", "ssbd",
                "xsaveopt", "pdpe1gb", "abm", "invtsc"]
CPU_GENERATIONS = ["Haswell-noTSX", "Broadwell-noTSX", "Skylake-Server", "Cascadelake-Server", "Icelake-Server"]


@dataclass
class Profile:
    name: str
    cpu_gen: int  # index into CPU_GENERATIONS: newer can host older
    qemu: int  # e.g. 7_002_000
    libvirt: int
    bridges: tuple[str, ...] = ("br0",)
    networks: tuple[str, ...] = ("default",)
    dirs: tuple[str, ...] = ()
    nfs: bool = True
    tls: bool = False
    swtpm: bool = False
    mem_total_kib: int = 256 * 1024 * 1024
    tsc_hz: int = 2_596_991_000
    caps_xml: str = ""  # with UUID_PLACEHOLDER for the host UUID

    @property
    def cpu_model(self) -> str:
        return CPU_GENERATIONS[self.cpu_gen]

    def machines(self) -> list[str]:
        major, minor = self.qemu // 1_000_000, self.qemu // 1000 % 1000
        out = []
        for ma in range(2, major + 1):
            for mi in range(0, 13):
                if ma == major and mi > minor:
                    break
                out += [f"pc-q35-{ma}.{mi}", f"pc-i440fx-{ma}.{mi}"]
        return out


UUID_PLACEHOLDER = "@@HOST-UUID@@"


def caps_xml(p: Profile) -> str:
    feats = "".join(f"      <feature name='{f}'/>\n" for f in CPU_FEATURES[: 14 + 3 * p.cpu_gen])
    machines = p.machines()
    mlines = "".join(f"      <machine maxCpus='288'>{m}</machine>\n" for m in machines)
    mlines += f"      <machine canonical='{machines[-2]}' maxCpus='288'>q35</machine>\n"
    mlines += f"      <machine canonical='{machines[-1]}' maxCpus='240'>pc</machine>\n"
    cells = "".join(
        f"        <cell id='{c}'>\n          <memory unit='KiB'>{p.mem_total_kib // 2}</memory>\n"
        f"          <pages unit='KiB' size='4'>{p.mem_total_kib // 8}</pages>\n"
        f"          <pages unit='KiB' size='2048'>0</pages>\n          <cpus num='8'>\n"
        + "".join(f"            <cpu id='{c * 8 + i}' socket_id='{c}' die_id='0' core_id='{i}' siblings='{c * 8 + i}'/>\n"
                  for i in range(8))
        + "          </cpus>\n        </cell>\n" for c in range(2))
    return f"""<capabilities>

  <host>
    <uuid>{UUID_PLACEHOLDER}</uuid>
    <cpu>
      <arch>x86_64</arch>
      <model>{p.cpu_model}</model>
      <vendor>Intel</vendor>
      <microcode version='{p.cpu_gen + 1}'/>
      <counter name='tsc' frequency='{p.tsc_hz}' scaling='no'/>
      <topology sockets='2' dies='1' cores='8' threads='1'/>
{feats}      <pages unit='KiB' size='4'/>
      <pages unit='KiB' size='2048'/>
      <pages unit='KiB' size='1048576'/>
    </cpu>
    <power_management>
      <suspend_mem/>
    </power_management>
    <iommu support='yes'/>
    <migration_features>
      <live/>
      <uri_transports>
        <uri_transport>tcp</uri_transport>
        <uri_transport>rdma</uri_transport>
      </uri_transports>
    </migration_features>
    <topology>
      <cells num='2'>
{cells}      </cells>
    </topology>
    <secmodel>
      <model>apparmor</model>
      <doi>0</doi>
    </secmodel>
    <secmodel>
      <model>dac</model>
      <doi>0</doi>
      <baselabel type='kvm'>+64055:+994</baselabel>
      <baselabel type='qemu'>+64055:+994</baselabel>
    </secmodel>
  </host>

  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>{QEMU}</emulator>
{mlines}      <domain type='qemu'/>
      <domain type='kvm'/>
    </arch>
    <features>
      <acpi default='on' toggle='yes'/>
      <apic default='on' toggle='no'/>
      <cpuselection/>
      <deviceboot/>
      <disksnapshot default='on' toggle='no'/>
    </features>
  </guest>

</capabilities>
"""


_DOMCAPS_CACHE: dict[tuple, str] = {}


def domcaps_text(p: Profile, machine: str) -> str:
    key = (p.qemu, p.cpu_gen, machine)
    if key not in _DOMCAPS_CACHE:
        src = CORPUS / "domaincapsdata" / ("qemu_8.2.0-q35.x86_64.xml" if p.qemu >= 8_000_000
                                           else "qemu_7.2.0-q35.x86_64.xml")
        text = src.read_text()
        text = text.replace("<machine>pc-q35-8.2</machine>", f"<machine>{machine}</machine>")
        text = text.replace("<machine>pc-q35-7.2</machine>", f"<machine>{machine}</machine>")
        text = text.replace("<model fallback='forbid'>EPYC-Rome</model>",
                            f"<model fallback='forbid'>{p.cpu_model}</model>", 1)
        text = text.replace("<vendor>AMD</vendor>", "<vendor>Intel</vendor>", 1)
        _DOMCAPS_CACHE[key] = text
    return _DOMCAPS_CACHE[key]


DEFAULT_PROFILES = [
    Profile("p-old", 0, 7_002_000, 9_000_000, bridges=("br0",), networks=("default",)),
    Profile("p-old-prod", 0, 7_002_000, 9_000_000, bridges=("br0", "br-prod"), networks=("default", "prod"),
            dirs=("/srv/logs",)),
    Profile("p-mid", 2, 7_002_000, 9_000_000, bridges=("br0", "br-prod"), networks=("default", "prod"),
            dirs=("/srv/logs",), tls=True),
    Profile("p-new", 3, 8_002_000, 10_000_000, bridges=("br0", "br-prod"), networks=("default", "prod"),
            dirs=("/srv/logs",), tls=True, swtpm=True),
    Profile("p-new-noNFS", 3, 8_002_000, 10_000_000, bridges=("br0",), networks=("default",), nfs=False,
            swtpm=True),
    Profile("p-top", 4, 8_002_000, 10_000_000, bridges=("br0", "br-prod", "br-stor"),
            networks=("default", "prod"), dirs=("/srv/logs",), tls=True, swtpm=True),
]
for _p in DEFAULT_PROFILES:
    _p.caps_xml = caps_xml(_p)


def _uuid(rng: random.Random) -> str:
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def _mac(rng: random.Random) -> str:
    return "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


@dataclass
class GuestSpec:
    name: str
    uuid: str
    template: str
    memory_mib: int
    running: bool = True
    disk: str | None = None
    bridge: str | None = None
    network: str | None = None
    serial_dir: str | None = None
    listen: str | None = None
    hugepages: bool = False
    tpm: bool = False
    mac: str = ""


TEMPLATES = [  # name, weight
    ("plain", 40), ("bridge", 15), ("network", 12), ("passthrough", 10), ("named-cpu", 10), ("serial-log", 5),
    ("local-disk", 4), ("tpm", 2), ("listen", 1), ("hugepages", 1),
]


def guest_xml(g: GuestSpec, profile: Profile, live: bool, dom_id: int | None = None) -> str:
    cpu = ""
    if g.template == "passthrough":
        cpu = "<cpu mode='host-passthrough' check='none' migratable='on'/>"
    elif g.template == "named-cpu":
        model = CPU_GENERATIONS[min(2, profile.cpu_gen)]
        cpu = (f"<cpu mode='custom' match='exact' check='partial'><model fallback='forbid'>{model}</model>"
               "<feature policy='require' name='pcid'/></cpu>")
    devices = [f"<emulator>{QEMU}</emulator>"]
    if g.disk:
        devices.append(f"<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>"
                       f"<source file='{g.disk}'/><target dev='vda' bus='virtio'/>"
                       + ("<alias name='virtio-disk0'/>" if live else "")
                       + "<address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>")
    if g.bridge:
        devices.append(f"<interface type='bridge'><mac address='{g.mac}'/><source bridge='{g.bridge}'/>"
                       + ("<target dev='vnet0'/>" if live else "")
                       + "<model type='virtio'/><address type='pci' domain='0x0000' bus='0x01' slot='0x00' "
                       "function='0x0'/></interface>")
    if g.network:
        devices.append(f"<interface type='network'><mac address='{g.mac}'/><source network='{g.network}'/>"
                       + ("<target dev='vnet1'/>" if live else "")
                       + "<model type='virtio'/><address type='pci' domain='0x0000' bus='0x02' slot='0x00' "
                       "function='0x0'/></interface>")
    if g.serial_dir:
        devices.append(f"<serial type='file'><source path='{g.serial_dir}/{g.name}.log'/>"
                       "<target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>"
                       f"<console type='file'><source path='{g.serial_dir}/{g.name}.log'/>"
                       "<target type='serial' port='0'/></console>")
    else:
        devices.append("<serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target>"
                       "</serial><console type='pty'><target type='serial' port='0'/></console>")
    devices.append("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
                   "<address type='virtio-serial' controller='0' bus='0' port='1'/></channel>")
    listen = g.listen or "127.0.0.1"
    devices.append(f"<graphics type='vnc' port='{5900 + (dom_id or 0) if live else -1}' autoport='yes' "
                   f"listen='{listen}'><listen type='address' address='{listen}'/></graphics>")
    if g.tpm:
        devices.append("<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>")
    devices.append("<video><model type='virtio' heads='1' primary='yes'/><address type='pci' domain='0x0000' "
                   "bus='0x00' slot='0x01' function='0x0'/></video>")
    devices.append("<memballoon model='virtio'><address type='pci' domain='0x0000' bus='0x05' slot='0x00' "
                   "function='0x0'/></memballoon>")
    backing = "<memoryBacking><hugepages/></memoryBacking>" if g.hugepages else ""
    machine = "pc-q35-7.2"
    mem = g.memory_mib * 1024
    return (f"<domain type='kvm'{f' id={chr(39)}{dom_id}{chr(39)}' if live and dom_id else ''}>"
            f"<name>{g.name}</name><uuid>{g.uuid}</uuid>"
            f"<memory unit='KiB'>{mem}</memory><currentMemory unit='KiB'>{mem}</currentMemory>{backing}"
            f"<vcpu placement='static'>2</vcpu><os><type arch='x86_64' machine='{machine}'>hvm</type>"
            "<boot dev='hd'/></os><features><acpi/><apic/></features>"
            f"{cpu}<clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>"
            "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
            f"<devices>{''.join(devices)}</devices>"
            + ("<seclabel type='dynamic' model='dac' relabel='yes'><label>+64055:+994</label>"
               "<imagelabel>+64055:+994</imagelabel></seclabel>" if live else "")
            + "</domain>")


QEMU_FLAGS = ["kvm", "mem-path", "drive-serial", "chardev", "enable-kvm", "monitor-json", "sdl", "smp-topology",
              "netdev", "rtc", "vhost-net", "no-hpet", "no-kvm-pit", "pci-configfd", "nodefconfig", "boot-menu",
              "fsdev", "name-process", "smbios-type", "vga-qxl", "spice", "vga-none", "boot-index", "hda-duplex",
              "drive-aio", "ccid-passthru", "chardev-spicevmc", "virtio-tx-alg", "pci-multifunction",
              "virtio-blk-pci.ioeventfd", "sga", "virtio-blk-pci.event_idx", "virtio-net-pci.event_idx",
              "cache-directsync", "piix3-usb-uhci", "piix4-usb-uhci", "usb-ehci", "ich9-usb-ehci1", "vt82c686b-usb-uhci",
              "pci-ohci", "usb-redir", "usb-hub", "no-shutdown", "cache-unsafe", "ich9-ahci", "no-acpi",
              "fsdev-readonly", "virtio-blk-pci.scsi", "drive-copy-on-read", "cpu-host", "fsdev-writeout",
              "drive-iotune", "system_wakeup", "scsi-disk.channel", "scsi-block", "transaction", "block-job-async",
              "scsi-cd", "ide-cd", "no-user-config", "hda-micro", "dump-guest-memory", "nec-usb-xhci"]


def status_xml(live_xml: str, pid: int) -> str:
    flags = "".join(f"    <flag name='{f}'/>\n" for f in QEMU_FLAGS)
    return (f"<domstatus state='running' reason='booted' pid='{pid}'>\n  <monitor path='/var/lib/libvirt/qemu/"
            f"domain-1/monitor.sock' type='unix'/>\n  <vcpus>\n    <vcpu id='0' pid='{pid + 1}'/>\n"
            f"    <vcpu id='1' pid='{pid + 2}'/>\n  </vcpus>\n  <qemuCaps>\n{flags}  </qemuCaps>\n"
            f"  <devices>\n    <device alias='virtio-disk0'/>\n    <device alias='net0'/>\n  </devices>\n"
            f"  <libDir path='/var/lib/libvirt/qemu/domain-1'/>\n{live_xml}\n</domstatus>\n")


def cmdline(g: GuestSpec) -> list[str]:
    cpu = {"passthrough": "host,migratable=on"}.get(g.template, "qemu64")
    if g.template == "named-cpu":
        cpu = "Skylake-Server,pcid=on"
    return [QEMU, "-name", f"guest={g.name},debug-threads=on", "-S", "-machine", "pc-q35-7.2,usb=off",
            "-accel", "kvm", "-cpu", cpu, "-m", str(g.memory_mib), "-smp", "2,sockets=2,cores=1,threads=1",
            "-uuid", g.uuid, "-no-user-config", "-nodefaults", "-device", "virtio-balloon-pci,id=balloon0"]


@dataclass
class HostSpec:
    name: str
    profile: Profile
    uuid: str
    ip: str
    mem_avail_kib: int
    hostname: str
    guests: list[GuestSpec] = field(default_factory=list)
    stale: list[PeerDomain] = field(default_factory=list)  # other domains defined here (collisions)
    no_ssh: bool = False
    error: str | None = None
    target_error: str | None = None
    broken_guest_xml: str | None = None  # a guest whose live XML is not well-formed
    failed_guest: str | None = None  # a guest whose probe failed


def make_guest(rng: random.Random, host: str, n: int, profile: Profile, template: str | None = None) -> GuestSpec:
    if template is None:
        template = rng.choices([t for t, _ in TEMPLATES], [w for _, w in TEMPLATES])[0]
    name = f"{host}-vm{n:03d}"
    g = GuestSpec(name=name, uuid=_uuid(rng), template=template, mac=_mac(rng),
                  memory_mib=rng.choice([1024, 2048, 4096, 8192, 16384, 65536]),
                  running=rng.random() > 0.08)
    local = template == "local-disk" or not profile.nfs
    g.disk = f"/var/lib/libvirt/images/{name}.qcow2" if local else f"/mnt/nfs/images/{name}.qcow2"
    if template == "bridge":
        g.bridge = rng.choice(profile.bridges)
    if template == "network":
        g.network = rng.choice(profile.networks)
    if template == "serial-log":
        g.serial_dir = "/srv/logs"
    if template == "tpm":
        g.tpm = True
    if template == "hugepages":
        g.hugepages = True
    return g


def host_probe(h: HostSpec, cpu_answers: dict | None = None) -> HostProbe:
    """The HostProbe for phase 1 (host facts, guests, source answers); target answers come later."""
    p = h.profile
    spec = f"root@{h.name}"
    hp = HostProbe(name=h.name, spec=spec, uri=f"qemu+ssh://root@{h.name}/system?no_tty=1")
    if h.error:
        hp.error = h.error
        return hp
    files = {}
    if not h.no_ssh:
        files = {
            "/proc/meminfo": (f"MemTotal:       {p.mem_total_kib} kB\nMemFree:        {h.mem_avail_kib - 4096} kB\n"
                              f"MemAvailable:   {h.mem_avail_kib} kB\nHugepagesize:       2048 kB\n"),
            "/proc/self/mountinfo": ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                                     + (f"40 22 0:40 / /mnt/nfs rw - nfs4 filer:/export rw,addr={h.ip}\n" if p.nfs else "")
                                     + ("50 22 0:50 / /dev/hugepages rw - hugetlbfs hugetlbfs rw\n"
                                        if p.cpu_gen >= 3 else "")),
            "/sys/devices/system/cpu/online": "0-15\n",
            "/sys/devices/system/node/online": "0-1\n",
            "/proc/net/fib_trie": f"Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- {h.ip}\n        /32 host LOCAL\n",
            "/proc/net/if_inet6": "",
            "/etc/libvirt/qemu.conf": "# defaults\n",
            "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages": "512\n" if p.cpu_gen >= 3 else "0\n",
        }
    e_files = {} if not h.no_ssh else {k: "SSH: Authentication failed (publickey)" for k in
                                       ("host_files", "meminfo", "mountinfo", "cpu_online")}
    peers = [PeerDomain(name=g.name, uuid=g.uuid, active=g.running, persistent=not g.running) for g in h.guests]
    peers += h.stale
    hp.base = RawHost(
        spec=spec, uri=hp.uri, hostname=h.hostname, libvirt_version=p.libvirt, qemu_version=p.qemu,
        capabilities_xml=p.caps_xml.replace(UUID_PLACEHOLDER, h.uuid), peers=peers, files=files,
        networks=[NetworkInfo(name=n, active=True, bridge=f"virbr-{n}") for n in p.networks],
        nwfilters=["clean-traffic", "no-arp-spoofing"], secrets=[],
        pools=[PoolInfo(name="default", active=True, type="dir", target_path="/var/lib/libvirt/images",
                        available=h.mem_avail_kib * 100)],
        free_memory=h.mem_avail_kib * 1024,
    )
    hp.e_host = {"ssh": "SSH: Authentication failed (publickey)"} if h.no_ssh else {}
    hp.e_files = e_files
    for i, g in enumerate(h.guests):
        gp = GuestProbe(name=g.name)
        if g.name == h.failed_guest:
            gp.error = f"the guest {g.name!r} changed while it was being probed (it was running, now shut off): " \
                       "run migcheck again"
            hp.guests[g.name] = gp
            continue
        dom_id = i + 1 if g.running else None
        live = guest_xml(g, p, live=g.running, dom_id=dom_id)
        if g.name == h.broken_guest_xml:
            live = live.replace("</devices>", "<devices>")  # not well-formed
        inactive = guest_xml(g, p, live=False)
        rd = RawDomain(name=g.name, uuid=g.uuid, state=1 if g.running else 5, state_reason=1,
                       persistent=True, live_xml=live, inactive_xml=inactive, snapshot_count=0)
        errors: dict[str, str] = {}
        if g.running:
            rd.job_type = 0
            if h.no_ssh:
                for fact in ("cmdline", "status_xml", "qemu_log"):
                    errors[fact] = "SSH: Authentication failed (publickey)"
            else:
                rd.cmdline = cmdline(g)
                rd.exe_link = QEMU
                rd.status_xml = status_xml(live, 4000 + i)
                rd.log_head = (f"2024-05-01 10:00:00.000+0000: starting up libvirt version: "
                               f"{p.libvirt // 1_000_000}.{p.libvirt // 1000 % 1000}.0, qemu version: "
                               f"{p.qemu // 1_000_000}.{p.qemu // 1000 % 1000}.0, kernel: 6.1.0\n")
        gp.raw, gp.errors = rd, errors
        try:
            gp.dom = parse_domain_xml(live)
        except Exception as exc:  # noqa: BLE001 - as the probe reports it
            gp.error = f"probe failed: {type(exc).__name__}: {exc}"
            gp.dom = None
        hp.guests[g.name] = gp
    for gp in hp.guests.values():
        if gp.dom is not None and gp.key not in hp.domcaps:
            hp.domcaps[gp.key] = Answer(value=domcaps_text(p, gp.dom.machine), errors={})
    conf = files.get("/etc/libvirt/qemu.conf")
    for gp in hp.guests.values():
        for xml in gp.source_cpu_defs():
            hp.cpu.setdefault((gp.dom.arch or "", gp.dom.virt_type or "", xml, ""), _cpu_answer(p, xml))
        for path in gp.source_paths(conf):
            hp.paths.setdefault(path, _path_answer(h, path, source=True))
        for path in gp.disk_files():
            a = hp.paths.get(path)
            if a is not None and image_wanted(a.value):
                hp.images.setdefault(path, _image_answer(path))
    for gp in hp.guests.values():
        if gp.dom is not None:
            gp.cpu_defs = _cpu_defs(hp, gp)
    return hp


_CPU_DEFS_CACHE: dict[tuple, list[str]] = {}


def _cpu_defs(hp: HostProbe, gp: GuestProbe) -> list[str]:
    from migcheck.checks.registry import probe_plan

    dc = hp.domcaps.get(gp.key)
    key = (dc.value if dc else None, gp.dom.cpu.mode, gp.dom.cpu.xml, gp.dom.cpu.model)
    if key not in _CPU_DEFS_CACHE:
        _CPU_DEFS_CACHE[key] = probe_plan().target_cpus(gp.dom, source_raw(hp, gp).domcaps_xml)
    return _CPU_DEFS_CACHE[key]


def _path_answer(h: HostSpec, path: str, source: bool = False) -> Answer:
    p = h.profile
    if h.no_ssh:
        return Answer(None, {"paths": "SSH: Authentication failed (publickey)"})
    exists, is_dir, size = False, False, None
    if path == QEMU:
        exists, size = True, 18_874_368 if p.qemu < 8_000_000 else 21_102_592
    elif path.startswith("/mnt/nfs/"):
        exists, size = p.nfs, 10 * 1024 ** 3
    elif path.startswith("/var/lib/libvirt/images/"):
        exists, size = source, 20 * 1024 ** 3
    elif path.startswith("/sys/class/net/"):
        exists, is_dir = path.rsplit("/", 1)[1] in p.bridges, True
    elif path.startswith("/etc/pki/qemu/"):
        exists = p.tls
    elif path == "/usr/bin/swtpm":
        exists, size = p.swtpm, 60_000
    elif path in p.dirs or any(path == d for d in p.dirs):
        exists, is_dir = True, True
    if not exists:
        return Answer(PathStat(path=path, exists=False), {})
    return Answer(PathStat(path=path, exists=True, is_dir=is_dir, size=size, mtime=1_700_000_000.0), {})


def _image_answer(path: str) -> Answer:
    """A qcow2 header (v3, 10 GiB), as gather_image_headers brings it back (hex)."""
    header = bytes.fromhex("514649fb00000003") + bytes(16) + (10 * 1024 ** 3).to_bytes(8, "big") + bytes(40)
    return Answer(value=header.hex(), errors={})


def _cpu_answer(target: Profile, xml: str) -> Answer:
    """The target's compareHypervisorCPU: a CPU of the target's generation or older is fine."""
    gen = next((i for i, m in enumerate(CPU_GENERATIONS) if f">{m}<" in xml), 0)
    if gen <= target.cpu_gen:
        return Answer(CpuCompareAnswer(result=2), {})
    return Answer(CpuCompareAnswer(result=0, message=f"the CPU is incompatible with host CPU: Host CPU does not "
                                                      f"provide required features: avx512f, avx512dq"), {})


def answer_questions(hp: HostProbe, h: HostSpec, sources: list[HostProbe]) -> None:
    """Phase 2 for one generated target."""
    if hp.error or h.target_error:
        hp.target_error = h.target_error
        return
    q = questions_for((g for s in sources for g in s.guests.values()), hp.base.files.get("/etc/libvirt/qemu.conf"))
    for key, g in q.domcaps.items():
        if key not in hp.domcaps:
            hp.domcaps[key] = Answer(value=domcaps_text(h.profile, g.dom.machine), errors={})
    for k in q.cpu:
        if k not in hp.cpu:
            hp.cpu[k] = _cpu_answer(h.profile, k[2])
    for path in q.paths:
        if path not in hp.paths:
            hp.paths[path] = _path_answer(h, path)
    for path in q.images:
        a = hp.paths.get(path)
        if path not in hp.images and a is not None and image_wanted(a.value):
            hp.images[path] = _image_answer(path)


@dataclass
class Fleet:
    hosts: dict[str, HostProbe]
    groups: dict[str, list[str]]
    specs: dict[str, HostSpec]

    def candidates(self) -> dict[str, list[str]]:
        out: dict[str, dict[str, None]] = {h: {} for h in self.hosts}
        for members in self.groups.values():
            for h in members:
                for t in members:
                    if t != h:
                        out[h][t] = None
        return {h: list(ts) for h, ts in out.items()}


def build_group(rng: random.Random, gname: str, n_hosts: int, guests_per_host: int,
                profiles: list[Profile], host_offset: int = 0) -> list[HostSpec]:
    shared = [p for p in profiles if p.nfs]
    if rng.random() < 0.1 or not shared:  # a local-storage cluster
        chosen = [p for p in profiles if not p.nfs][:1] or profiles[:1]
    else:
        # a cluster is mostly one hardware and software profile; two or three during an upgrade
        chosen = rng.sample(shared, k=min(len(shared), rng.choices([1, 2, 3], [70, 25, 5])[0]))
    out = []
    for i in range(n_hosts):
        p = chosen[i * len(chosen) // n_hosts]
        name = f"{gname}-h{i:02d}"
        h = HostSpec(name=name, profile=p, uuid=_uuid(rng), ip=f"10.{(host_offset + i) // 250 % 250}.{(host_offset + i) % 250}.{i + 10}",
                     mem_avail_kib=rng.randrange(8, 200) * 1024 * 1024, hostname=f"{name}.example.net")
        h.guests = [make_guest(rng, name, n, p) for n in range(guests_per_host)]
        out.append(h)
    return out


def finish(specs: list[HostSpec], groups: dict[str, list[str]]) -> Fleet:
    hosts = {h.name: host_probe(h) for h in specs}
    by_name = {h.name: h for h in specs}
    fleet = Fleet(hosts=hosts, groups=groups, specs=by_name)
    cands = fleet.candidates()
    sources_of: dict[str, list[str]] = {h: [] for h in hosts}
    for s, ts in cands.items():
        for t in ts:
            sources_of[t].append(s)
    for name, hp in hosts.items():
        answer_questions(hp, by_name[name], [hosts[s] for s in sources_of[name] if hosts[s].ok])
    return fleet


def small_fleet(seed: int = 1, groups: int = 3, hosts_per_group: int = 5, guests_per_host: int = 4) -> Fleet:
    """A small fleet with every corner case planted (see the module docstring)."""
    rng = random.Random(seed)
    specs: list[HostSpec] = []
    group_members: dict[str, list[str]] = {}
    for gi in range(groups):
        hs = build_group(rng, f"g{gi}", hosts_per_group, guests_per_host, DEFAULT_PROFILES, gi * 100)
        for n, h in enumerate(hs):  # every template somewhere
            h.guests.append(make_guest(rng, h.name, 90 + n, h.profile, TEMPLATES[(gi * 7 + n) % len(TEMPLATES)][0]))
        specs += hs
        group_members[f"g{gi}"] = [h.name for h in hs]
    g0 = [h for h in specs if h.name.startswith("g0-")]
    g1 = [h for h in specs if h.name.startswith("g1-")]
    # cloned hosts: same host UUID (libvirt refuses 'migrate to the same host')
    g0[1].uuid = g0[0].uuid
    # a localhost hostname
    g0[2].hostname = "localhost.localdomain"
    # name collisions: a guest of g0-h00 running on g0-h03, another defined with another UUID on g0-h04
    v = g0[0].guests[0]
    g0[3].stale.append(PeerDomain(name=v.name, uuid=v.uuid, active=True, persistent=True))
    g0[4].stale.append(PeerDomain(name=v.name, uuid=_uuid(rng), active=False, persistent=True))
    g0[4].stale.append(PeerDomain(name="unrelated", uuid=g0[0].guests[1].uuid, active=False, persistent=True))
    # memory: a target nearly full, a big guest
    g0[3].mem_avail_kib = 512 * 1024
    g0[0].guests[2].memory_mib = 300 * 1024  # more than any host has
    # a guest listening on its host's address, one with huge pages, one with TPM, on g1
    g1[0].guests.append(GuestSpec(name="g1-h00-vnc", uuid=_uuid(rng), template="listen", memory_mib=1024,
                                  disk="/mnt/nfs/images/g1-h00-vnc.qcow2", listen=g1[0].ip, mac=_mac(rng)))
    g1[1].ip = g1[0].ip  # ... an address another host has too
    g1[0].guests.append(GuestSpec(name="g1-h00-huge", uuid=_uuid(rng), template="hugepages", memory_mib=512,
                                  disk="/mnt/nfs/images/g1-h00-huge.qcow2", hugepages=True, mac=_mac(rng)))
    # an HTML-hostile guest name
    g1[2].guests.append(GuestSpec(name="<script>alert(1)</script>", uuid=_uuid(rng), template="plain",
                                  memory_mib=512, disk="/mnt/nfs/images/x.qcow2", mac=_mac(rng)))
    # failures: a host not probed, a host whose answers timed out, a host without SSH,
    # a guest whose probe failed, a guest whose live XML is malformed
    g1[3].error = "libvirt: Cannot recv data: ssh: connect to host g1-h03 port 22: Connection refused"
    g1[4].target_error = "no complete answer within 120s, still checking 12 path(s) (use --timeout to allow more)"
    specs_g2 = [h for h in specs if h.name.startswith("g2-")]
    if specs_g2:
        specs_g2[0].no_ssh = True
        specs_g2[1].failed_guest = specs_g2[1].guests[0].name
        specs_g2[1].broken_guest_xml = specs_g2[1].guests[1].name
    # a host in two groups
    if groups > 2:
        group_members["g2"].append(g0[0].name)
    return finish(specs, group_members)


def big_fleet_groups(seed: int, n_hosts: int, n_guests: int, group_size: int, only=None):
    """Yield (group name, Fleet) one group at a time: a fleet of n_hosts/n_guests never held at once.

    Each group has its own seed, so ``only(group index)`` can pick groups without generating the others.
    """
    per_host = max(1, n_guests // n_hosts)
    n_groups = max(1, n_hosts // group_size)
    for gi in range(n_groups):
        if only is not None and not only(gi):
            continue
        rng = random.Random(seed * 1_000_003 + gi)
        hs = build_group(rng, f"r{gi:04d}", group_size, per_host, DEFAULT_PROFILES, gi * group_size)
        yield f"r{gi:04d}", finish(hs, {f"r{gi:04d}": [h.name for h in hs]})
