"""Raw probe answers -> typed facts of one host (and the guest on it).

Every parse is guarded: a fact whose raw form is missing or malformed is
recorded in ``errors`` and left as ``None``, so the checks that need it report
"unknown" instead of guessing.  Checks read these facts only, never ``raw``
(a unit test says so): ``raw`` stays for snapshots and the audit's grouping.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

from pydantic import BaseModel, Field

from migcheck.facts.capabilities_xml import parse_capabilities_xml, parse_domain_capabilities_xml
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.facts.hostfiles import HostFileFacts, parse_host_files
from migcheck.facts.models import Domain, DomainCapabilities, HostCapabilities, QemuCommandLine, Version
from migcheck.facts.qemu_cmdline import parse_qemu_argv
from migcheck.probe.raw import (CpuCompareAnswer, NameAnswer, NetworkInfo, PathStat, PeerDomain, PoolInfo, RawDomain,
                                RawHost, SecretInfo, UsbDevice, domcaps_key)

T = TypeVar("T")

_LOG_VERSIONS = re.compile(r"libvirt version: ([0-9.]+).*?qemu version: ([0-9.]+)", re.S)


class GuestFacts(BaseModel):
    name: str
    uuid: str | None = None
    state: int | None = None
    state_reason: int | None = None
    persistent: bool | None = None
    live: Domain | None = None
    inactive: Domain | None = None
    status: Domain | None = None
    cmdline: QemuCommandLine | None = None
    exe_link: str | None = None
    started_libvirt: Version | None = None  # from the QEMU log header
    started_qemu: Version | None = None
    job_type: int | None = None
    completed_job: dict[str, int | float | str] | None = None  # the last finished job (paused guests)
    qmp_status: str | None = None  # QEMU's runstate, only with --qmp (paused guests)
    block_jobs: list[str] = Field(default_factory=list)
    snapshot_count: int | None = None
    qmp_blocked_reasons: list[str] | None = None
    # the live definition as libvirt wrote it: what an --xml's ABI is compared with (flags.destination-xml)
    live_xml: str | None = None
    # libvirt's status XML notes that the running swtpm can migrate with its state on shared storage
    # (<can_migrate_shared_storage/>); None: the status XML was not read
    tpm_migrates_shared_storage: bool | None = None

    @property
    def running(self) -> bool:
        """A QEMU process exists: running, blocked, paused, shutting down or pm-suspended."""
        return self.state in (1, 2, 3, 4, 7)


class HostFacts(HostFileFacts):
    """One host as the checks see it: its answers to libvirt, its small files (HostFileFacts), the probe's
    answers to the questions asked for this guest (paths, image headers, CPU comparisons), and the guest."""

    spec: str
    uri: str
    hostname: str | None = None
    libvirt_version: Version | None = None
    qemu_version: Version | None = None
    caps: HostCapabilities | None = None
    domcaps: dict[str, DomainCapabilities] = Field(default_factory=dict)
    guest: GuestFacts | None = None
    cpu_compare: dict[str, CpuCompareAnswer] = Field(default_factory=dict)  # key: probe.raw.cpu_key(CPU XML)
    peers: list[PeerDomain] = Field(default_factory=list)  # same name/uuid as the guest, on a target
    paths: dict[str, PathStat] = Field(default_factory=dict)
    image_headers: dict[str, str] = Field(default_factory=dict)  # disk image path -> its first bytes, hex
    networks: list[NetworkInfo] | None = None  # None: not gathered
    nwfilters: list[str] | None = None
    secrets: list[SecretInfo] | None = None
    pools: list[PoolInfo] | None = None
    free_memory: int | None = None  # bytes, virNodeGetFreeMemory
    usb_devices: list[UsbDevice] | None = None
    resolved: dict[str, NameAnswer] | None = None  # on a source: how it resolves the target's migration names
    raw: RawHost
    errors: dict[str, str] = Field(default_factory=dict)

    def error_about(self, fact: str) -> str | None:
        """Why a fact is missing: the first error whose key starts with the fact's name (before any ':')."""
        prefix = fact.split(":")[0]
        return next((v for k, v in self.errors.items() if k.startswith(prefix)), None)

    def domcaps_for(self, dom: Domain) -> DomainCapabilities | None:
        return self.domcaps.get(domcaps_key(dom.emulator, dom.arch, dom.machine, dom.virt_type))


