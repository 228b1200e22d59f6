"""Generated fleets from real data: HostProbe objects built from libvirt's own test corpus, no SSH.

Where fleetgen.py writes its guests and hosts from a few templates, this module draws them from
../shared/corpus/libvirt (tests/corpus/libvirt_corpus.py finds it):

* guests: the corpus's x86_64 KVM domains (qemuxmlconfdata/*.x86_64-latest.xml that migcheck's
  parser accepts), each with its own name, UUID and MACs, its machine type pinned to a QEMU
  version its source host runs (older or equal), its QEMU command line from the matching .args
  file; about 9 in 10 running (status XML and log as the probe reads them), the rest shut off;
* host profiles: one CPU from cputestdata (*-host.xml: model, vendor, signature, features) and
  one QEMU version whose domain capabilities the corpus has (domaincapsdata/qemu_V[-q35].x86_64.xml,
  host-model rewritten to that CPU), in capabilities built on capabilityschemadata/caps-qemu-kvm.xml
  (its host part, with the CPU replaced and the machine types of that QEMU);
* per-host differences, as a real fleet drifts: the bridges and libvirt networks (the ones the
  corpus guests use, minus one now and then), storage pools, qemu.conf (four variants by cluster,
  a few hosts drifted), shared storage or not, TLS files, free memory, host UUID and name.

Answers to the guest questions follow from the profile as the host would give them: domain
capabilities of its QEMU (an error for a machine type it does not have), CPU comparisons by model
generation and vendor, path stats by shared storage, bridges and folders.
"""

from __future__ import annotations

import functools
import random
import re
import uuid as uuidlib
from dataclasses import dataclass, field

from migcheck.audit.fleet import Answer, GuestProbe, HostProbe, image_wanted
from migcheck.audit.probe import questions_for
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.probe.raw import (CpuCompareAnswer, NetworkInfo, PathStat, PeerDomain, PoolInfo, RawDomain, RawHost,
                                cpu_key)
from tests.corpus.libvirt_corpus import ARGS_PAIRS, CORPUS, args_file_argv
from tests.unit.fleetgen import Fleet, _image_answer, status_xml

QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_VERSIONS = {"6.2.0": 8_000_000, "7.2.0": 9_000_000, "8.0.0": 9_005_000, "8.1.0": 9_007_000,
                 "8.2.0": 10_000_000}  # QEMU -> the libvirt shipped beside it
CPUS = ["Xeon-E5-2650-v4", "Xeon-Gold-6148", "Xeon-Platinum-8268", "Cooperlake", "Ice-Lake-Server",
        "EPYC-7601-32-Core", "EPYC-7502-32-Core"]
# CPU models by generation: a model runs where the host's model is the same vendor and as new or newer
INTEL = ["Conroe", "Penryn", "Nehalem", "Westmere", "SandyBridge", "IvyBridge", "Haswell", "Haswell-noTSX",
         "Broadwell", "Broadwell-noTSX", "Skylake-Client", "Skylake-Server", "Cascadelake-Server", "Cooperlake",
         "Icelake-Server"]
AMD = ["Opteron_G1", "Opteron_G2", "Opteron_G3", "Opteron_G4", "Opteron_G5", "EPYC", "EPYC-Rome", "EPYC-Milan"]
ANYWHERE = {"qemu64", "kvm64", "qemu32", "kvm32", "486", "pentium", "pentium2", "pentium3"}
QEMU_CONFS = ["# defaults\n", 'migrate_tls_x509_cert_dir = "/etc/pki/libvirt-migrate"\n',
              'vnc_listen = "0.0.0.0"\nspice_listen = "0.0.0.0"\n', 'migration_port_min = 49152\n'
              'migration_port_max = 49215\n']
DRIFTED_CONF = 'migrate_tls_force = 1\n'


# ------------------------------------------------------------------ real data


@dataclass
class CpuData:
    name: str  # cputestdata file stem
    model: str
    vendor: str
    signature: str  # the <signature .../> element, or ""
    features: tuple[str, ...]

    def rank(self, model: str) -> int | None:
        table = INTEL if self.vendor == "Intel" else AMD
        return table.index(model) if model in table else None


