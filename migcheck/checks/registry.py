"""The check registry and the engine that runs checks over a pair of hosts.

A check is a pure function of facts: ``fn(ctx) -> iterable of Hit``.  It never
does I/O.  When a fact it needs is missing it calls ``ctx.need(...)``, which
raises :class:`FactMissing`; the engine turns that (and any other exception)
into an "unknown" finding for that check, never into a pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

from migcheck.facts.host import GuestFacts, HostFacts
from migcheck.facts.hostfiles import QEMU_CONF, QemuConf
from migcheck.facts.models import Domain
from migcheck.flags import MigrationFlags
from migcheck.probe.plan import ProbePlan, Question
from migcheck.report.model import Finding, Severity

if TYPE_CHECKING:
    from migcheck.destxml import MigrationXml

T = TypeVar("T")


class FactMissing(Exception):
    """A fact the check needs was not gathered (or could not be parsed)."""


class NotApplicable(Exception):
    """The check does not apply to this guest/flags: a silent pass."""


@dataclass
class Hit:
    """One problem a check found; the engine adds the rule ID and default severity."""

    message: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None
    severity: Severity | None = None  # overrides the check's default severity
    rule: str | None = None  # reports under another check's ID (QEMU's own blockers mapped to checks)


def path_not_checked(ctx: "CheckContext", message: str) -> Hit:
    """A target path the probe could not stat: unknown, with the probe's reason as evidence."""
    return Hit(message=message, evidence=[ctx.target.errors.get("paths", "")], fix="allow SSH access to the target",
               severity=Severity.UNKNOWN)


@dataclass
class CheckContext:
    source: HostFacts
    target: HostFacts
    flags: MigrationFlags
    # --xml / --persistent-xml as read from the files they name (migcheck.destxml); None without them
    migration_xml: "MigrationXml | None" = None

    def need(self, value: T | None, fact: str, host: HostFacts | None = None) -> T:
        """Return value, or raise FactMissing naming the fact and why it is missing."""
        if value is None:
            why = ""
            if host is not None:
                why = host.error_about(fact)
                why = f": {why}" if why is not None else ""
                raise FactMissing(f"{fact} of {host.spec} not available{why}")
            raise FactMissing(f"{fact} not available")
        return value

    def qemu_conf(self, host: HostFacts) -> QemuConf:
        """The host's qemu.conf (empty when it has none), or FactMissing saying why it could not be read."""
        if host.qemu_conf is None:
            raise FactMissing(f"{QEMU_CONF} of {host.spec}: "
                              + (host.errors.get("host_files") or host.errors.get(f"file:{QEMU_CONF}", "not read")))
        return host.qemu_conf

    @property
    def guest(self) -> GuestFacts:
        return self.need(self.source.guest, "guest", self.source)

    @property
    def domain(self) -> Domain:
        """The definition the target will run: the --xml one when given (and parsed), else the running one.

        What libvirt sends the target is that XML; it already refused it in the Begin phase if its ABI differs
        from the running guest's (flags.destination-xml), so devices, machine and CPU are the running ones and
        what may differ is what the target host must provide: bridges, networks, paths, pinning."""
        mx = self.migration_xml
        if mx is not None and mx.domain is not None:
            # the guest CPU is part of the ABI libvirt holds equal (virCPUDefIsEqual), and the probe compared the
            # running one with both hosts: keep it (a dumpxml --migratable <cpu> is written otherwise)
            return mx.domain.model_copy(update={"cpu": self.running.cpu})
        return self.running

    @property
    def running(self) -> Domain:
        """The guest's live definition on the source (its inactive one when it is shut off): what libvirt's
        source-side checks (qemuMigrationSrcIsAllowed, qemuMigrationSrcIsSafe) judge."""
        g = self.guest
        if g.live is None and "domain_xml" in self.source.errors:
            # the live XML was refused (hostile, truncated): the inactive one is not what runs
            return self.need(None, "domain_xml", self.source)
        dom = g.live or g.inactive
        return self.need(dom, "domain_xml", self.source)