def _guard(errors: dict[str, str], fact: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception as exc:  # a malformed answer is an unknown fact, never a crash
        errors[fact] = f"{type(exc).__name__}: {exc}"
        return None


class Parses:
    """Each kind of raw answer parsed into its fact, with the errors of a malformed one: the one place
    build_host_facts gets its facts from. The audit's FactCache (facts/cache.py) is this, each distinct text
    parsed once."""

    def caps(self, text: str) -> tuple[HostCapabilities | None, str | None]:
        errors: dict[str, str] = {}
        return _guard(errors, "capabilities", lambda: parse_capabilities_xml(text)), errors.get("capabilities")

    def domcaps(self, text: str) -> tuple[DomainCapabilities | None, str | None]:
        errors: dict[str, str] = {}
        return _guard(errors, "domcaps", lambda: parse_domain_capabilities_xml(text)), errors.get("domcaps")

    def version(self, number: int | None) -> Version | None:
        return Version(number=number) if number else None

    def guest(self, rd: RawDomain, live: Domain | None = None,
              lazy: bool = False) -> tuple[GuestFacts, dict[str, str]]:
        """The guest's facts and the errors parsing them met. live: its live XML already parsed (from this very
        text); lazy: leave the status XML unparsed (nothing reads it)."""
        return guest_facts(rd, live, lazy)

    def files(self, files: dict[str, str], errors: dict[str, str]) -> dict[str, object]:
        return file_facts_of(files, errors)


_PLAIN = Parses()
_TEMPLATE: list[HostFacts] = []


def build_host_facts(raw: RawHost, parses: Parses = _PLAIN,
                     guest: tuple[GuestFacts, dict[str, str]] | None = None,
                     caps: tuple[HostCapabilities | None, str | None] | None = None) -> HostFacts:
    """The typed facts of one host. parses: where each answer is parsed (the audit passes its cache); guest,
    caps: the guest's and the capabilities' facts when the caller has them already."""
    errors = dict(raw.errors)
    caps_parsed = None
    if raw.capabilities_xml is not None:
        caps_parsed, err = caps if caps is not None else parses.caps(raw.capabilities_xml)
        if err is not None:
            errors["capabilities"] = err
    domcaps = {}
    for key, text in raw.domcaps_xml.items():
        parsed, err = parses.domcaps(text)
        if err is not None:
            errors[f"domcaps:{key}"] = err
        elif parsed is not None:
            domcaps[key] = parsed
    g = None
    if raw.domain is not None:
        g, gerrors = guest if guest is not None else parses.guest(raw.domain)
        errors.update(gerrors)
    files = parses.files(raw.files, errors)
    if not _TEMPLATE:
        _TEMPLATE.append(HostFacts(spec="", uri="", raw=RawHost(spec="", uri="")))
    # a copy of an empty HostFacts with every field set: what the probe validated is not validated again
    return _TEMPLATE[0].model_copy(update=dict(
        spec=raw.spec, uri=raw.uri, hostname=raw.hostname, libvirt_version=parses.version(raw.libvirt_version),
        qemu_version=parses.version(raw.qemu_version), caps=caps_parsed, domcaps=domcaps, guest=g, raw=raw,
        errors=errors, **answers_of(raw), **files))


def guest_facts(rd: RawDomain, live: Domain | None = None, lazy: bool = False) -> tuple[GuestFacts, dict[str, str]]:
    """A guest's facts from its raw answers, and the errors of those that did not parse."""
    errors: dict[str, str] = {}
    g = GuestFacts(
        name=rd.name,
        uuid=rd.uuid,
        state=rd.state,
        state_reason=rd.state_reason,
        persistent=rd.persistent,
        exe_link=rd.exe_link,
        job_type=rd.job_type,
        completed_job=rd.completed_job,
        qmp_status=rd.qmp_status,
        block_jobs=rd.block_jobs,
        snapshot_count=rd.snapshot_count,
        qmp_blocked_reasons=rd.qmp_blocked_reasons,
        live_xml=rd.live_xml,
        tpm_migrates_shared_storage=tpm_migrates_shared_storage(rd.status_xml),
    )
    if rd.live_xml is not None:
        g.live = live if live is not None else _guard(errors, "domain_xml", lambda: parse_domain_xml(rd.live_xml))
    if rd.inactive_xml is not None:
        g.inactive = _guard(errors, "domain_inactive_xml", lambda: parse_domain_xml(rd.inactive_xml))
    if rd.status_xml is not None and not lazy:
        g.status = _guard(errors, "status_xml", lambda: _parse_status_xml(rd.status_xml))
    if rd.cmdline is not None:
        g.cmdline = _guard(errors, "cmdline", lambda: parse_qemu_argv(rd.cmdline))
    if rd.log_head:
        m = _LOG_VERSIONS.search(rd.log_head)
        if m:
            g.started_libvirt = Version.parse(m.group(1))
            g.started_qemu = Version.parse(m.group(2))
    return g, errors


ANSWERS = ("cpu_compare", "peers", "paths", "image_headers", "networks", "nwfilters", "secrets", "pools",
           "free_memory", "usb_devices", "resolved")


def answers_of(raw: RawHost) -> dict[str, object]:
    """The probe's answers that are facts as they are (the same objects: nothing is copied)."""
    return {name: getattr(raw, name) for name in ANSWERS}


def file_facts_of(files: dict[str, str], errors: dict[str, str]) -> dict[str, object]:
    """The typed facts of a host's small files, as HostFacts fields (parse errors go to errors)."""
    parsed = parse_host_files(files, errors)
    return {name: getattr(parsed, name) for name in HostFileFacts.model_fields}


def tpm_migrates_shared_storage(status_xml: str | None) -> bool | None:
    return None if status_xml is None else "<can_migrate_shared_storage/>" in status_xml


def _parse_status_xml(text: str) -> Domain:
    """The live status XML wraps the domain in ``<domstatus>``."""
    from migcheck.xmlsafe import parse_xml, to_text

    root = parse_xml(text, "status XML")
    dom = root if root.tag == "domain" else root.find("domain")
    if dom is None:
        raise ValueError("status XML has no <domain>")
    return parse_domain_xml(to_text(dom))
