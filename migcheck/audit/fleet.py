"""What the fleet audit knows about each host, and the per-pair views of it.

A host is probed once (:mod:`migcheck.audit.probe`): its host facts, every guest on it, and
the answers it gave to guest-specific questions (domain capabilities per domcaps key, CPU
comparisons per CPU definition, stats per path). :func:`source_raw` and :func:`target_raw`
cut from that exactly the :class:`RawHost` that ``migcheck SRC DST VM`` (probe_pair) would
have gathered for one pair: the same facts, the same answers, the same errors in the same
order. The audit's own evaluation never needs these per pair (it assembles facts from
caches, see :mod:`migcheck.audit.evaluate`); the every-pair reference and the tests do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migcheck.facts.hostfiles import QEMU_CONF, TCP_FILES
from migcheck.facts.models import Domain
from migcheck.probe.answers import Answer
from migcheck.probe.gather import image_wanted, needs_tcp_listeners, needs_usb_devices
from migcheck.probe.raw import CpuCompareAnswer, NameAnswer, PathStat, RawDomain, RawHost, cpu_key, domcaps_key
from migcheck.probe.stages import (
    CPUS,
    DOMCAPS,
    GUEST,
    HOST_FACTS,
    HOST_FILES,
    IMAGES,
    ORDER,
    PATHS,
    PEERS,
    RESOLUTION,
    SOURCE,
    TARGET,
    TARGET_OBJECTS,
)

INACTIVE_STATES = (0, 5, 6)  # no state, shut off, crashed: no QEMU process


@dataclass
class GuestProbe:
    name: str
    raw: RawDomain | None = None
    errors: dict[str, str] = field(default_factory=dict)  # what gather_guest recorded, in its order
    error: str | None = None  # the guest could not be probed (vanished, changed, unreadable XML)
    identity: tuple[str, int, int] | None = None  # UUID, domain id, state when read (checked again in phase 2)
    dom: Domain | None = None  # its live XML, parsed: what the questions are asked about
    cpu_defs: list[str] = field(default_factory=list)  # CPU definitions a target must judge
    cpu_expanded: dict[str, str] = field(default_factory=dict)  # cpu_key -> as the source expands it
    _tpaths: dict = field(default_factory=dict, repr=False, compare=False)  # qemu.conf -> paths
    _spaths: dict = field(default_factory=dict, repr=False, compare=False)
    _cpu_qs: dict = field(default_factory=dict, repr=False, compare=False)  # (xml, expanded) -> cpu_question
    _needs: tuple[bool, bool] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        d = self.dom
        return domcaps_key(d.emulator, d.arch, d.machine, d.virt_type) if d else ""

    @property
    def running(self) -> bool:
        return self.raw is not None and self.raw.state is not None and self.raw.state not in INACTIVE_STATES

    def target_paths(self, qemu_conf: str | None, networks=None) -> list[str]:
        """The paths probe_pair stats on a target (whose qemu.conf names its TLS folder, whose networks hand
        out host bridges and NICs) for this guest."""
        from migcheck.checks.network import network_host_devices

        devs = tuple(network_host_devices(self.dom, networks or [])) if self.dom else ()
        hit = self._tpaths.get((qemu_conf, devs))
        if hit is None:
            from migcheck.checks.registry import probe_plan

            hit = self._tpaths[(qemu_conf, devs)] = probe_plan().target_paths(self.dom, qemu_conf, networks)
        return hit

    def source_paths(self, qemu_conf: str | None) -> list[str]:
        hit = self._spaths.get(qemu_conf)
        if hit is None:
            from migcheck.checks.registry import probe_plan

            hit = self._spaths[qemu_conf] = probe_plan().source_paths(self.dom, qemu_conf)
        return hit

    def disk_files(self) -> list[str]:
        """Disk sources, in order, whose first bytes gather_image_headers reads where they exist."""
        from migcheck.probe.gather import image_sources

        return image_sources(self.dom) if self.dom else []

    def cpu_question(self, xml: str, expanded: bool = True) -> tuple[str, str, str, str]:
        """The key of a CPU comparison: arch, virt type, the definition, and (for a target) the source's
        expansion of it, which a target that does not know the model is asked about instead."""
        hit = self._cpu_qs.get((xml, expanded))
        if hit is None:
            d = self.dom
            hit = self._cpu_qs[(xml, expanded)] = (
                d.arch or "", d.virt_type or "", xml, self.cpu_expanded.get(cpu_key(xml), "") if expanded else "")
        return hit

    def needs_target_tables(self) -> tuple[bool, bool]:
        """Whether a target's TCP tables and USB devices matter for this guest (probe_pair reads them only then)."""
        if self._needs is None:
            d = self.dom
            self._needs = (d is not None and needs_tcp_listeners(d), d is not None and needs_usb_devices(d))
        return self._needs

    def source_cpu_defs(self) -> list[str]:
        """The guest's own CPU definition, which probe_pair also asks the source about."""
        from migcheck.checks.registry import probe_plan

        return probe_plan().source_cpus(self.dom)


