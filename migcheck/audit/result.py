"""An audit's result: the VM x host matrix, stuck guests, evacuable hosts, the exit code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from migcheck.audit.evaluate import ClassResult, VmResult, _materialize, _verdict_of_class
from migcheck.audit.fleet import HostProbe
from migcheck.audit.inventory import Inventory
from migcheck.report.model import Severity, Verdict

# A guest's status: where it can go.
OK, RISKY, UNKNOWN, STUCK = "ok", "risky", "unknown", "stuck"
STATUS_ORDER = {STUCK: 0, UNKNOWN: 1, RISKY: 2, OK: 3}

EXIT_OK, EXIT_STUCK, EXIT_USAGE, EXIT_UNKNOWN, EXIT_RISKY = 0, 1, 2, 3, 4


@dataclass
class Cell:
    target: str
    verdict: Verdict
    blockers: list[tuple[str, str, str]]  # (rule, severity, message) of block, unknown and risk findings


@dataclass
class VmRow:
    vm: VmResult
    cells: list[Cell]
    status: str

    @property
    def key(self) -> str:
        """What identifies a guest across runs (it may have moved): its UUID, else its name."""
        return self.vm.uuid or f"name:{self.vm.name}"

    def targets_with(self, verdict: Verdict) -> list[str]:
        return [c.target for c in self.cells if c.verdict == verdict]


@dataclass
class HostRow:
    name: str
    spec: str
    state: str  # ok | failed | target-failed
    error: str | None
    groups: list[str]
    vms: list[VmRow] = field(default_factory=list)

    @property
    def stuck(self) -> list[VmRow]:
        return [r for r in self.vms if r.status == STUCK]

    @property
    def evacuable(self) -> str:
        """yes: every guest has an ok target; risk: some only risky ones; unknown; no: a guest is stuck."""
        if self.state == "failed":
            return UNKNOWN
        statuses = {r.status for r in self.vms}
        if STUCK in statuses:
            return "no"
        if UNKNOWN in statuses:
            return UNKNOWN
        if RISKY in statuses:
            return "risk"
        return "yes"

    def where_to(self) -> list[tuple[str, int]]:
        """Targets by how many of this host's guests they accept (verdict ok)."""
        c: Counter[str] = Counter()
        for r in self.vms:
            for t in r.targets_with(Verdict.OK):
                c[t] += 1
        return c.most_common()


def _cells(vm: VmResult, hosts: dict[str, HostProbe]) -> list[Cell]:
    per_class: dict[int, tuple[Verdict, list[tuple[str, str, str]]]] = {}
    out = []
    for t, ci in zip(vm.targets, vm.cell_class):
        cr: ClassResult = vm.classes[ci]
        if cr.per_member:
            verdict = _verdict_of_class(cr, t)
            blockers = _blockers(cr, t, hosts[t].spec)
        else:
            if ci not in per_class:
                per_class[ci] = (_verdict_of_class(cr, t), _blockers(cr, t, None))
            verdict, blockers = per_class[ci]
            if any("\x00" in m for _, _, m in blockers):
                blockers = _blockers(cr, t, hosts[t].spec)
        out.append(Cell(t, verdict, blockers))
    return out


def _blockers(cr: ClassResult, target: str, spec: str | None) -> list[tuple[str, str, str]]:
    fs = _materialize(cr, target, spec if spec is not None else "\x00migcheck-audit-target\x00")
    return [(f.rule, f.severity.value, f.message) for f in fs
            if f.severity in (Severity.BLOCK, Severity.UNKNOWN, Severity.RISK)]


def vm_status(vm: VmResult, cells: list[Cell]) -> str:
    verdicts = {c.verdict for c in cells}
    if vm.error is not None:
        return UNKNOWN
    if Verdict.OK in verdicts:
        return OK
    if Verdict.RISKY in verdicts:
        return RISKY
    if Verdict.UNKNOWN in verdicts:
        return UNKNOWN
    return STUCK  # blocked everywhere, or nowhere to go


@dataclass
class AuditResult:
    inventory: Inventory
    hosts: dict[str, HostProbe]
    vms: list[VmResult]
    flags: list[str]
    started: float
    finished: float
    checks_run: int
    rows: list[VmRow] = field(default_factory=list)
    host_rows: dict[str, HostRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, h in self.hosts.items():
            state = "failed" if h.error else "target-failed" if h.target_error else "ok"
            inv = self.inventory.hosts.get(name)
            self.host_rows[name] = HostRow(name=name, spec=h.spec, state=state, error=h.error or h.target_error,
                                           groups=list(inv.groups) if inv else [])
        for vm in self.vms:
            cells = _cells(vm, self.hosts)
            row = VmRow(vm=vm, cells=cells, status=vm_status(vm, cells))
            self.rows.append(row)
            self.host_rows[vm.host].vms.append(row)

    @property
    def duration(self) -> float:
        return self.finished - self.started

    @property
    def failed_hosts(self) -> list[HostRow]:
        return [h for h in self.host_rows.values() if h.state != "ok"]

    @property
    def unprobed_hosts(self) -> list[HostRow]:
        """Hosts not probed at all: their guests are in no row (a host failed only as a target still has its own)."""
        return [h for h in self.host_rows.values() if h.state == "failed"]

    @property
    def nothing_checked(self) -> bool:
        """No host could be probed: no guest was checked, so none can be said to have somewhere to go."""
        return bool(self.host_rows) and len(self.unprobed_hosts) == len(self.host_rows)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def pairs(self) -> int:
        return sum(len(r.cells) for r in self.rows)

    @property
    def exit_code(self) -> int:
        """1: some guest is stuck; 3: a host could not be probed or a guest not checked;
        4: some guest can only move with a risk; 0: every guest can move and every host answered."""
        if self.count(STUCK):
            return EXIT_STUCK
        if self.failed_hosts or self.count(UNKNOWN):
            return EXIT_UNKNOWN
        if self.count(RISKY):
            return EXIT_RISKY
        return EXIT_OK
