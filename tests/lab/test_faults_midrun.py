"""Faults mid-run (issue 16, item 2): for the pair check and for the fleet audit, against real lab
hosts, a host's libvirtd or sshd frozen (SIGSTOP) before or during the probe, killed mid-probe,
its link set down mid-probe, and a guest destroyed or migrated away mid-probe.

Each run must end within its bound, say "unknown" (exit 3) for what could not be checked, keep
the rest of the audit as a run without the fault has it, print no traceback, and leave no process
behind (migcheck runs in a session of its own; none of that session may outlive it).

    pair check  (--timeout PAIR_T):   bound PAIR_T + SLACK seconds
    audit       (--timeout AUDIT_T):  bound 2 * AUDIT_T + SLACK seconds (two phases, each with its deadline)
    guest faults (--timeout GUEST_T): the same with GUEST_T (room for the migration while migcheck is held)

plus, for the faults applied mid-run, the time migcheck was held still while the fault was applied
(below). "During" means at a named stage: migcheck runs with MIGCHECK_TRACE=1, and when the trace
line of that stage appears migcheck itself is stopped (SIGSTOP), the fault applied, and migcheck
continued (SIGCONT), so the fault lands between that stage's start and the rest of the probe
whatever the machine's load. Every fault is undone in a finally, and each test ends with every
host answering again.

    mid-a  source of the pair; in the audit's group
    mid-b  target of the pair; in the audit's group
    mid-c  in the audit's group: the host the audit's faults hit
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.audit_lab import MIGCHECK
from tests.lab.fixtures import require_lab
from tests.lab.host import netns_pids

pytestmark = pytest.mark.lab

PREFIX = "mcmid"
SUBNET = "10.251.77.96/27"
STATE_DIR = Path("/var/tmp/migcheck-lab-mcmid")
HOSTS = ["mid-a", "mid-b", "mid-c"]
GUESTS = {"vm-a": "mid-a", "vm-b": "mid-b", "vm-c": "mid-c"}  # one running (paused) guest on each

MIGRATE_TO = "mid-b"
PAIR_T = 4.0
AUDIT_T = 4.0
GUEST_T = 20.0  # the guest faults: migcheck is held still while a guest is destroyed or migrated (seconds)
SLACK = 6.0  # Python's start, the imports, the report: measured ~1-2 s on an idle machine
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ the lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()
    ours, main = STATE_DIR / "cache", Path("/var/tmp/migcheck-lab/cache")
    if not ours.exists() and main.is_dir():
        shutil.copytree(main, ours, dirs_exist_ok=True)
    lab = Lab([HostSpec(h) for h in HOSTS], prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)
    with lab:
        inodes = lab.netns_inodes()
        for vm, host in GUESTS.items():
            h = lab.host(host)
            h.write_file(f"/var/lib/libvirt/images/{vm}.xml", lab.guest_xml(vm))
            h.virsh("define", f"/var/lib/libvirt/images/{vm}.xml")
            h.virsh("start", "--paused", vm, timeout=120)
        yield lab
    left = lab.leftovers(inodes)
    assert not left, f"lab teardown left: {left}"


def _answers(lab: Lab, name: str) -> bool:
    p = subprocess.run(["virsh", "-c", lab.host(name).uri, "version"], capture_output=True, text=True, timeout=30)
    return p.returncode == 0


@pytest.fixture(autouse=True)
def healthy(lab):
    """Every host answers, before and after each test; every guest is where it started, paused."""
    yield
    for name in HOSTS:
        end = time.monotonic() + 20
        while not _answers(lab, name) and time.monotonic() < end:
            time.sleep(0.5)
        assert _answers(lab, name), f"{name} does not answer after the test: {lab.host(name).log_tail()}"
    for vm, host in GUESTS.items():
        state = lab.host(host).virsh("domstate", vm, check=False).stdout.strip()
        assert state == "paused", f"{vm} on {host}: {state!r}"


# ------------------------------------------------------------------ faults and how they are undone


def daemon_pids(host, comm: str) -> list[int]:
    out = []
    for pid in netns_pids(host.netns):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                out.append(pid)
        except OSError:
            pass
    return out


def _gone(host, comm: str, timeout: float = 5) -> bool:
    """Wait until no live process of that name is left in the host (killed ones are reaped meanwhile)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = []
        for pid in daemon_pids(host, comm):
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
            except OSError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class Fault:
    """One fault on one host: apply() makes it, restore() undoes it (idempotent, always run)."""

    lab: Lab
    kind: str  # libvirtd-stop | libvirtd-kill | sshd-stop | sshd-kill | link-down | guest-destroy | guest-migrate
    host: str
    vm: str = ""
    stopped: list[int] = field(default_factory=list)
    killed: bool = False
    moved: bool = False
    destroyed: bool = False

    def apply(self) -> None:
        h = self.lab.host(self.host)
        daemon = self.kind.split("-")[0]
        if self.kind in ("libvirtd-stop", "sshd-stop"):
            self.stopped = daemon_pids(h, daemon)
            assert self.stopped, f"no {daemon} on {self.host}"
            _signal(self.stopped, signal.SIGSTOP)
        elif self.kind in ("libvirtd-kill", "sshd-kill"):
            pids = daemon_pids(h, daemon)  # sshd: the listener and every session's process
            assert pids, f"no {daemon} on {self.host}"
            self.killed = True
            _signal(pids, signal.SIGKILL)
        elif self.kind == "link-down":
            subprocess.run(["ip", "link", "set", h.veth, "down"], check=True, timeout=10)
        elif self.kind == "guest-destroy":
            self.destroyed = True
            h.virsh("destroy", self.vm)
        elif self.kind == "guest-migrate":
            self.moved = True  # to mid-b: the pair's target, and a host of the audit
            p = self.lab.migrate(h, self.lab.host(MIGRATE_TO), self.vm, ["--live"], timeout=60)
            assert p.returncode == 0, p.stderr
        else:
            raise ValueError(self.kind)

    def restore(self) -> None:
        h = self.lab.host(self.host)
        if self.stopped:
            _signal(self.stopped, signal.SIGCONT)
        if self.killed and self.kind == "libvirtd-kill" and _gone(h, "libvirtd"):
            h._daemon(["taskset", "-c", "0", "libvirtd", "-d"])
        if self.killed and self.kind == "sshd-kill" and _gone(h, "sshd"):
            h._daemon(["/usr/sbin/sshd", "-f", str(h.dir / "sshd_config"), "-E", str(h.dir / "sshd.log")])
        if self.kind == "link-down":
            subprocess.run(["ip", "link", "set", h.veth, "up"], check=True, timeout=10)
        if self.moved:
            p = self.lab.migrate(self.lab.host(MIGRATE_TO), h, self.vm, ["--live"], timeout=60)
            assert p.returncode == 0, p.stderr
        if self.destroyed:
            h.virsh("start", "--paused", self.vm, timeout=120)
        end = time.monotonic() + 20  # libvirtd and sshd back: they answer over the network again
        while not _answers(self.lab, self.host) and time.monotonic() < end:
            time.sleep(0.3)