@functools.cache
def cpus() -> list[CpuData]:
    out = []
    for name in CPUS:
        text = (CORPUS / "cputestdata" / f"x86_64-cpuid-{name}-host.xml").read_text()
        sig = re.search(r"<signature[^>]*/>", text)
        out.append(CpuData(name=name, model=re.search(r"<model>([^<]+)</model>", text).group(1),
                           vendor=re.search(r"<vendor>([^<]+)</vendor>", text).group(1),
                           signature=sig.group(0) if sig else "",
                           features=tuple(re.findall(r"<feature name='([^']+)'/>", text))))
    return out


@dataclass
class Template:
    """One corpus domain: its XML with the name and UUID as placeholders, its command line."""

    source: str  # corpus file name
    xml: str  # with @@NAME@@ and @@UUID@@
    family: str  # q35 | i440fx
    argv: list[str]
    bridges: tuple[str, ...]
    networks: tuple[str, ...]


NAME, UUID = "@@NAME@@", "@@UUID@@"


@functools.cache
def templates() -> list[Template]:
    """The corpus's x86_64 KVM domains that migcheck's parser accepts, made into templates."""
    out = []
    for xml_path, args_path in ARGS_PAIRS:
        text = xml_path.read_text()
        try:
            dom = parse_domain_xml(text)
        except Exception:  # noqa: BLE001 - the parser refuses it: not a guest a host would have
            continue
        if dom.arch != "x86_64" or dom.virt_type != "kvm" or not dom.name or not dom.uuid:
            continue
        family = "q35" if "q35" in (dom.machine or "") else "i440fx"
        t = text.replace(f"<name>{dom.name}</name>", f"<name>{NAME}</name>", 1)
        t = t.replace(f"<uuid>{dom.uuid}</uuid>", f"<uuid>{UUID}</uuid>", 1)
        t = re.sub(r"(<type arch='x86_64' machine=')[^']*(')", r"\g<1>@@MACHINE@@\g<2>", t, count=1)
        if NAME not in t or UUID not in t or "@@MACHINE@@" not in t:
            continue
        t = re.sub(r"<emulator>[^<]*</emulator>", f"<emulator>{QEMU}</emulator>", t)
        argv = args_file_argv(args_path.read_text())
        argv = [a.replace(dom.name, NAME).replace(dom.uuid, UUID) for a in argv]
        bridges = tuple(sorted({i.bridge for i in dom.interfaces if i.type == "bridge" and i.bridge}))
        networks = tuple(sorted({i.network for i in dom.interfaces if i.type == "network" and i.network}))
        try:  # the template must still parse with a real name, UUID and machine
            parse_domain_xml(_fill(t, "check-name", str(uuidlib.uuid4()), "pc-q35-8.2", "00:00:01"))
        except Exception:  # noqa: BLE001
            continue
        out.append(Template(xml_path.name, t, family, argv, bridges, networks))
    return out


_MAC = re.compile(r"(<mac address=')([0-9a-fA-F:]{17})(')")


def _fill(t: str, name: str, uuid: str, machine: str, mac_tail: str) -> str:
    text = t.replace(NAME, name).replace(UUID, uuid).replace("@@MACHINE@@", machine)
    return _MAC.sub(lambda m: m.group(1) + m.group(2)[:9] + mac_tail + m.group(3), text)


def machine_of(family: str, qemu: str) -> str:
    v = qemu.rsplit(".", 1)[0]
    return f"pc-q35-{v}" if family == "q35" else f"pc-i440fx-{v}"


def machines(qemu: str) -> list[str]:
    major, minor = (int(x) for x in qemu.split(".")[:2])
    out = []
    for ma in range(2, major + 1):
        for mi in range(0, 13):
            if ma == major and mi > minor:
                break
            out += [f"pc-i440fx-{ma}.{mi}", f"pc-q35-{ma}.{mi}"]
    return out


@functools.cache
def _caps_host_part() -> str:
    text = (CORPUS / "capabilityschemadata" / "caps-qemu-kvm.xml").read_text()
    return text[text.index("<host>"): text.index("</host>") + len("</host>")]


@dataclass
class Profile:
    name: str
    cpu: CpuData
    qemu: str
    caps_xml: str = ""  # with @@HOST-UUID@@
    machines: frozenset[str] = frozenset()

    @property
    def qemu_number(self) -> int:
        ma, mi, pa = (int(x) for x in self.qemu.split("."))
        return ma * 1_000_000 + mi * 1000 + pa

    @property
    def libvirt_number(self) -> int:
        return QEMU_VERSIONS[self.qemu]


