"""Build raw probes for check tests from real corpus data plus small, explicit edits."""

from __future__ import annotations

import re
from pathlib import Path

from migcheck.engine import evaluate
from migcheck.flags import parse_flags
from migcheck.probe.raw import NameAnswer, RawDomain, RawHost

from tests.corpus.libvirt_corpus import CORPUS  # ../shared/corpus/libvirt beside the checkout

# A real host: Intel Haswell-noTSX with invtsc, TSC 2596991000 Hz, no scaling.
HOST_CAPS = (CORPUS / "capabilityschemadata" / "caps-qemu-kvm.xml").read_text()
DOMCAPS_72 = (CORPUS / "domaincapsdata" / "qemu_7.2.0-q35.x86_64.xml").read_text()

GUEST = """<domain type='{virt}'>
  <name>{name}</name>
  <uuid>6d1c3a5e-0000-4000-8000-00000000000{n}</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  {cpu}
  {clock}
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devices}</devices>
</domain>"""


def guest_xml(name="vm1", cpu="", clock="<clock offset='utc'/>", machine="pc", virt="kvm",
              devices="", n=1) -> str:
    return GUEST.format(name=name, cpu=cpu, clock=clock, machine=machine, virt=virt, devices=devices, n=n)


def caps(uuid: str | None = None, tsc: str | None = None, features_drop=(), model: str | None = None) -> str:
    """The real host capabilities with a different host UUID / TSC counter / features."""
    text = HOST_CAPS
    if uuid:
        text = re.sub(r"<uuid>[^<]*</uuid>", f"<uuid>{uuid}</uuid>", text, count=1)
    if tsc is not None:
        text = re.sub(r"<counter name='tsc'[^>]*/>", tsc, text, count=1)
    for feat in features_drop:
        text = text.replace(f"<feature name='{feat}'/>", "")
    if model:
        text = re.sub(r"(<host>.*?<model>)[^<]*(</model>)", rf"\g<1>{model}\2", text, count=1, flags=re.S)
    return text


MEMINFO = "MemTotal:       24000000 kB\nMemFree:        20000000 kB\nMemAvailable:   22000000 kB\nHugepagesize:       2048 kB\n"
MOUNTINFO = ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
             "30 22 0:26 / /run rw,nosuid - tmpfs tmpfs rw\n"
             "40 22 0:40 / /mnt/nfs rw - nfs4 filer:/export rw\n")
FIB_TRIE = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.2\n        /32 host LOCAL\n"


def host_files(mountinfo: str = MOUNTINFO) -> dict[str, str]:
    return {"/proc/meminfo": MEMINFO, "/proc/self/mountinfo": mountinfo, "/sys/devices/system/cpu/online": "0-7\n",
            "/sys/devices/system/node/online": "0\n", "/proc/net/fib_trie": FIB_TRIE, "/proc/net/if_inet6": ""}


def argv(cpu: str = "host,migratable=on", machine: str = "pc-q35-7.2", accel: str = "kvm") -> list[str]:
    return ["/usr/bin/qemu-system-x86_64", "-name", "guest=vm1", "-machine", f"{machine},usb=off",
            "-accel", accel, "-cpu", cpu, "-m", "64"]


def source(xml: str, cmdline: list[str] | None = None, state: int = 1, reason: int = 1, host_caps: str | None = None,
           libvirt: int = 9_000_000, qemu: int = 7_002_000, domcaps: dict | None = None, **dom) -> RawHost:
    from migcheck.facts.domain_xml import parse_domain_xml
    from migcheck.probe.raw import domcaps_key

    d = parse_domain_xml(xml)
    raw = RawHost(spec="src", uri="qemu+ssh://root@src/system", hostname="src.example",
                  libvirt_version=libvirt, qemu_version=qemu,
                  capabilities_xml=host_caps or caps(uuid="11111111-1111-1111-1111-111111111111"),
                  domcaps_xml=domcaps if domcaps is not None else
                  {domcaps_key(d.emulator, d.arch, d.machine, d.virt_type): DOMCAPS_72})
    raw.domain = RawDomain(name=d.name, uuid=d.uuid, state=state, state_reason=reason, persistent=True,
                           live_xml=xml, inactive_xml=xml, cmdline=cmdline, **({"snapshot_count": 0, "job_type": 0} | dom))
    raw.files = host_files()
    # the source resolves the target's hostname (target() below) to the target's address (FIB_TRIE)
    raw.resolved = {"dst.example": NameAnswer(name="dst.example", addresses=["10.0.0.2"], found=True)}
    return raw


def target(host_caps: str | None = None, libvirt: int = 9_000_000, qemu: int = 7_002_000, **kw) -> RawHost:
    """A target that has everything a plain guest needs; tests take things away."""
    from migcheck.probe.raw import PathStat

    kw.setdefault("files", host_files())
    kw.setdefault("paths", {"/usr/bin/qemu-system-x86_64": PathStat(path="/usr/bin/qemu-system-x86_64", exists=True)})
    kw.setdefault("networks", [])
    kw.setdefault("nwfilters", [])
    kw.setdefault("secrets", [])
    kw.setdefault("pools", [])
    kw.setdefault("domcaps_xml", {"/usr/bin/qemu-system-x86_64|x86_64|pc|kvm": DOMCAPS_72})
    return RawHost(spec="dst", uri="qemu+ssh://root@dst/system", hostname="dst.example",
                   libvirt_version=libvirt, qemu_version=qemu,
                   capabilities_xml=host_caps or caps(uuid="22222222-2222-2222-2222-222222222222"), **kw)


def run(src: RawHost, dst: RawHost, flags: str = "--live"):
    """engine.evaluate on the pair; on the way, every check's findings carry severities it declares and it
    reads only the target facts it declares (tests/unit/declared_reads.py)."""
    from tests.unit.declared_reads import assert_reads_declared

    parsed = parse_flags(flags.split())
    report = evaluate(src, dst, src.domain.name, parsed)
    assert_declared_severities(report)
    migration_xml = None
    if parsed.xml or parsed.persistent_xml:
        from migcheck.destxml import load_migration_xml

        migration_xml = load_migration_xml(parsed)
    assert_reads_declared(src, dst, parsed, migration_xml)
    return report


def assert_declared_severities(report) -> None:
    """Every finding carries a severity its check declares (`migcheck rules` says it), or unknown/info.

    Every unit test that evaluates a pair through run() checks this on its way."""
    from migcheck.checks.registry import REGISTRY
    from migcheck.report.model import Severity

    for f in report.findings:
        chk = REGISTRY.get(f.rule)
        if chk is not None and f.severity not in (Severity.UNKNOWN, Severity.INFO):
            assert f.severity in chk.severities, \
                f"{f.rule} emitted {f.severity.value} but declares {chk.severity_label}: {f.message}"


def rules_of(report, severity=None) -> set[str]:
    return {f.rule for f in report.findings if severity is None or f.severity.value == severity}


def unknown_checks(report) -> set[str]:
    """The checks that said unknown, those merged into one facts.unavailable finding included."""
    out = set()
    for f in report.findings:
        if f.severity.value == "unknown":
            out |= set(f.evidence[0].removeprefix("checks: ").split(", ")) if f.rule == "facts.unavailable" else {f.rule}
    return out