@dataclass
class HostProbe:
    """One host, probed once: as a source (its guests) and as a target (its answers)."""

    name: str  # inventory name
    spec: str  # the host argument, secrets removed
    uri: str  # redacted
    base: RawHost | None = None  # host-level facts only (no guest, no answers, no errors)
    e_host: dict[str, str] = field(default_factory=dict)  # errors of gather_host
    e_peers: dict[str, str] = field(default_factory=dict)  # of gather_peers
    e_files: dict[str, str] = field(default_factory=dict)  # of gather_host_files
    e_objects: dict[str, str] = field(default_factory=dict)  # of gather_target_objects
    guests: dict[str, GuestProbe] = field(default_factory=dict)
    domcaps: dict[str, Answer] = field(default_factory=dict)  # by domcaps key
    cpu: dict[tuple[str, str, str, str], Answer] = field(default_factory=dict)  # by GuestProbe.cpu_question
    paths: dict[str, Answer] = field(default_factory=dict)  # by path
    images: dict[str, Answer] = field(default_factory=dict)  # disk image path -> its header (gather_image_headers)
    # as a source: how it resolves its candidate targets' migration names (gather_resolution); None: not asked
    resolved: dict[str, NameAnswer] | None = None
    e_resolve: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # could not be probed at all: no guests, and unknown as a target
    target_error: str | None = None  # could not answer the questions of its group's guests
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.base is not None


def _in_order(role: str, by_stage: dict[str, dict[str, str]]) -> dict[str, str]:
    """The errors of each stage, merged in the order the role's stages run in a pair (probe/stages.py)."""
    out: dict[str, str] = {}
    for name in ORDER[role]:
        out.update(by_stage.get(name, ()))
    return out




def source_raw(host: HostProbe, guest: GuestProbe) -> RawHost:
    """The source's RawHost for one guest, as probe_pair's source side gathers it, its errors in the
    order of the source's stages (probe/stages.py): host facts, guest, domcaps, CPU comparisons (the
    guest's own CPU), host files, paths (source paths), image headers, resolution."""
    b = host.base
    key = guest.key
    dc = host.domcaps.get(key)
    cpu, cpu_errors = _cpu(host, guest, guest.source_cpu_defs(), expanded=False)
    paths, path_errors = _paths(host, guest.source_paths(b.files.get(QEMU_CONF)))
    images, image_errors = _images(host, guest, paths)
    return _raw(
        spec=b.spec, uri=b.uri, hostname=b.hostname, libvirt_version=b.libvirt_version,
        qemu_version=b.qemu_version, capabilities_xml=b.capabilities_xml,
        domcaps_xml={key: dc.value} if dc is not None and dc.value is not None else {},
        cpu_compare=cpu, domain=guest.raw, files=_host_files(b.files, tcp=False), paths=paths, image_headers=images,
        resolved=host.resolved,
        errors=_in_order(SOURCE, {
            HOST_FACTS: host.e_host, GUEST: guest.errors, DOMCAPS: dc.errors if dc else {}, CPUS: cpu_errors,
            HOST_FILES: _host_files(host.e_files, tcp=False, usb=False), PATHS: path_errors, IMAGES: image_errors,
            RESOLUTION: host.e_resolve}),
    )