def make_profile(cpu: CpuData, qemu: str) -> Profile:
    p = Profile(name=f"{cpu.name}/qemu-{qemu}", cpu=cpu, qemu=qemu)
    host = _caps_host_part()
    feats = "".join(f"      <feature name='{f}'/>\n" for f in cpu.features)
    host = re.sub(r"<uuid>[^<]*</uuid>", "<uuid>@@HOST-UUID@@</uuid>", host, count=1)
    host = re.sub(r"<model>[^<]*</model>\s*<vendor>[^<]*</vendor>",
                  f"<model>{cpu.model}</model>\n      <vendor>{cpu.vendor}</vendor>"
                  + (f"\n      {cpu.signature}" if cpu.signature else ""), host, count=1)
    host = re.sub(r"(\s*<feature name='[^']+'/>)+\n", "\n" + feats, host, count=1)
    ms = machines(qemu)
    mlines = "".join(f"      <machine maxCpus='288'>{m}</machine>\n" for m in ms)
    mlines += (f"      <machine canonical='{ms[-1]}' maxCpus='288'>q35</machine>\n"
               f"      <machine canonical='{ms[-2]}' maxCpus='240'>pc</machine>\n")
    p.caps_xml = (f"<capabilities>\n\n  {host}\n\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n"
                  f"      <wordsize>64</wordsize>\n      <emulator>{QEMU}</emulator>\n{mlines}"
                  "      <domain type='qemu'/>\n      <domain type='kvm'/>\n    </arch>\n    <features>\n"
                  "      <acpi default='on' toggle='yes'/>\n      <apic default='on' toggle='no'/>\n"
                  "      <cpuselection/>\n      <deviceboot/>\n      <disksnapshot default='on' toggle='no'/>\n"
                  "    </features>\n  </guest>\n\n</capabilities>\n")
    p.machines = frozenset(ms)
    return p


@functools.cache
def _domcaps_file(qemu: str, family: str) -> str:
    name = f"qemu_{qemu}-q35.x86_64.xml" if family == "q35" else f"qemu_{qemu}.x86_64.xml"
    return (CORPUS / "domaincapsdata" / name).read_text()


_DOMCAPS: dict[tuple[str, str, str], str] = {}
_HOST_MODEL = re.compile(r"(<mode name='host-model' supported='yes'>).*?(</mode>)", re.S)


def domcaps_text(p: Profile, machine: str) -> str:
    """The corpus's domain capabilities of the profile's QEMU, for this machine, host-model = its CPU."""
    key = (p.name, machine)
    hit = _DOMCAPS.get(key)
    if hit is None:
        family = "q35" if "q35" in machine else "i440fx"
        text = _domcaps_file(p.qemu, family)
        text = re.sub(r"<machine>[^<]*</machine>", f"<machine>{machine}</machine>", text, count=1)
        hm = (f"\\1\n      <model fallback='forbid'>{p.cpu.model}</model>\n      <vendor>{p.cpu.vendor}</vendor>\n"
              + "".join(f"      <feature policy='require' name='{f}'/>\n" for f in p.cpu.features) + "    \\2")
        text = _HOST_MODEL.sub(hm, text, count=1)
        hit = _DOMCAPS[key] = text
    return hit


# ---------------------------------------------------------------- the hosts


@dataclass
class HostSpec:
    name: str
    profile: Profile
    uuid: str
    ip: str
    mem_avail_kib: int
    bridges: tuple[str, ...]
    networks: tuple[str, ...]
    pools: tuple[str, ...]
    qemu_conf: str
    shared_storage: bool
    tls: bool
    guests: list[tuple[Template, str, str, str, bool, str]] = field(default_factory=list)  # t, name, uuid, machine, running, mac


MEM_TOTAL_KIB = 512 * 1024 * 1024


def _uuid(rng: random.Random) -> str:
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


@functools.cache
def _all_bridges_networks() -> tuple[tuple[str, ...], tuple[str, ...]]:
    bs = sorted({b for t in templates() for b in t.bridges})
    ns = sorted({n for t in templates() for n in t.networks})
    return tuple(bs), tuple(ns)