CheckFn = Callable[[CheckContext], Iterable[Hit]]


@dataclass
class Check:
    id: str
    severity: Severity
    title: str
    fn: CheckFn
    family: str
    # the lab tests (pytest node ids, "tests/lab/test_x.py::test_name") where real migrations prove its verdicts
    proven_by: tuple[str, ...] = ()
    also: tuple[Severity, ...] = ()  # other severities its findings may carry besides unknown and info
    # the libvirt/QEMU error texts its failure shows as: (rank, regex) pairs, lowest rank first (checks.errors)
    explains: tuple[tuple[int, str], ...] = ()
    # what the probe must ask the hosts for a guest so that this check can judge it (probe.plan)
    asks: tuple[Question, ...] = ()
    # the target's facts it reads (HostFacts field names, "caps.uuid", or a VIEWS name), and "guest.status"
    # when it reads the source guest's status XML: what the audit groups equal targets by
    reads: frozenset[str] = frozenset()

    @property
    def proven_by_lab(self) -> bool:
        """Whether a real migration in the lab proves it (the README table's "proven" column)."""
        return bool(self.proven_by)

    @property
    def severities(self) -> tuple[Severity, ...]:
        """Every severity a finding of this check may have apart from unknown and info, the declared one first."""
        return (self.severity, *(s for s in self.also if s != self.severity))

    @property
    def severity_label(self) -> str:
        """How `migcheck rules` and the README say it: "risk" or "risk, block"."""
        return ", ".join(s.value for s in self.severities)

    @property
    def doc(self) -> str:
        """The check's documentation page (checks/docs/ID.md), or its docstring."""
        try:
            return resources.files("migcheck.checks").joinpath("docs", f"{self.id}.md").read_text()
        except (FileNotFoundError, OSError):
            return (self.fn.__doc__ or self.title).strip()


REGISTRY: dict[str, Check] = {}

# Views a check may declare instead of the whole fact, when its verdict depends on the fact only this far;
# the audit puts that much of the fact in its class key (audit/evaluate.target_key), and the rest of the
# fact (the numbers a message quotes) makes it check per target once the view is not the harmless one.
VIEWS: dict[str, str] = {
    "caps.uuid~source": "whether the target's host UUID is the source's (platform.same-host)",
    "hostname~localhost": "the target's hostname when it could be localhost; any other hostname alike",
    "peers~guest": "the target's domains of this guest's name or UUID, not its other domains",
    "pools~layout": "the pools' names, types, states and target paths, not their free space",
    "memory~fits": "whether the guest fits in the target's MemTotal and MemAvailable; the numbers if not",
    "mounts~disks": "the target's mounts that hold the guest's disk paths, not its other mounts",
    "boot_id~source": "whether the target runs on the source's kernel (the same boot_id), not the id",
}

# A read may also be conditional, "FACT?CONDITION": the check reads FACT only where the named condition holds
# (@condition in the check's module: a predicate of the guest's definition, the migration flags and the
# target's facts, of which it may read only what the audit's class key holds exactly: qemu.conf, versions,
# capabilities, ...); elsewhere it reads nothing of FACT, and the audit need not tell targets apart by it.
CONDITIONS: dict[str, Callable[[Domain, MigrationFlags, "HostFacts | None"], bool]] = {}


def condition(name: str) -> Callable:
    """Register a guest condition for conditional reads (see CONDITIONS)."""
    def deco(fn: Callable[[Domain, MigrationFlags, "HostFacts | None"], bool]) -> Callable:
        CONDITIONS[name] = fn
        return fn

    return deco