def target_raw(host: HostProbe, guest: GuestProbe) -> RawHost:
    """The target's RawHost for one guest, as probe_pair's target side gathers it, its errors in the
    order of the target's stages (probe/stages.py): host facts, peers, host files, target objects,
    domcaps, paths (target paths, by the target's qemu.conf), image headers, CPU comparisons."""
    b = host.base
    key = guest.key
    dc = host.domcaps.get(key)
    paths, path_errors = _paths(host, guest.target_paths(b.files.get(QEMU_CONF), b.networks))
    images, image_errors = _images(host, guest, paths)
    cpu, cpu_errors = _cpu(host, guest, guest.cpu_defs, expanded=True)
    tcp, usb = guest.needs_target_tables()
    return _raw(
        spec=b.spec, uri=b.uri, hostname=b.hostname, libvirt_version=b.libvirt_version,
        qemu_version=b.qemu_version, capabilities_xml=b.capabilities_xml,
        domcaps_xml={key: dc.value} if dc is not None and dc.value is not None else {},
        cpu_compare=cpu, peers=b.peers, paths=paths, image_headers=images, files=_host_files(b.files, tcp),
        networks=b.networks, nwfilters=b.nwfilters, secrets=b.secrets, pools=b.pools, free_memory=b.free_memory,
        usb_devices=b.usb_devices if usb else None,
        errors=_in_order(TARGET, {  # the guest's host files were read with the host's (FLEET_FIRST)
            HOST_FACTS: host.e_host, PEERS: host.e_peers, HOST_FILES: _host_files(host.e_files, tcp, usb),
            TARGET_OBJECTS: host.e_objects, DOMCAPS: dc.errors if dc else {}, PATHS: path_errors,
            IMAGES: image_errors, CPUS: cpu_errors}),
    )


_TCP_KEYS = frozenset(TCP_FILES) | {f"file:{p}" for p in TCP_FILES}


def _host_files(table: dict[str, str], tcp: bool, usb: bool = True) -> dict[str, str]:
    """The host's files (or their errors) as probe_pair has them: the TCP tables, and the error of reading the
    USB devices, only for a guest that needs them."""
    drop = (set() if tcp else _TCP_KEYS) | (set() if usb else {"usb_devices"})
    return {k: v for k, v in table.items() if k not in drop} if drop else table


def _collect(table: dict, keys, name=lambda key: key) -> tuple[dict, dict[str, str]]:
    """The answers a host gave for these keys (values under name(key)) and the errors it met."""
    values: dict = {}
    errors: dict[str, str] = {}
    for key in keys:
        a = table.get(key)
        if a is None:
            continue
        if a.value is not None:
            values[name(key)] = a.value
        errors.update(a.errors)
    return values, errors


def _cpu(host: HostProbe, guest: GuestProbe, defs: list[str],
         expanded: bool) -> tuple[dict[str, CpuCompareAnswer], dict[str, str]]:
    keys = [guest.cpu_question(xml, expanded) for xml in defs]
    return _collect(host.cpu, keys, name=lambda key: cpu_key(key[2]))


def _images(host: HostProbe, guest: GuestProbe, paths: dict[str, PathStat]) -> tuple[dict[str, str], dict[str, str]]:
    return _collect(host.images, [p for p in guest.disk_files() if image_wanted(paths.get(p))])


def _paths(host: HostProbe, wanted: list[str]) -> tuple[dict[str, PathStat], dict[str, str]]:
    return _collect(host.paths, wanted)


_TEMPLATE: RawHost | None = None


def _raw(**fields) -> RawHost:
    """A RawHost with these fields and every other at its default, without re-validating what the
    probe already validated (a copy of an empty RawHost: much cheaper than model_construct)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = RawHost(spec="", uri="")
    raw = _TEMPLATE.model_copy(update=fields)
    for name, value in _TEMPLATE.__dict__.items():  # no default dict or list shared between copies
        if name not in fields and isinstance(value, (dict, list)):
            raw.__dict__[name] = type(value)()
    return raw