@functools.cache
def profiles() -> list[Profile]:
    return [make_profile(c, q) for c in cpus() for q in QEMU_VERSIONS]


def build_group(rng: random.Random, gname: str, n_hosts: int, guests_per_host: int, host_offset: int = 0
                ) -> list[HostSpec]:
    """A cluster: one to three profiles (an upgrade under way), one qemu.conf, shared storage or not."""
    ps = profiles()
    k = rng.choices([1, 2, 3], [70, 25, 5])[0]
    base = rng.randrange(len(cpus()))
    chosen = [ps[((base + i) % len(cpus())) * len(QEMU_VERSIONS) + rng.randrange(len(QEMU_VERSIONS))]
              for i in range(k)]
    conf = rng.choice(QEMU_CONFS)
    shared = rng.random() > 0.15
    tls = rng.random() > 0.5
    all_b, all_n = _all_bridges_networks()
    out = []
    for i in range(n_hosts):
        p = chosen[i * k // n_hosts]
        bridges, networks = list(all_b), list(all_n)
        if bridges and rng.random() < 0.05:  # drift: a bridge missing here
            bridges.remove(rng.choice(bridges))
        if networks and rng.random() < 0.05:
            networks.remove(rng.choice(networks))
        pools = ("default", "images") + (("nfs",) if shared else ()) + (("scratch",) if rng.random() < 0.1 else ())
        h = HostSpec(name=f"{gname}-h{i:02d}", profile=p, uuid=_uuid(rng),
                     ip=f"10.{(host_offset + i) // 250 % 250}.{(host_offset + i) % 250}.{i + 10}",
                     mem_avail_kib=rng.randrange(8, 400) * 1024 * 1024, bridges=tuple(bridges),
                     networks=tuple(networks), pools=pools,
                     qemu_conf=DRIFTED_CONF if rng.random() < 0.01 else conf, shared_storage=shared, tls=tls)
        older = [q for q in QEMU_VERSIONS if tuple(map(int, q.split("."))) <= tuple(map(int, p.qemu.split(".")))]
        ts = templates()
        for n in range(guests_per_host):
            t = ts[rng.randrange(len(ts))]
            h.guests.append((t, f"{h.name}-vm{n:03d}", _uuid(rng), machine_of(t.family, rng.choice(older)),
                             rng.random() > 0.1, f"{rng.randrange(256):02x}:{rng.randrange(256):02x}:"
                                                 f"{rng.randrange(256):02x}"))
        out.append(h)
    return out


def _path_answer(h: HostSpec, path: str, source: bool) -> Answer:
    exists, is_dir, size = source, False, 10 * 1024 ** 3
    if path == QEMU:
        exists, size = True, 18_874_368
    elif path.startswith("/sys/class/net/"):
        exists, is_dir, size = path.rsplit("/", 1)[1] in h.bridges, True, None
    elif path.startswith(("/etc/pki/qemu/", "/etc/pki/libvirt-migrate/")):
        exists, size = h.tls, 2048
    elif path.startswith("/usr/share/"):  # firmware, swtpm: from the distribution
        exists, size = True, 4 * 1024 * 1024
    elif not source:
        exists = h.shared_storage and not path.startswith(("/var/lib/libvirt/images/", "/tmp/"))
    if not exists:
        return Answer(PathStat(path=path, exists=False), {})
    return Answer(PathStat(path=path, exists=True, is_dir=is_dir, size=size, mtime=1_700_000_000.0), {})


_CPU_MODEL = re.compile(r"<model[^>]*>([^<]+)</model>")
_CPU_VENDOR = re.compile(r"<vendor>([^<]+)</vendor>")
_CPU_REQUIRE = re.compile(r"<feature policy='(?:require|force)' name='([^']+)'/>")


def _cpu_answer(target: Profile, xml: str) -> Answer:
    """compareHypervisorCPU as the target would answer, by model generation, vendor and required features."""
    m = _CPU_MODEL.search(xml)
    model = m.group(1) if m else ""
    vendor = _CPU_VENDOR.search(xml)
    cpu = target.cpu
    ok = True
    if model not in ANYWHERE:
        if vendor is not None and vendor.group(1) != cpu.vendor:
            ok = False
        else:
            mine, theirs = cpu.rank(cpu.model), cpu.rank(model)
            ok = theirs is not None and mine is not None and theirs <= mine
    missing = []
    if ok and "mode='host-model'" not in xml:
        have = set(cpu.features)
        missing = [f for f in _CPU_REQUIRE.findall(xml) if f not in have and f in _KNOWN_HOST_FEATURES()]
        ok = not missing
    if ok:
        return Answer(CpuCompareAnswer(result=2), {})
    why = ", ".join(missing) if missing else f"{model} is not runnable on {cpu.model}"
    return Answer(CpuCompareAnswer(result=0, message=f"the CPU is incompatible with host CPU: Host CPU does not "
                                                      f"provide required features: {why}"), {})


@functools.cache
def _KNOWN_HOST_FEATURES() -> frozenset[str]:  # noqa: N802 - a constant, computed once
    return frozenset(f for c in cpus() for f in c.features)


def _domcaps_answer(p: Profile, g: GuestProbe) -> Answer:
    machine = g.dom.machine
    if machine not in p.machines:
        return Answer(None, {f"domcaps:{g.key}": f"libvirt: invalid argument: the machine '{machine}' is not "
                                                 f"supported by emulator '{QEMU}'"})
    return Answer(domcaps_text(p, machine), {})


def host_probe(h: HostSpec) -> HostProbe:
    p = h.profile
    spec = f"root@{h.name}"
    hp = HostProbe(name=h.name, spec=spec, uri=f"qemu+ssh://root@{h.name}/system?no_tty=1")
    files = {
        "/proc/meminfo": (f"MemTotal:       {MEM_TOTAL_KIB} kB\nMemFree:        {h.mem_avail_kib - 4096} kB\n"
                          f"MemAvailable:   {h.mem_avail_kib} kB\nHugepagesize:       2048 kB\n"),
        "/proc/self/mountinfo": ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                                 + (f"40 22 0:40 / /srv/shared rw - nfs4 filer:/export rw,addr={h.ip}\n"
                                    if h.shared_storage else "")),
        "/sys/devices/system/cpu/online": "0-15\n",
        "/sys/devices/system/node/online": "0-1\n",
        "/proc/net/fib_trie": f"Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- {h.ip}\n        /32 host LOCAL\n",
        "/proc/net/if_inet6": "",
        "/etc/libvirt/qemu.conf": h.qemu_conf,
        "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages": "0\n",
    }
    peers = [PeerDomain(name=name, uuid=uuid, active=running, persistent=True)
             for _, name, uuid, _, running, _ in h.guests]
    hp.base = RawHost(
        spec=spec, uri=hp.uri, hostname=f"{h.name}.example.net", libvirt_version=p.libvirt_number,
        qemu_version=p.qemu_number, capabilities_xml=p.caps_xml.replace("@@HOST-UUID@@", h.uuid), peers=peers,
        files=files, networks=[NetworkInfo(name=n, active=True, bridge=f"virbr-{n}"[:15]) for n in h.networks],
        nwfilters=["clean-traffic", "no-arp-spoofing", "no-ip-spoofing"], secrets=[],
        pools=[PoolInfo(name=n, active=True, type="netfs" if n == "nfs" else "dir",
                        target_path=f"/var/lib/libvirt/{n}", available=h.mem_avail_kib * 100) for n in h.pools],
        free_memory=h.mem_avail_kib * 1024,
    )
    for i, (t, name, uuid, machine, running, mac) in enumerate(h.guests):
        inactive = _fill(t.xml, name, uuid, machine, mac)
        live = inactive.replace("<domain type='kvm'>", f"<domain type='kvm' id='{i + 1}'>", 1) if running else inactive
        rd = RawDomain(name=name, uuid=uuid, state=1 if running else 5, state_reason=1, persistent=True,
                       live_xml=live, inactive_xml=inactive, snapshot_count=0)
        if running:
            rd.job_type = 0
            rd.cmdline = [a.replace(NAME, name).replace(UUID, uuid) for a in t.argv]
            rd.exe_link = QEMU
            rd.status_xml = status_xml(live, 4000 + 3 * i)
            rd.log_head = (f"2026-11-01 10:00:00.000+0000: starting up libvirt version: "
                           f"{p.libvirt_number // 1_000_000}.{p.libvirt_number // 1000 % 1000}.0, qemu version: "
                           f"{p.qemu}, kernel: 6.1.0\n")
        gp = GuestProbe(name=name, raw=rd, errors={})
        gp.dom = parse_domain_xml(live)
        hp.guests[name] = gp
    conf = files["/etc/libvirt/qemu.conf"]
    for gp in hp.guests.values():
        if gp.key not in hp.domcaps:
            hp.domcaps[gp.key] = _domcaps_answer(p, gp)
        for xml in gp.source_cpu_defs():
            hp.cpu.setdefault((gp.dom.arch or "", gp.dom.virt_type or "", xml, ""), _cpu_answer(p, xml))
        for path in gp.source_paths(conf):
            hp.paths.setdefault(path, _path_answer(h, path, source=True))
        for path in gp.disk_files():
            a = hp.paths.get(path)
            if a is not None and image_wanted(a.value):
                hp.images.setdefault(path, _image_answer(path))
    for gp in hp.guests.values():
        gp.cpu_defs = _cpu_defs(hp, gp)
    return hp


