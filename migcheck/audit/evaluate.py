"""Evaluate every guest against every candidate target: once per class of equal targets.

For a guest ``v`` on ``S`` and a candidate target ``T``, the result is what
``evaluate(source_raw(S, v), target_raw(T, v))`` gives (what ``migcheck S T v`` says).
Computing that per pair would parse and check the same facts over and over; instead:

* facts are parsed once: host capabilities once per distinct text (the host UUID left out of
  the key and put back), domain capabilities once per distinct text, each host's small files
  once, each guest once (its status XML only when a check declares it reads it);
* the targets of a guest are put in classes by a key (:func:`target_key`) that holds every
  fact in :data:`IN_KEY` exactly (versions, capabilities without the UUID, networks, nwfilters,
  secrets, qemu.conf, online CPUs and NUMA nodes, the probe's errors, and the answers to this
  guest's own questions) and the views of :data:`VIEWS_IN_KEY` (same host UUID as the source or
  not; the hostname only if it could be localhost; the domains of the guest's name or UUID; the
  pools without their free space; whether the guest fits in the target's memory);
* what each check reads of the target is what it declares (``@check(reads=...)``; a unit test
  fails when a check reads more): a check that reads nothing of the target runs once per guest,
  one that reads only what the key holds once per class (on one member whose name is replaced
  by a marker, put back per member afterwards), any other once per target with its own facts.

``tests/unit/every_pair.py`` is the plain per-pair reference the tests and the benchmark compare
this with, on generated fleets and on real data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from migcheck.audit.fleet import GuestProbe, HostProbe, source_raw, target_raw
from migcheck.checks.registry import (FREE_READS, SOURCE_STATUS, Check, CheckContext, all_checks, merge_unavailable,
                                     reads_for, run_check)
from migcheck.facts.models import Domain
from migcheck.facts.procfs import mount_of
from migcheck.facts.cache import FactCache
from migcheck.facts.host import GuestFacts, HostFacts, build_host_facts
from migcheck.facts.hostfiles import CPU_ONLINE, MEMINFO, NODE_ONLINE, QEMU_CONF
from migcheck.flags import MigrationFlags
from migcheck.report.model import SEVERITY_ORDER, Finding, Report, Severity, Verdict, verdict_of

MARKER = "\x00migcheck-audit-target\x00"  # never in host data: XML and the names cannot hold NUL

# files whose content is the same on hosts of one profile: compared exactly
PROFILE_FILES = (QEMU_CONF, CPU_ONLINE, NODE_ONLINE)


# What the class key (target_key) holds of the target, exactly: a check that reads only these, and the
# views below, is evaluated once per class. The answers are this guest's own (its paths, CPU
# definitions, image headers, domain capabilities); qemu.conf and the online CPUs and nodes are
# PROFILE_FILES; the errors are the probe's.
IN_KEY = frozenset({"errors", "libvirt_version", "qemu_version", "caps", "domcaps", "guest", "cpu_compare", "paths",
                    "image_headers", "networks", "nwfilters", "secrets", "qemu_conf", "cpus_online", "nodes_online",
                    "cpuinfo"})
# the views of checks.registry.VIEWS the key holds (memory~fits only while the guest fits: see target_key)
VIEWS_IN_KEY = frozenset({"caps.uuid~source", "hostname~localhost", "peers~guest", "pools~layout", "memory~fits",
                          "mounts~disks", "boot_id~source"})

GUEST, CLASS, MEMBER = "guest", "class", "member"


def scope_of(chk: Check, dom: Domain | None, flags: MigrationFlags, target: HostFacts | None = None) -> str:
    """How often a check runs for a guest, from what it declares it reads of the target (@check(reads=), its
    conditional reads for this guest and flags): once (it reads nothing of the target), once per class of
    targets (only what the key holds), or once per target (any other fact: free memory, addresses, ...)."""
    target_reads = reads_for(chk, dom, flags, target) - FREE_READS - {SOURCE_STATUS}
    if not target_reads:
        return GUEST
    return CLASS if target_reads <= IN_KEY | VIEWS_IN_KEY else MEMBER


# ---------------------------------------------------------------- fact caches

@dataclass
class ClassResult:
    """The findings of one class of equal targets for one guest, check by check (marker for the target)."""

    by_check: dict[str, list[Finding]]
    members: list[str]
    per_member: dict[str, dict[str, list[Finding]]] = field(default_factory=dict)  # target -> check -> findings
    error: str | None = None  # the target could not be probed: probe.failed


@dataclass
class VmResult:
    host: str
    name: str
    uuid: str | None
    state: int | None
    running: bool
    flags: list[str]
    error: str | None = None  # the guest itself could not be probed
    targets: list[str] = field(default_factory=list)
    cell_class: list[int] = field(default_factory=list)  # per target: index into classes
    classes: list[ClassResult] = field(default_factory=list)
    memory_kib: int | None = None

    def findings(self, target: str, spec: str) -> list[Finding]:
        """The sorted findings of the pair, as engine.evaluate lists them."""
        cr = self.classes[self.cell_class[self.targets.index(target)]]
        return _materialize(cr, target, spec)

    def verdict(self, target: str) -> Verdict:
        cr = self.classes[self.cell_class[self.targets.index(target)]]
        return _verdict_of_class(cr, target)


def _substitute(f: Finding, spec: str) -> Finding:
    if MARKER not in f.message and not any(MARKER in e for e in f.evidence) and MARKER not in (f.fix or ""):
        return f
    return Finding(rule=f.rule, severity=f.severity, message=f.message.replace(MARKER, spec),
                   evidence=[e.replace(MARKER, spec) for e in f.evidence],
                   fix=f.fix.replace(MARKER, spec) if f.fix is not None else None)


def _materialize(cr: ClassResult, target: str, spec: str) -> list[Finding]:
    if cr.error is not None:
        return [Finding(rule="probe.failed", severity=Severity.UNKNOWN, message=cr.error,
                        fix="fix the access problem named above and run migcheck again")]
    own = cr.per_member.get(target, {})
    out: list[Finding] = []
    for cid, fs in cr.by_check.items():
        if cid in own:
            out.extend(own[cid])
        else:
            out.extend(_substitute(f, spec) for f in fs)
    out = merge_unavailable(out)
    out.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.rule))
    return out


def _verdict_of_class(cr: ClassResult, target: str) -> Verdict:
    if cr.error is not None:
        return Verdict.UNKNOWN
    own = cr.per_member.get(target, {})
    return verdict_of([f for cid, fs in cr.by_check.items() for f in (own[cid] if cid in own else fs)])


def pair_report(vm: VmResult, target: str, hosts: dict[str, HostProbe], checks_run: int) -> Report:
    """The full report of one pair, equal to what migcheck SRC DST VM reports."""
    src, dst = hosts[vm.host], hosts[target]
    findings = vm.findings(target, dst.spec)
    cr = vm.classes[vm.cell_class[vm.targets.index(target)]]
    if cr.error is not None:
        return Report(verdict=verdict_of(findings), source=src.spec, target=dst.spec, domain=vm.name,
                      flags=vm.flags, findings=findings, errors=[cr.error])
    return Report(verdict=verdict_of(findings), source=src.spec, target=dst.spec, domain=vm.name,
                  flags=vm.flags, findings=findings, checks_run=checks_run)


# ------------------------------------------------------------------- the plan


@dataclass
class AuditPlan:
    """What is checked: each host's candidate targets, and which guests with which flags."""

    candidates: dict[str, list[str]]  # host -> other hosts its guests may move to
    flags: MigrationFlags
    inactive: str = "offline"  # offline | skip | same

    def guest_flags(self, g: GuestProbe) -> MigrationFlags | None:
        if g.running or self.inactive == "same":
            return self.flags
        if self.inactive == "skip":
            return None
        return offline_flags(self.flags)


