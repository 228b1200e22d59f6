"""Benchmark of the fleet audit (not a test): ``make bench-audit`` (and the second half of ``make bench``).

(a) lab: ``migcheck audit`` on the three-host audit lab (tests/lab/audit_lab.py, 15 guests, 30
    pairs), its verdicts checked against what the lab was built to show (a wrong one aborts), against
    - a competent per-host script: each host's facts fetched once, over one SSH connection per host
      (ControlMaster), a host's virsh calls batched in one virsh process, hosts in parallel;
    - the per-pair script: for every guest and target, both hosts' facts again, one connection per
      call, one call after the other (what the README's first figure compared with).
    Best of three runs each, alternating, in one run of this program. Needs root and the lab lock.
(b) synthetic: a fleet generated from the libvirt corpus (tests/unit/fleetgen_corpus.py: the corpus's
    x86 KVM guest XMLs, host profiles from its CPUs and QEMU versions, per-host drift), 10,000 hosts
    and 100,000 guests in clusters of 25, through check_fleet, the function ``migcheck audit`` checks
    with after probing (worker processes, one per core). Verdicts are first checked pair by pair
    against ``migcheck SRC DST VM`` on a small fleet of the same data. Reports wall, CPU (with the
    workers') and peak RSS (main process, largest worker); the data generation is timed apart.

    python -m tests.bench.bench_audit [--lab] [--synthetic] [--hosts N] [--guests N] [--group-size N]
                                      [--batch-hosts N] [--workers N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------- (a) lab


def plain_script(guests: dict[str, tuple[str, str, bool]], hosts: list[str]) -> int:
    """What one would script by hand: for every guest and every other host, ask virsh and ssh."""
    calls = 0

    def run(argv: list[str]) -> str:
        nonlocal calls
        calls += 1
        return subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout

    def virsh(host: str, *args: str) -> str:
        return run(["virsh", "-c", f"qemu+ssh://root@{host}/system?no_tty=1", *args])

    def ssh(host: str, cmd: str) -> str:
        return run(["ssh", "-o", "BatchMode=yes", host, cmd])

    for vm, (src, _, _) in guests.items():
        for dst in hosts:
            if dst == src:
                continue
            # the guest, on its source
            live = virsh(src, "dumpxml", vm)
            virsh(src, "dumpxml", "--inactive", vm)
            virsh(src, "domstate", "--reason", vm)
            virsh(src, "dominfo", vm)
            virsh(src, "domjobinfo", vm)
            virsh(src, "snapshot-list", "--name", vm)
            ssh(src, f"cat /proc/$(cat /run/libvirt/qemu/{shlex.quote(vm)}.pid)/cmdline; "
                     f"cat /run/libvirt/qemu/{shlex.quote(vm)}.xml; tail -c 16384 /var/log/libvirt/qemu/{shlex.quote(vm)}.log")
            virsh(src, "capabilities")
            virsh(src, "version")
            virsh(src, "domcapabilities")
            ssh(src, "cat /proc/meminfo /proc/self/mountinfo /sys/devices/system/cpu/online /etc/libvirt/qemu.conf")
            # the target
            virsh(dst, "capabilities")
            virsh(dst, "version")
            virsh(dst, "hostname")
            virsh(dst, "domcapabilities")
            virsh(dst, "list", "--all", "--name", "--uuid")
            virsh(dst, "net-list", "--all")
            virsh(dst, "nwfilter-list")
            virsh(dst, "secret-list")
            virsh(dst, "pool-list", "--all", "--details")
            virsh(dst, "freecell")
            ssh(dst, "cat /proc/meminfo /proc/self/mountinfo /sys/devices/system/cpu/online /sys/devices/system/node/online "
                     "/proc/net/fib_trie /proc/net/if_inet6 /etc/libvirt/qemu.conf")
            paths = ["/usr/bin/qemu-system-x86_64", "/etc/pki/qemu/ca-cert.pem", "/etc/pki/qemu/server-cert.pem",
                     "/etc/pki/qemu/server-key.pem"]
            if "bridge='br-prod'" in live:
                paths.append("/sys/class/net/br-prod")
            if "/srv/only-" in live:
                paths.append("/srv/only-a" if "only-a" in live else "/srv/only-c")
            ssh(dst, "stat -c '%n %F %s %Y' " + " ".join(shlex.quote(p) for p in paths) + " 2>&1")
    return calls


class _Ssh:
    """One SSH connection per host (ControlMaster), every command of the script over it."""

    def __init__(self, host: str, control_dir: str):
        self.host = host
        self.opts = ["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
                     "-o", f"ControlPath={control_dir}/%r@%h:%p"]
        self.calls = 0

    def run(self, remote: str) -> str:
        """``remote`` is a shell command line for the host; every name in it went through shlex.quote."""
        self.calls += 1
        return subprocess.run(["ssh", *self.opts, self.host, remote], capture_output=True, text=True,
                              timeout=120).stdout

    def close(self) -> None:
        subprocess.run(["ssh", *self.opts, "-O", "exit", self.host], capture_output=True, timeout=30)


def _virsh_batch(commands: list[list[str]]) -> str:
    """One virsh process for many commands: ``virsh 'cmd1 ; echo MARK ; cmd2 ...'`` (virsh's own
    separator), the whole line quoted once more for the remote shell."""
    parts = []
    for i, argv in enumerate(commands):
        parts.append(" ".join(shlex.quote(a) for a in argv))
        parts.append(f"echo @@{i}@@")
    return "virsh -q -c qemu:///system " + shlex.quote(" ; ".join(parts))


def _split_batch(out: str, n: int) -> list[str]:
    """The outputs of the batched commands, by their markers (virsh does not always end a line before one)."""
    import re

    pieces = re.split(r"@@(\d+)@@\n?", out)  # text, index, text, index, ...
    chunks = pieces[0:-1:2]
    return (chunks + [""] * n)[:n]


HOST_FILES = ["/proc/meminfo", "/proc/self/mountinfo", "/sys/devices/system/cpu/online",
              "/sys/devices/system/node/online", "/proc/net/fib_trie", "/proc/net/if_inet6", "/etc/libvirt/qemu.conf"]


def competent_script(hosts: list[str]) -> dict:
    """What a careful admin would script: each host's facts fetched once, over one SSH connection per
    host (ControlMaster), the virsh calls of a host batched in one virsh process, hosts in parallel.

    Phase 1 (per host): the guest names; then one round trip with one virsh process for the host's
    facts and every guest's XML, state, info, job and snapshots, plus the host files and each running
    guest's command line, status XML and log. Phase 2 (per host, as a target of the others' guests):
    one virsh process for the domain capabilities of each machine type the others' guests use, and
    one stat of every path those guests name (emulator, TLS files, bridges, folders, disks).
    Facts only: the script decides nothing (the audit also checks).
    """
    import xml.etree.ElementTree as ET
    from concurrent.futures import ThreadPoolExecutor

    control = tempfile.mkdtemp(prefix="mcbench-ssh-")
    conns = {h: _Ssh(h, control) for h in hosts}

    def phase1(h: str) -> dict:
        c = conns[h]
        names = [n for n in c.run("virsh -q -c qemu:///system list --all --name").split() if n]
        cmds = [["capabilities"], ["version"], ["hostname"], ["domcapabilities"], ["list", "--all", "--name", "--uuid"],
                ["net-list", "--all"], ["nwfilter-list"], ["secret-list"], ["pool-list", "--all", "--details"],
                ["freecell"]]
        for vm in names:
            cmds += [["dumpxml", vm], ["dumpxml", "--inactive", vm], ["domstate", "--reason", vm], ["dominfo", vm],
                     ["domjobinfo", vm], ["snapshot-list", "--name", vm]]
        files = " ".join(shlex.quote(f) for f in HOST_FILES)
        per_vm = " ; ".join(
            f"p=$(cat /run/libvirt/qemu/{shlex.quote(vm)}.pid 2>/dev/null) && tr '\\0' ' ' </proc/$p/cmdline; "
            f"cat /run/libvirt/qemu/{shlex.quote(vm)}.xml 2>/dev/null; "
            f"tail -c 16384 /var/log/libvirt/qemu/{shlex.quote(vm)}.log 2>/dev/null" for vm in names)
        out = c.run(_virsh_batch(cmds) + f"; echo @@FILES@@; cat {files} 2>&1; {per_vm or 'true'}")
        virsh_out, _, rest = out.partition("@@FILES@@")
        parts = _split_batch(virsh_out, len(cmds))
        xmls = {vm: parts[10 + 6 * i] for i, vm in enumerate(names)}
        return {"host": h, "guests": xmls, "bytes": len(out)}

    def wanted(xmls: dict[str, str]) -> tuple[set[tuple[str, str, str]], set[str]]:
        machines, paths = set(), {"/usr/bin/qemu-system-x86_64", "/etc/pki/qemu/ca-cert.pem",
                                  "/etc/pki/qemu/server-cert.pem", "/etc/pki/qemu/server-key.pem"}
        for text in xmls.values():
            try:
                root = ET.fromstring(text)
            except ET.ParseError:
                continue
            t = root.find("os/type")
            if t is not None:
                machines.add((t.get("arch") or "x86_64", t.get("machine") or "", root.get("type") or "kvm"))
            for br in root.iterfind("devices/interface/source[@bridge]"):
                paths.add("/sys/class/net/" + br.get("bridge"))
            for src in root.iterfind("devices/*/source[@path]"):
                paths.add(src.get("path"))
                paths.add(src.get("path").rsplit("/", 1)[0])
            for src in root.iterfind("devices/disk/source[@file]"):
                paths.add(src.get("file"))
            emu = root.findtext("devices/emulator")
            if emu:
                paths.add(emu)
        return machines, paths

    def phase2(h: str, others: list[dict]) -> int:
        machines, paths = set(), set()
        for o in others:
            m, p = wanted(o["guests"])
            machines |= m
            paths |= p
        cmds = [["domcapabilities", "--arch", a, "--machine", m, "--virttype", v] for a, m, v in sorted(machines)]
        stat = "stat -c '%n %F %s %Y' " + " ".join(shlex.quote(p) for p in sorted(paths)) + " 2>&1"
        return len(conns[h].run((_virsh_batch(cmds) + " ; " if cmds else "") + stat))

    try:
        with ThreadPoolExecutor(len(hosts)) as pool:
            facts = list(pool.map(phase1, hosts))
            list(pool.map(lambda h: phase2(h, [f for f in facts if f["host"] != h]), hosts))
    finally:
        for c in conns.values():
            c.close()
        os.rmdir(control) if not os.listdir(control) else None
    return {"ssh_commands": sum(c.calls for c in conns.values()), "ssh_connections": len(hosts),
            "virsh_processes": 2 * len(hosts) + len(hosts), "guests_seen": sum(len(f["guests"]) for f in facts)}


def check_lab_verdicts(data: dict) -> list[str]:
    """What the audit lab was built to show (tests/lab/audit_lab.py); returns the cells checked.
    Raises SystemExit on the first wrong verdict: a fast wrong answer is no benchmark."""
    from tests.lab.audit_lab import GUESTS, HOSTS

    guests = {g["name"]: g for g in data["guests"]}
    if set(guests) != set(GUESTS):
        raise SystemExit(f"bench_audit: the audit saw guests {sorted(guests)}, the lab has {sorted(GUESTS)}")
    expect: dict[tuple[str, str], str] = {}
    for vm, (host, devices, running) in GUESTS.items():
        for t in HOSTS:
            if t == host:
                continue
            if "serial" in vm:
                v = "blocked"  # its log folder exists on its own host only
            elif ("br-prod" in devices or "audnet" in devices) and t == "aud-c" and running:
                v = "blocked"  # aud-c has neither the bridge nor the network (an offline move only defines it)
            else:
                v = "ok"
            expect[(vm, t)] = v
    checked = []
    for (vm, t), v in sorted(expect.items()):
        cell = next(c for c in guests[vm]["targets"] if c["host"] == t)
        got = cell["verdict"]
        if got != v:
            raise SystemExit(f"bench_audit: wrong verdict for {vm} -> {t}: audit says {got}, the lab is built for {v} "
                             f"({[f['rule'] for f in cell['findings']]})")
        checked.append(f"{vm}->{t}:{got}")
    for vm in ("a-brprod", "b-brprod"):
        cell = next(c for c in guests[vm]["targets"] if c["host"] == "aud-c")
        if [f["rule"] for f in cell["findings"]] != ["network.bridge-missing"]:
            raise SystemExit(f"bench_audit: {vm} -> aud-c should be blocked by network.bridge-missing: {cell}")
    if guests["a-off"]["flags"] != ["--offline", "--persistent"]:
        raise SystemExit(f"bench_audit: a-off should be checked --offline --persistent, not {guests['a-off']['flags']}")
    return checked


def bench_lab() -> dict:
    from tests.lab.audit_lab import GUESTS, HOSTS, audit_lab, inventory_yaml, populate
    from tests.lab.fixtures import lab_skip_reason

    if reason := lab_skip_reason():
        return {"skipped": reason}
    lab = audit_lab()
    with lab:
        populate(lab)
        with tempfile.TemporaryDirectory() as tmp:
            inv = Path(tmp) / "fleet.yml"
            inv.write_text(inventory_yaml())
            argv = [sys.executable, "-m", "migcheck.cli", "audit", str(inv), "--live", "--no-db", "--format", "json"]
            subprocess.run(argv, capture_output=True, timeout=900, cwd=REPO)  # warm: page cache, .pyc, sshd
            competent_script(HOSTS)
            runs = []
            for _ in range(3):  # best of three, each in the same run, alternating
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO)
                audit_s = time.monotonic() - t0
                data = json.loads(p.stdout)
                checked = check_lab_verdicts(data)
                t0 = time.monotonic()
                comp = competent_script(HOSTS)
                comp_s = time.monotonic() - t0
                runs.append((audit_s, comp_s))
            if comp["guests_seen"] != len(GUESTS):
                raise SystemExit(f"bench_audit: the competent script saw {comp['guests_seen']} guests, "
                                 f"not {len(GUESTS)}")
        t0 = time.monotonic()
        calls = plain_script(GUESTS, HOSTS)
        plain_s = time.monotonic() - t0
    audit_s = min(r[0] for r in runs)
    comp_s = min(r[1] for r in runs)
    pairs = data["summary"]["pairs"]
    return {"hosts": len(HOSTS), "guests": len(GUESTS), "pairs": pairs, "audit_seconds": round(audit_s, 2),
            "audit_runs": [round(r[0], 2) for r in runs],
            "competent_seconds": round(comp_s, 2), "competent_runs": [round(r[1], 2) for r in runs],
            "competent": comp, "ratio_competent": round(comp_s / audit_s, 2),
            "plain_script_seconds": round(plain_s, 2), "plain_script_calls": calls,
            "ratio": round(plain_s / audit_s, 1), "audit_exit": p.returncode, "verdicts_checked": checked}


# --------------------------------------------------------------- (b) synthetic


def _cpu_seconds() -> float:
    """CPU of this process and of its waited-for children (the checking step's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def verify_small(seed: int, flags: str) -> dict:
    """Before timing: on a small fleet from the same real data, the audit's checking step (in worker
    processes) gives, pair by pair, the report ``migcheck SRC DST VM`` gives (evaluate_every_pair).
    A difference aborts the benchmark."""
    from migcheck.audit.evaluate import AuditPlan, check_fleet
    from tests.unit.every_pair import evaluate_every_pair, grouped_reports
    from migcheck.flags import parse_flags
    from tests.unit.fleetgen_corpus import corpus_fleet

    fleet = corpus_fleet(seed, 40, 120, group_size=10, first_group=0, n_groups=2)
    plan = AuditPlan(candidates=fleet.candidates(), flags=parse_flags(flags.split() if flags else []))
    grouped = grouped_reports(check_fleet(fleet.hosts, plan, jobs=2), fleet.hosts)
    every = evaluate_every_pair(fleet.hosts, plan)
    if grouped.keys() != every.keys():
        raise SystemExit("bench_audit: the audit and every-pair evaluation checked different pairs")
    verdicts: dict[str, int] = {}
    for key, rep in every.items():
        if grouped[key] != rep:
            raise SystemExit(f"bench_audit: wrong verdict for {key}: audit {grouped[key].verdict.value}, "
                             f"migcheck SRC DST VM {rep.verdict.value}")
        verdicts[rep.verdict.value] = verdicts.get(rep.verdict.value, 0) + 1
    return {"pairs": len(every), "verdicts": verdicts}


def bench_synthetic(hosts: int, guests: int, group_size: int, batch_hosts: int, jobs: int | None, flags: str,
                    seed: int = 2024) -> dict:
    """The real-data fleet through check_fleet, the function ``migcheck audit`` checks with after probing.

    The fleet is generated and checked in batches of ``batch_hosts`` hosts (whole clusters), one
    after the other: the raw answers of 100,000 guests (XML texts, command lines, status XML) would
    not fit in the memory budget at once. Each batch is checked with worker processes, as the audit
    does; the results of every batch are kept, as the audit keeps them for its reports.
    """
    from migcheck.audit.evaluate import AuditPlan, check_fleet
    from migcheck.audit.inventory import Inventory, InventoryHost
    from migcheck.audit.result import AuditResult
    from migcheck.checks.registry import all_checks
    from migcheck.flags import parse_flags
    from tests.unit.fleetgen_corpus import corpus_fleet, profiles, templates

    checked = verify_small(seed, flags)
    plan_flags = parse_flags(flags.split() if flags else [])
    n_groups = max(1, hosts // group_size)
    per_batch = max(1, batch_hosts // group_size)
    gen_cpu = check_wall = check_cpu = 0.0
    kept = []
    status: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    n_pairs = n_classes = n_hosts = 0
    t_all = time.monotonic()
    for first in range(0, n_groups, per_batch):
        c0 = time.process_time()
        fleet = corpus_fleet(seed, hosts, guests, group_size, first, per_batch)
        gen_cpu += time.process_time() - c0
        plan = AuditPlan(candidates=fleet.candidates(), flags=plan_flags)
        w0, c0 = time.monotonic(), _cpu_seconds()
        vms = check_fleet(fleet.hosts, plan, jobs)
        check_wall += time.monotonic() - w0
        check_cpu += _cpu_seconds() - c0
        inv = Inventory(path="generated", format="generated",
                        hosts={h: InventoryHost(h, h, [g for g, ms in fleet.groups.items() if h in ms])
                               for h in fleet.hosts}, groups=fleet.groups)
        result = AuditResult(inventory=inv, hosts=fleet.hosts, vms=vms, flags=plan_flags.as_args(), started=0,
                             finished=0, checks_run=len(all_checks()))
        for r in result.rows:
            status[r.status] = status.get(r.status, 0) + 1
        for vm in vms:
            n_classes += len(vm.classes)
            for t in vm.targets:
                v = vm.verdict(t).value
                verdicts[v] = verdicts.get(v, 0) + 1
                n_pairs += 1
        n_hosts += len(fleet.hosts)
        kept.extend(vms)
        del fleet, plan, result, inv
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "hosts": n_hosts, "guests": len(kept), "pairs": n_pairs, "group_size": group_size,
        "batch_hosts": per_batch * group_size, "batches": -(-n_groups // per_batch),
        "workers": jobs or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "flags": flags, "templates": len(templates()), "profiles": len(profiles()),
        "classes_per_guest": round(n_classes / max(1, len(kept)), 2), "status": status, "verdicts": verdicts,
        "verified_small": checked,
        "check_seconds_wall": round(check_wall, 1), "check_cpu_seconds": round(check_cpu, 1),
        "generation_cpu_seconds": round(gen_cpu, 1), "wall_seconds_total": round(time.monotonic() - t_all, 1),
        "peak_rss_mib_self": round(me.ru_maxrss / 1024), "peak_rss_mib_largest_worker": round(kids.ru_maxrss / 1024),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", action="store_true", help="only (a), the lab")
    ap.add_argument("--synthetic", action="store_true", help="only (b), the generated fleet")
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--guests", type=int, default=100_000)
    ap.add_argument("--group-size", type=int, default=25)
    ap.add_argument("--batch-hosts", type=int, default=1000, help="hosts generated and checked at a time")
    ap.add_argument("--workers", type=int, default=None, help="worker processes of the checking step "
                    "(default: as migcheck audit, one per core)")
    ap.add_argument("--flags", default="--live")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    both = not (a.lab or a.synthetic)
    out: dict = {}
    if a.synthetic or both:
        out["synthetic"] = r = bench_synthetic(a.hosts, a.guests, a.group_size, a.batch_hosts, a.workers, a.flags)
        ok = r["check_seconds_wall"] < 60 and max(r["peak_rss_mib_self"], r["peak_rss_mib_largest_worker"]) < 2048
        print(f"(b) synthetic fleet from the libvirt corpus ({r['templates']} x86 KVM guest XMLs, {r['profiles']} host "
              f"profiles: CPU x QEMU): {r['hosts']} hosts, {r['guests']} guests, {r['pairs']} pairs, clusters of "
              f"{r['group_size']}, {r['batches']} batches of {r['batch_hosts']} hosts; verdicts checked first: "
              f"{r['verified_small']['pairs']} pairs equal to migcheck SRC DST VM ({r['verified_small']['verdicts']})")
        print(f"    checking (check_fleet, {r['workers']} workers): {r['check_seconds_wall']} s wall, "
              f"{r['check_cpu_seconds']} s CPU; peak RSS {r['peak_rss_mib_self']} MiB (main), "
              f"{r['peak_rss_mib_largest_worker']} MiB (largest worker); target < 60 s and < 2 GiB: "
              f"{'met' if ok else 'NOT met'}; {r['classes_per_guest']} classes per guest; verdicts {r['verdicts']}; "
              f"guests {r['status']}; generation {r['generation_cpu_seconds']} s CPU apart; "
              f"load average {r['load_average']:.1f}", flush=True)
    if a.lab or both:
        out["lab"] = r = bench_lab()
        if "skipped" in r:
            print(f"(a) lab: skipped: {r['skipped']}")
        else:
            c = r["competent"]
            print(f"(a) lab: {r['hosts']} hosts, {r['guests']} guests, {r['pairs']} pairs; audit {r['audit_seconds']} s "
                  f"(best of {r['audit_runs']}), verdicts checked: {len(r['verdicts_checked'])} cells "
                  f"({', '.join(r['verdicts_checked'])})")
            print(f"    competent per-host script (facts once per host, {c['ssh_connections']} SSH connections, "
                  f"{c['ssh_commands']} commands over them, {c['virsh_processes']} virsh processes, hosts in "
                  f"parallel): {r['competent_seconds']} s (best of {r['competent_runs']}): "
                  f"audit/competent ratio {r['ratio_competent']}x (target >= 3x: "
                  f"{'met' if r['ratio_competent'] >= 3 else 'NOT met'})")
            print(f"    per-pair script (every guest/target pair re-fetches both hosts' facts, one connection per "
                  f"call, serial): {r['plain_script_seconds']} s ({r['plain_script_calls']} calls): ratio {r['ratio']}x",
                  flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