# ------------------------------------------------------------------ running migcheck with a fault in the middle


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str  # without the trace lines
    trace: list[str]
    seconds: float
    fired_at: float | None  # when the fault was applied (seconds after the start), None if never
    held: float  # how long migcheck was held still while the fault was applied
    outlived: list[str]  # processes of migcheck's session still there after it ended

    @property
    def report(self) -> dict:
        import json

        return json.loads(self.stdout) if self.stdout.strip() else {}


def _session_processes(sid: int) -> list[str]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:150]
                out.append(f"{pid} {argv!r}")
        except (OSError, IndexError, ValueError):
            pass
    return out


def run_with_fault(args: list[str], trigger: str | None = None, act: Callable[[], None] | None = None,
                   limit: float = 120) -> Run:
    """migcheck ARGS with MIGCHECK_TRACE=1; at the first trace line matching ``trigger`` (a regex),
    migcheck is stopped, ``act()`` applied, migcheck continued."""
    env = dict(os.environ, MIGCHECK_TRACE="1")
    t0 = time.monotonic()
    p = subprocess.Popen([*MIGCHECK, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)
    reader.start()
    watchdog = threading.Timer(limit, p.kill)  # a hang fails the bound below, and never hangs the test
    watchdog.start()
    trace, err, fired, held = [], [], None, 0.0
    try:
        for line in p.stderr:
            if line.startswith("migcheck trace "):
                trace.append(line.rstrip("\n"))
                if fired is None and trigger is not None and re.search(trigger, line):
                    fired = time.monotonic() - t0
                    os.kill(p.pid, signal.SIGSTOP)
                    try:
                        if act is not None:
                            act()
                    finally:
                        os.kill(p.pid, signal.SIGCONT)
                        held = time.monotonic() - t0 - fired
            else:
                err.append(line)
        p.wait(timeout=limit)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    seconds = time.monotonic() - t0
    reader.join(10)
    end = time.monotonic() + 2  # a child that closes as migcheck ends gets two seconds
    while _session_processes(p.pid) and time.monotonic() < end:
        time.sleep(0.1)
    outlived = _session_processes(p.pid)
    _signal([int(x.split()[0]) for x in outlived], signal.SIGKILL)
    return Run(p.returncode, "".join(out), "".join(err), trace, round(seconds, 2),
               None if fired is None else round(fired, 2), round(held, 2), outlived)


def with_fault(fault: Fault, when: str, args: list[str], trigger: str) -> Run:
    try:
        if when == "before":
            fault.apply()
            run = run_with_fault(args)
        else:
            run = run_with_fault(args, trigger, fault.apply)
            assert run.fired_at is not None, f"the trigger {trigger!r} never came:\n" + "\n".join(run.trace)
    finally:
        fault.restore()
    return run


def assert_common(run: Run, bound: float, what: str) -> None:
    print(f"\n  {what}: exit {run.code} in {run.seconds}s (bound {bound:g}s + held {run.held}s; "
          f"fault {'before the run' if run.fired_at is None else f'at {run.fired_at}s'}): {run.stderr.strip()[:400]}")
    assert "Traceback" not in run.stdout + run.stderr + "\n".join(run.trace), run.stderr
    assert run.seconds < bound + run.held, f"took {run.seconds}s (bound {bound}s + {run.held}s held)"
    assert not run.outlived, f"outlived migcheck: {run.outlived}"
    lines = run.stderr.splitlines()
    assert all(ln.startswith("migcheck: ") and len(ln) <= 1000 for ln in lines), lines


# ------------------------------------------------------------------ the pair check

# the trace line of a stage the pair runs after its connections are open and the guest's XML read
PAIR_STAGE = {"source": r"\bsource\s+asking for domain capabilities and CPU comparisons",
              "target": r"\btarget\s+asking for domain capabilities, paths and image headers"}
ROLE_HOST = {"source": "mid-a", "target": "mid-b"}

HOST_FAULTS = [("libvirtd-stop", "before"), ("libvirtd-stop", "during"), ("libvirtd-kill", "during"),
               ("sshd-stop", "before"), ("sshd-stop", "during"), ("sshd-kill", "during"), ("link-down", "during")]


def pair_args(timeout: float = PAIR_T) -> list[str]:
    return ["mid-a", "mid-b", "vm-a", "--live", "--timeout", f"{timeout:g}", "--format", "json"]


def test_pair_without_a_fault_is_ok(lab):
    """The baseline: what the faults below turn into 'unknown'."""
    run = run_with_fault(pair_args())
    assert (run.code, run.report.get("verdict")) == (0, "ok"), run.stdout[-2000:] + run.stderr
    assert not run.outlived and "Traceback" not in run.stderr
    print(f"\n  no fault: exit 0 in {run.seconds}s")


@pytest.mark.parametrize("role", ["source", "target"])
@pytest.mark.parametrize("kind,when", HOST_FAULTS, ids=[f"{k}-{w}" for k, w in HOST_FAULTS])
def test_pair_host_fault(lab, role, kind, when):
    host = ROLE_HOST[role]
    run = with_fault(Fault(lab, kind, host), when, pair_args(), PAIR_STAGE[role])
    assert_common(run, PAIR_T + SLACK, f"pair, {kind} {when} on the {role} {host}")
    report = run.report
    assert run.code == 3, (run.code, run.stdout[-1500:])
    assert report["verdict"] == "unknown" and report["exit_code"] == 3, report
    lines = run.stderr.splitlines()
    if lines:  # the probe failed: one line naming the host
        assert len(lines) == 1 and lines[0].startswith(f"migcheck: {host}"), lines
    else:  # the probe ended, with what could not be asked: unknown findings say so
        unknown = [f for f in report["findings"] if f["severity"] == "unknown"]
        print("  unknown findings: " + "; ".join(f"{f['rule']}: {f['message'][:120]}" for f in unknown))
        assert unknown, report["findings"]


@pytest.mark.parametrize("kind", ["guest-destroy", "guest-migrate"])
def test_pair_guest_fault(lab, kind):
    """After the guest's facts were read: the source checks at the end that it is still the same guest."""
    run = with_fault(Fault(lab, kind, "mid-a", vm="vm-a"), "during", pair_args(GUEST_T), PAIR_STAGE["source"])
    assert_common(run, GUEST_T + SLACK, f"pair, {kind} during the probe")
    assert run.code == 3, (run.code, run.stdout[-1500:])
    assert run.report["verdict"] == "unknown", run.report
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("migcheck: mid-a") and "'vm-a' changed while" in lines[0], lines


# ------------------------------------------------------------------ the audit

AUDIT_STAGE = r"\baudit-mid-c\s+gathering guest 1/"  # phase 1, mid-c's connections open, reading its guests
AUDIT_AFTER_GUESTS = r"\baudit-mid-c\s+domain capabilities for its guests"  # mid-c's guests were read


def audit_args(tmp: Path, timeout: float = AUDIT_T) -> list[str]:
    inv = tmp / "fleet.yml"
    inv.write_text("groups:\n  lab: [" + ", ".join(HOSTS) + "]\n")
    return ["audit", str(inv), "--live", "--format", "json", "--no-db", "--timeout", f"{timeout:g}"]


def cells(data: dict) -> dict[tuple[str, str, str], tuple[str, list]]:
    return {(g["name"], g["host"], c["host"]): (c["verdict"], c["findings"]) for g in data["guests"] for c in g["targets"]}


@pytest.fixture(scope="module")
def baseline(lab, tmp_path_factory) -> dict:
    run = run_with_fault(audit_args(tmp_path_factory.mktemp("audit-baseline")))
    assert run.code == 0 and not run.outlived, run.stdout[-2000:] + run.stderr
    data = run.report
    assert all(h["state"] == "ok" for h in data["hosts"]), data["hosts"]
    got = cells(data)
    assert len(got) == 6 and all(v == "ok" for v, _ in got.values()), got
    print(f"\n  audit, no fault: exit 0 in {run.seconds}s")
    return data


def assert_rest_intact(data: dict, baseline: dict, lost_host: str | None, lost_vm: str | None = None) -> None:
    """Every cell that does not involve the lost host (or guest) is as the run without the fault has it;
    every cell whose target is the lost host is unknown."""
    want, got = cells(baseline), cells(data)
    for key, cell in want.items():
        vm, src, dst = key
        if vm == lost_vm or src == lost_host:
            continue
        assert key in got, f"{key} missing from the audit"
        if dst == lost_host:
            assert got[key][0] == "unknown", (key, got[key])
        else:
            assert got[key] == cell, (key, got[key], cell)


@pytest.mark.parametrize("kind,when", HOST_FAULTS, ids=[f"{k}-{w}" for k, w in HOST_FAULTS])
def test_audit_host_fault(lab, baseline, tmp_path, kind, when):
    run = with_fault(Fault(lab, kind, "mid-c"), when, audit_args(tmp_path), AUDIT_STAGE)
    assert_common(run, 2 * AUDIT_T + SLACK, f"audit, {kind} {when} on mid-c")
    data = run.report
    assert run.code == 3 and data["exit_code"] == 3, (run.code, run.stdout[-1500:])
    states = {h["name"]: h for h in data["hosts"]}
    print(f"  mid-c: {states['mid-c']['state']}: {states['mid-c']['error']}")
    assert states["mid-a"]["state"] == states["mid-b"]["state"] == "ok", states
    assert_rest_intact(data, baseline, "mid-c")
    vm_c = [g for g in data["guests"] if g["host"] == "mid-c"]
    print("  its guests: " + "; ".join(f"{g['name']} {g['status']}: {g['error']}" for g in vm_c))
    if states["mid-c"]["state"] != "ok":
        assert states["mid-c"]["error"] and "\n" not in states["mid-c"]["error"], states["mid-c"]
        assert any(ln.startswith("migcheck: mid-c: ") for ln in run.stderr.splitlines()), run.stderr
    assert all(g["status"] == "unknown" for g in vm_c) or states["mid-c"]["state"] == "target-failed", vm_c


@pytest.mark.parametrize("kind", ["guest-destroy", "guest-migrate"])
def test_audit_guest_fault(lab, baseline, tmp_path, kind):
    """vm-c destroyed on (or migrated away from) mid-c after mid-c's guests were read: its row is unknown,
    the rest of the audit as without the fault."""
    run = with_fault(Fault(lab, kind, "mid-c", vm="vm-c"), "during", audit_args(tmp_path, GUEST_T),
                     AUDIT_AFTER_GUESTS)
    assert_common(run, 2 * GUEST_T + SLACK, f"audit, {kind} of vm-c during the audit")
    data = run.report
    assert run.code == 3, (run.code, run.stdout[-1500:])
    assert all(h["state"] == "ok" for h in data["hosts"]), data["hosts"]
    row = next(g for g in data["guests"] if g["name"] == "vm-c" and g["host"] == "mid-c")
    assert row["status"] == "unknown" and "while it was being probed" in (row["error"] or ""), row
    assert_rest_intact(data, baseline, None, "vm-c")