def reads_for(chk: "Check", dom: Domain | None, flags: MigrationFlags, target: HostFacts | None = None) -> frozenset[str]:
    """What a check reads for this guest (and target): its plain reads, and the conditional ones whose condition
    holds (all of them when the guest is not known)."""
    out = set()
    for r in chk.reads:
        fact, _, cond = r.partition("?")
        if not cond or dom is None or CONDITIONS[cond](dom, flags, target):
            out.add(fact)
    return frozenset(out)
# read by every check that names the target, and put back per target by the audit (findings quote it)
FREE_READS = frozenset({"spec"})
SOURCE_STATUS = "guest.status"  # the source guest's status XML (and its parse error), only parsed when read


def check(id: str, severity: Severity, title: str, proven_by: tuple[str, ...] = (),
          also: tuple[Severity, ...] = (), explains: dict[int, str] | None = None,
          asks: tuple[Question, ...] = (), reads: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under a stable ID. `proven_by` names the lab tests (pytest node ids; a
    parametrized test without its [param] part) whose real migrations prove it; a unit test keeps them
    existing. `also` names the other severities it may emit (a risk that becomes a block when the numbers
    leave no doubt); unknown and info need no saying.

    `explains` maps a rank to a regex (searched case-insensitively) of an error text a failed migration
    shows when this check's problem is there: ``migcheck migrate`` and the lab pairing name the check from
    it (:mod:`migcheck.checks.errors`). A text may belong to several checks; they are listed lowest rank
    first, over every check, so a more specific pattern gets a lower rank than a broader one another check
    has (a loader's "libvirt-pflash0 ... Could not open '" before a disk's "Could not open '"). Ranks are
    unique over the registry (a unit test says so): the order is stated, not left to import order.

    `asks` lists the questions only the hosts can answer for this guest (paths to stat, CPU definitions
    to compare: :mod:`migcheck.probe.plan`); the probe asks the union of every check's questions.

    `reads` names every fact of the *target* the check reads (a HostFacts field: "memory", "paths",
    "caps" for the capabilities without the host UUID, "caps.uuid"; or one of :data:`VIEWS` where the
    check's verdict depends on a fact only that far), and "guest.status" if it reads the source guest's
    status XML. The audit checks a guest once per class of targets equal in what its checks read (unit
    tests fail when a check reads a fact it does not declare). Reading the target's spec is free."""
    if isinstance(reads, str):
        raise TypeError(f"{id}: reads is a tuple of fact names, not one string")
    if isinstance(proven_by, str):
        raise TypeError(f"{id}: proven_by is a tuple of test node ids, not one string")
    ranked = tuple(sorted((explains or {}).items()))
    for rank, pattern in ranked:
        if not isinstance(rank, int) or not isinstance(pattern, str):
            raise TypeError(f"{id}: explains maps an int rank to a regex string, got {rank!r}: {pattern!r}")
        re.compile(pattern, re.I)  # a bad pattern fails at import, naming no text

    def deco(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"duplicate check id {id}")
        family = fn.__module__.rsplit(".", 1)[-1]
        REGISTRY[id] = Check(id=id, severity=severity, title=title, fn=fn, family=family, proven_by=tuple(proven_by),
                             also=tuple(also), explains=ranked, asks=tuple(asks), reads=frozenset(reads))
        return fn

    return deco


def all_checks() -> list[Check]:
    from migcheck import checks  # noqa: F401  (imports every family, filling REGISTRY)

    checks.load_all()
    return sorted(REGISTRY.values(), key=lambda c: c.id)


_EVERY_CHECK_PLAN: list[ProbePlan] = []


def probe_plan(checks: Iterable[Check] | None = None) -> ProbePlan:
    """What the probe asks the hosts, for these checks (every check by default, built once)."""
    if checks is not None:
        return ProbePlan(q for c in checks for q in c.asks)
    if not _EVERY_CHECK_PLAN:
        _EVERY_CHECK_PLAN.append(ProbePlan(q for c in all_checks() for q in c.asks))
    return _EVERY_CHECK_PLAN[0]


COULD_NOT_CHECK = "could not check: "
MISSING_FIX = "make the missing fact available (see -v) and run migcheck again"
UNAVAILABLE = "facts.unavailable"  # several checks that could not run for one missing fact, as one finding
PROBE_FAILED = "probe.failed"  # a host could not be probed: the one finding of its report

# The findings that name no check (their pages are in checks/docs too; `migcheck explain` shows them)
NOT_CHECKS = {PROBE_FAILED: "a host could not be probed, so nothing was checked",
              UNAVAILABLE: "several checks could not run for one missing fact"}


def not_check_doc(rule: str) -> str:
    """The page of a finding that names no check (NOT_CHECKS)."""
    return resources.files("migcheck.checks").joinpath("docs", f"{rule}.md").read_text()


def merge_unavailable(findings: list[Finding]) -> list[Finding]:
    """The findings, with the "could not check" findings that name the same missing fact merged into one.

    A guest whose XML cannot be parsed is one finding saying why (its evidence lists the checks
    that needed it), not one identical "unknown" row for each of the 39 checks that read the XML.
    """
    same: dict[str, list[Finding]] = {}
    for f in findings:
        if f.severity == Severity.UNKNOWN and f.message.startswith(COULD_NOT_CHECK) and f.fix == MISSING_FIX:
            same.setdefault(f.message, []).append(f)
    merged = {message: fs for message, fs in same.items() if len(fs) > 1}
    if not merged:
        return findings
    out: list[Finding] = []
    for f in findings:
        fs = merged.get(f.message)
        if fs is None or f.severity != Severity.UNKNOWN or f not in fs:
            out.append(f)
        elif f is fs[0]:
            out.append(Finding(rule=UNAVAILABLE, severity=Severity.UNKNOWN,
                               message=f"{len(fs)} checks could not run: {f.message[len(COULD_NOT_CHECK):]}",
                               evidence=["checks: " + ", ".join(sorted({x.rule for x in fs}))], fix=MISSING_FIX))
    return out


def run_check(chk: Check, ctx: CheckContext) -> list[Finding]:
    """One check's findings; a missing fact or a crash is an "unknown" finding, never a pass."""
    findings: list[Finding] = []
    try:
        for hit in chk.fn(ctx) or ():
            findings.append(
                Finding(
                    rule=hit.rule or chk.id,
                    severity=hit.severity or chk.severity,
                    message=hit.message,
                    evidence=hit.evidence,
                    fix=hit.fix,
                )
            )
    except NotApplicable:
        pass
    except FactMissing as exc:
        findings.append(
            Finding(rule=chk.id, severity=Severity.UNKNOWN, message=f"{COULD_NOT_CHECK}{exc}", fix=MISSING_FIX)
        )
    except Exception as exc:  # a crashing check is "unknown", never a pass
        findings.append(
            Finding(rule=chk.id, severity=Severity.UNKNOWN,
                    message=f"check failed internally: {type(exc).__name__}: {exc}",
                    fix="report this as a migcheck bug, with the saved probe (--save)")
        )
    return findings


def markdown_table(checks: list[Check]) -> str:
    """The check table of the README (a unit test keeps the two equal)."""
    rows = ["| check | severity | proven by a real migration | finds |", "|---|---|---|---|"]
    for c in checks:
        title = c.title.replace("|", "\\|").replace("<", "&lt;")
        rows.append(f"| `{c.id}` | {c.severity_label} | {'yes' if c.proven_by_lab else '-'} | {title} |")
    return "\n".join(rows) + "\n"


def run_checks(ctx: CheckContext, only: Iterable[str] | None = None) -> tuple[list[Finding], int]:
    selected = [c for c in all_checks() if only is None or c.id in set(only)]
    findings: list[Finding] = []
    for chk in selected:
        findings.extend(run_check(chk, ctx))
    return findings, len(selected)