_CPU_DEFS: dict[tuple, list[str]] = {}


def _cpu_defs(hp: HostProbe, gp: GuestProbe) -> list[str]:
    from migcheck.audit.fleet import source_raw
    from migcheck.checks.registry import probe_plan

    dc = hp.domcaps.get(gp.key)
    key = (dc.value if dc else None, gp.dom.cpu.mode, gp.dom.cpu.xml, gp.dom.cpu.model)
    hit = _CPU_DEFS.get(key)
    if hit is None:
        hit = _CPU_DEFS[key] = probe_plan().target_cpus(gp.dom, source_raw(hp, gp).domcaps_xml)
    return hit


def answer_questions(hp: HostProbe, h: HostSpec, sources: list[HostProbe]) -> None:
    """Phase 2 for one generated target: the questions its group's guests ask it."""
    q = questions_for((g for s in sources for g in s.guests.values()), hp.base.files.get("/etc/libvirt/qemu.conf"))
    for key, g in q.domcaps.items():
        if key not in hp.domcaps:
            hp.domcaps[key] = _domcaps_answer(h.profile, g)
    for k in q.cpu:
        if k not in hp.cpu:
            hp.cpu[k] = _cpu_answer(h.profile, k[2])
    for path in q.paths:
        if path not in hp.paths:
            hp.paths[path] = _path_answer(h, path, source=False)
    for path in q.images:
        a = hp.paths.get(path)
        if path not in hp.images and a is not None and image_wanted(a.value):
            hp.images[path] = _image_answer(path)