def offline_flags(base: MigrationFlags) -> MigrationFlags:
    """What moving a shut-off guest takes: --offline --persistent (keeping --undefinesource and --dname)."""
    return MigrationFlags(offline=True, persistent=True, undefinesource=base.undefinesource, dname=base.dname)


# ------------------------------------------------------------- per-host data


class _TargetInfo:
    """What the class key needs of a host as a target, computed once per host."""

    __slots__ = ("profile", "uuid", "hostname_key", "peers_by_name", "peers_by_uuid", "peers", "mem", "mem_text",
                 "dc", "cpu", "paths", "images", "conf", "networks", "cpuinfo", "mounts", "boot_id", "_mounts_of")

    def __init__(self, host: HostProbe, cache: FactCache, intern: Callable[[object], int]):
        from migcheck.facts.procfs import parse_meminfo

        b = host.base
        caps, caps_err = cache.caps(b.capabilities_xml) if b.capabilities_xml is not None else (None, None)
        self.uuid = caps.uuid if caps is not None else None
        caps_profile = caps.model_dump(exclude={"uuid"}) if caps is not None else None
        host_errors = list({**host.e_host, **host.e_peers, **host.e_files, **host.e_objects}.items())
        self.profile = intern((
            "host", b.libvirt_version, b.qemu_version, repr(caps_profile), caps_err,
            tuple((p, b.files.get(p)) for p in PROFILE_FILES),
            repr([n.model_dump() for n in b.networks] if b.networks is not None else None),
            repr(b.nwfilters), repr([s.model_dump() for s in b.secrets] if b.secrets is not None else None),
            repr([p.model_dump(exclude={"available"}) for p in b.pools] if b.pools is not None else None),
            tuple(host_errors),
        ))
        h = b.hostname
        self.hostname_key = h if h is None or "localhost" in h.lower() else ""
        self.peers = b.peers
        self.peers_by_name: dict[str, list[int]] = {}
        self.peers_by_uuid: dict[str | None, list[int]] = {}
        for i, p in enumerate(b.peers):
            self.peers_by_name.setdefault(p.name, []).append(i)
            self.peers_by_uuid.setdefault(p.uuid, []).append(i)
        self.mem_text = b.files.get(MEMINFO)
        info = parse_meminfo(self.mem_text) if self.mem_text is not None else {}
        self.mem = (info.get("MemTotal"), info.get("MemAvailable", info.get("MemFree")))
        self.dc = {k: intern(("dc", a.value, tuple(a.errors.items()))) for k, a in host.domcaps.items()}
        self.cpu = {k: intern(("cpu", _fp(a.value), tuple(a.errors.items()))) for k, a in host.cpu.items()}
        self.paths = {k: intern(("path", _fp(a.value), tuple(a.errors.items()))) for k, a in host.paths.items()}
        self.images = {k: intern(("image", a.value, tuple(a.errors.items()))) for k, a in host.images.items()}
        self.conf = b.files.get(QEMU_CONF)
        self.networks = b.networks
        files = cache.files(b.files, dict(host.e_files))
        self.cpuinfo = intern(("cpuinfo", _fp(files["cpuinfo"])))
        self.mounts, self.boot_id = files["mounts"], files["boot_id"]
        self._mounts_of: dict[tuple[str, ...], object] = {}

    def mounts_of(self, paths: tuple[str, ...]) -> object:
        """The mounts~disks view: the mount holding each of these paths (None: mountinfo not read)."""
        hit = self._mounts_of.get(paths)
        if hit is None:
            hit = self._mounts_of[paths] = (None if self.mounts is None else
                                            tuple(_fp(mount_of(p, self.mounts)) for p in paths))
        return hit