def finish(specs: list[HostSpec], groups: dict[str, list[str]]) -> Fleet:
    hosts = {h.name: host_probe(h) for h in specs}
    by_name = {h.name: h for h in specs}
    fleet = Fleet(hosts=hosts, groups=groups, specs=by_name)
    sources_of: dict[str, list[str]] = {h: [] for h in hosts}
    for s, ts in fleet.candidates().items():
        for t in ts:
            sources_of[t].append(s)
    for name, hp in hosts.items():
        answer_questions(hp, by_name[name], [hosts[s] for s in sources_of[name]])
    return fleet


def corpus_fleet(seed: int, n_hosts: int, n_guests: int, group_size: int = 25, first_group: int = 0,
                 n_groups: int | None = None) -> Fleet:
    """Groups [first_group, first_group + n_groups) of a fleet of n_hosts hosts and n_guests guests in
    clusters of group_size (each group from its own seed: any slice is the same as in the whole)."""
    per_host = max(1, n_guests // n_hosts)
    total_groups = max(1, n_hosts // group_size)
    last = total_groups if n_groups is None else min(total_groups, first_group + n_groups)
    specs: list[HostSpec] = []
    groups: dict[str, list[str]] = {}
    for gi in range(first_group, last):
        rng = random.Random(seed * 1_000_003 + gi)
        hs = build_group(rng, f"r{gi:04d}", group_size, per_host, gi * group_size)
        specs += hs
        groups[f"r{gi:04d}"] = [h.name for h in hs]
    return finish(specs, groups)


__all__ = ["corpus_fleet", "templates", "profiles", "cpus", "cpu_key"]