def _fp(value: object) -> object:
    """A hashable value equal for equal answers (pydantic models by their fields)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    d = getattr(value, "__dict__", None)
    if d is not None:
        return (type(value).__name__,) + tuple((k, _fp(v)) for k, v in d.items())
    if isinstance(value, (list, tuple)):
        return tuple(_fp(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _fp(v)) for k, v in value.items())
    return repr(value)


class _GuestInfo:
    """What the class key needs of a guest, computed once per guest."""

    __slots__ = ("needs", "hugepages", "name", "uuid", "g", "cpu_qs", "key", "disks", "disk_sources")

    def __init__(self, g: GuestProbe, gf: GuestFacts | None, flags: MigrationFlags):
        doms = [d for d in ((gf.live, gf.inactive) if gf else ()) if d is not None]
        self.needs = max((d.memory_kib for d in doms), default=None)
        self.hugepages = any(d.hugepages for d in doms)
        self.name = flags.dname or (gf.name if gf else g.name)
        self.uuid = gf.uuid if gf else None
        self.g = g
        self.disks = g.disk_files()
        self.disk_sources = tuple(dict.fromkeys(x.source for d in doms for x in d.disks if x.source))
        d = g.dom
        self.cpu_qs = [g.cpu_question(x) for x in g.cpu_defs] if d else []
        self.key = g.key


def _peer_key(ti: _TargetInfo, gi: _GuestInfo) -> tuple:
    idx = ti.peers_by_name.get(gi.name, []) + ti.peers_by_uuid.get(gi.uuid, [])
    if not idx:
        return ()
    return tuple(ti.peers[i].model_dump_json() for i in sorted(set(idx)))


FITS = ("fits",)  # the guest fits in MemTotal and MemAvailable: resources.memory finds nothing
NO_MEMINFO = ("none",)  # resources.memory: "meminfo not available" and why (from the errors, in the key)
KEY_MEM = 8


def target_key(ti: _TargetInfo, gi: _GuestInfo, src_uuid: str | None, src_boot_id: str | None = None) -> tuple:
    """Equal for two targets when the checks cannot tell them apart for this guest, except through
    facts that make the checks reading them run per member (see scope_of)."""
    if gi.hugepages:
        mem: tuple = ("huge",)  # resources.hugepages reads meminfo, mounts, free pages: per member
    elif ti.mem_text is None:
        mem = NO_MEMINFO
    else:
        total, avail = ti.mem
        need = gi.needs
        fits = need is None or ((total is None or need <= total) and (avail is None or need <= avail))
        mem = FITS if fits else ("short",)  # short: resources.memory per member (its numbers are in the text)
    return (
        ti.profile,
        ti.dc.get(gi.key, -1),
        tuple(map(ti.cpu.get, gi.cpu_qs)),
        tuple(map(ti.paths.get, gi.g.target_paths(ti.conf, ti.networks))),
        tuple(map(ti.images.get, gi.disks)),
        bool(src_uuid) and ti.uuid == src_uuid,
        ti.hostname_key,
        _peer_key(ti, gi),
        mem,
        ti.cpuinfo,
        ti.mounts_of(gi.disk_sources),
        bool(src_boot_id) and ti.boot_id == src_boot_id,
    )


# ------------------------------------------------------------------ evaluation


@dataclass
class EvalStats:
    vms: int = 0
    pairs: int = 0
    classes: int = 0
    check_runs: int = 0
    per_member_runs: int = 0
    uncovered: dict[str, int] = field(default_factory=dict)  # "check facet" -> times


class Evaluator:
    def __init__(self, hosts: dict[str, HostProbe], plan: AuditPlan, checks: list[Check] | None = None,
                 cache: FactCache | None = None):
        self.hosts = hosts
        self.plan = plan
        self.checks = checks if checks is not None else all_checks()
        self.cache = cache or FactCache()
        self.parse_status = any(SOURCE_STATUS in c.reads for c in self.checks)
        self.conditional = [c for c in self.checks if any("?" in r for r in c.reads)]
        self.static_scopes = {c.id: scope_of(c, None, plan.flags) for c in self.checks if c not in self.conditional}
        self._intern: dict[object, int] = {}
        self._targets: dict[str, _TargetInfo] = {}
        self._src_caps: dict[str, tuple] = {}
        self.stats = EvalStats()

    def intern(self, value: object) -> int:
        i = self._intern.get(value)
        if i is None:
            i = self._intern[value] = len(self._intern)
        return i

    def target_info(self, name: str) -> _TargetInfo:
        ti = self._targets.get(name)
        if ti is None:
            ti = self._targets[name] = _TargetInfo(self.hosts[name], self.cache, self.intern)
        return ti

    def forget_host(self, name: str) -> None:
        """Drop what was computed for a host (the synthetic benchmark streams groups through)."""
        self._targets.pop(name, None)
        self._src_caps.pop(name, None)

    def host_caps(self, name: str) -> tuple:
        c = self._src_caps.get(name)
        if c is None:
            b = self.hosts[name].base
            c = self._src_caps[name] = (self.cache.caps(b.capabilities_xml) if b.capabilities_xml is not None
                                        else (None, None))
        return c

    def evaluate_host(self, name: str) -> list[VmResult]:
        host = self.hosts[name]
        if not host.ok:
            return []
        return [r for g in host.guests.values() if (r := self.evaluate_guest(host, g)) is not None]

    def evaluate_guest(self, host: HostProbe, g: GuestProbe) -> VmResult | None:
        flags = self.plan.guest_flags(g) if g.raw is not None else self.plan.flags
        if flags is None:
            return None
        targets = self.plan.candidates.get(host.name, [])
        vm = VmResult(host=host.name, name=g.name, uuid=g.raw.uuid if g.raw else None,
                      state=g.raw.state if g.raw else None, running=g.running, flags=flags.as_args(),
                      targets=list(targets))
        self.stats.vms += 1
        self.stats.pairs += len(targets)
        if g.error is not None or g.raw is None:
            vm.error = f"{host.spec}: {g.error or 'not probed'}"
            vm.classes = [ClassResult(by_check={}, members=list(targets), error=vm.error)]
            vm.cell_class = [0] * len(targets)
            return vm
        src_raw = source_raw(host, g)
        # the status XML is large and parsed only when a check declares it reads it (checks.registry.SOURCE_STATUS)
        gfacts = self.cache.guest(src_raw.domain, live=g.dom, lazy=not self.parse_status)
        src = build_host_facts(src_raw, self.cache, gfacts, self.host_caps(host.name))
        self._evaluate_targets(vm, host, g, gfacts, src, flags)
        self.stats.classes += len(vm.classes)
        return vm

    def _evaluate_targets(self, vm: VmResult, host: HostProbe, g: GuestProbe, gfacts, src: HostFacts,
                          flags: MigrationFlags) -> None:
        gi = _GuestInfo(g, gfacts[0], flags)
        vm.memory_kib = gi.needs
        src_uuid = src.caps.uuid if src.caps is not None else None
        classes: dict[object, int] = {}
        keys: list[tuple] = []
        for t in vm.targets:
            th = self.hosts[t]
            if th.error is not None or th.target_error is not None:
                key: tuple = ("failed", t)
            else:
                key = target_key(self.target_info(t), gi, src_uuid, src.boot_id)
            ci = classes.get(key)
            if ci is None:
                ci = classes[key] = len(vm.classes)
                vm.classes.append(ClassResult(by_check={}, members=[]))
                keys.append(key)
            vm.classes[ci].members.append(t)
            vm.cell_class.append(ci)
        dom = gfacts[0].live or gfacts[0].inactive if gfacts[0] is not None else None
        shared: dict[str, list[Finding]] = {}  # checks that never read the target
        for cr, key in zip(vm.classes, keys):
            rep = self.hosts[cr.members[0]]
            if rep.error is not None or rep.target_error is not None:
                cr.error = f"{rep.spec}: {rep.error or rep.target_error}"
                continue
            self._evaluate_class(cr, key, src, g, dom, flags, shared)

    def _target_facts(self, name: str, g: GuestProbe, spec: str | None) -> HostFacts:
        raw = target_raw(self.hosts[name], g)
        if spec is not None:
            raw = raw.model_copy(update={"spec": spec})
        ti_caps = self.host_caps(name)
        return build_host_facts(raw, self.cache, caps=ti_caps)

    def _evaluate_class(self, cr: ClassResult, key: tuple, src: HostFacts, g: GuestProbe, dom: Domain | None,
                        flags: MigrationFlags, shared: dict[str, list[Finding]]) -> None:
        dst = self._target_facts(cr.members[0], g, MARKER)
        # a conditional read's condition may read only what the key holds: one member answers for the class
        scopes = self.static_scopes | {c.id: scope_of(c, dom, flags, dst) for c in self.conditional}
        ctx = CheckContext(source=src, target=dst, flags=flags)
        fits = key[KEY_MEM] in (FITS, NO_MEMINFO)
        members: list[tuple[str, CheckContext]] | None = None
        for chk in self.checks:  # by_check keeps only checks with findings (or per-member ones), in order
            scope = scopes[chk.id]
            if scope == GUEST:
                if chk.id not in shared:
                    self.stats.check_runs += 1
                    shared[chk.id] = run_check(chk, ctx)
                if shared[chk.id]:
                    cr.by_check[chk.id] = shared[chk.id]
                continue
            if scope == CLASS and (fits or "memory~fits" not in chk.reads):
                self.stats.check_runs += 1
                found = run_check(chk, ctx)
                if found:
                    cr.by_check[chk.id] = found
                continue
            # reads a fact the class key does not hold (or the numbers of a target short of memory): per target
            k = f"{chk.id} {' '.join(sorted(reads_for(chk, None, flags) - IN_KEY - VIEWS_IN_KEY)) or 'memory'}"
            self.stats.uncovered[k] = self.stats.uncovered.get(k, 0) + 1
            if members is None:
                members = [(m, CheckContext(source=src, target=self._target_facts(m, g, None), flags=flags))
                           for m in cr.members]
            cr.by_check[chk.id] = []
            for m, mctx in members:
                self.stats.per_member_runs += 1
                cr.per_member.setdefault(m, {})[chk.id] = run_check(chk, mctx)

    def evaluate_all(self, progress: Callable[[str, int, int], None] | None = None) -> list[VmResult]:
        out: list[VmResult] = []
        names = [n for n in self.hosts]
        total = sum(len(self.hosts[n].guests) for n in names if self.hosts[n].ok)
        done = 0
        for n in names:
            out.extend(self.evaluate_host(n))
            done += len(self.hosts[n].guests) if self.hosts[n].ok else 0
            if progress:
                progress("checking guests", done, total)
        return out


# ------------------------------------------------------- the audit's checking step


_FORKED: tuple | None = None  # (hosts, plan, checks) for the worker processes, inherited through fork


def check_fleet(hosts: dict[str, HostProbe], plan: AuditPlan, jobs: int | None = None,
                progress: Callable[[str, int, int], None] | None = None,
                checks: list[Check] | None = None) -> list[VmResult]:
    """The audit's checking step (what ``migcheck audit`` runs after probing): every guest against its
    candidate targets, in ``jobs`` worker processes (default: one per core, or none for a small fleet).

    The checking is CPU-bound Python, so threads would not help. The workers are forked after the
    probe, so they inherit the probed fleet instead of receiving it; each evaluates a run of source
    hosts with its own Evaluator and sends its results back. The results are those of one process,
    in the same order: each guest's evaluation depends only on the hosts and the plan, never on what
    was evaluated before it (the caches only save parsing). Without fork (or with one job, or a small
    fleet) it runs here.
    """
    import multiprocessing as mp
    import os

    names = [n for n in hosts if hosts[n].ok]
    weight = {n: len(hosts[n].guests) * max(1, len(plan.candidates.get(n, []))) for n in names}
    total_w = sum(weight.values())
    if jobs is None:  # a small fleet is checked sooner than workers start
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        jobs = cores if total_w >= 2000 else 1
    if jobs <= 1 or len(names) < 2 or "fork" not in mp.get_all_start_methods():
        return Evaluator(hosts, plan, checks=checks).evaluate_all(progress)
    # runs of consecutive hosts, about 8 per worker: enough to even out, few enough to stay cheap
    chunks: list[list[str]] = [[]]
    step = max(1, total_w // (jobs * 8))
    acc = 0
    for n in names:
        if acc >= step and chunks[-1]:
            chunks.append([])
            acc = 0
        chunks[-1].append(n)
        acc += weight[n]
    global _FORKED
    import gc

    # one guest here first: every module the checks import lazily is imported before the fork (a
    # probe thread still closing its connection must not leave an import half done in a worker)
    first = next(iter(hosts[names[0]].guests.values()), None)
    if first is not None:
        Evaluator(hosts, plan, checks=checks).evaluate_guest(hosts[names[0]], first)
    _FORKED = (hosts, plan, checks)
    gc.collect()
    gc.freeze()  # the workers' collector leaves the inherited objects alone: their pages stay shared
    total = sum(len(hosts[n].guests) for n in names)
    out: list[VmResult] = []
    done = 0
    try:
        with mp.get_context("fork").Pool(min(jobs, len(chunks))) as pool:
            for chunk, part in zip(chunks, pool.imap(_check_chunk, chunks)):
                out.extend(part)
                done += sum(len(hosts[n].guests) for n in chunk)
                if progress:
                    progress("checking guests", done, total)
    finally:
        _FORKED = None
        gc.unfreeze()
    return out


def _check_chunk(names: list[str]) -> list[VmResult]:
    hosts, plan, checks = _FORKED
    ev = Evaluator(hosts, plan, checks=checks)
    out: list[VmResult] = []
    for n in names:
        out.extend(ev.evaluate_host(n))
    return out
