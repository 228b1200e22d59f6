"""Benchmark of the fleet audit (not a test): ``make bench-audit``.

(a) lab: the audit's wall time on the three-host audit lab (tests/lab/audit_lab.py, 15 guests)
    against a plain script that gathers the same facts with virsh and ssh, one call after the
    other, per guest and target pair; reported as a ratio from one run. Needs root.
(b) synthetic: generated fleets (tests/unit/fleetgen.py, no SSH), by default 10,000 hosts and
    100,000 guests in clusters of 25 hosts with repeating host profiles; reports the time and the
    peak memory (ru_maxrss) of the checking step (raw probe answers -> verdict matrix), with the
    generation of the data timed apart. Groups are generated and checked one after the other
    (the raw answers of the whole fleet would not fit in memory at once); their results are kept,
    as the audit keeps them for its reports.

    python -m tests.bench.bench_audit [--lab] [--synthetic] [--hosts N] [--guests N] [--group-size N]
                                      [--workers N] [--json FILE]
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
            t0 = time.monotonic()
            p = subprocess.run([sys.executable, "-m", "migcheck.cli", "audit", str(inv), "--live", "--no-db",
                                "--format", "json"], capture_output=True, text=True, timeout=900, cwd=REPO)
            audit_s = time.monotonic() - t0
            data = json.loads(p.stdout)
        t0 = time.monotonic()
        calls = plain_script(GUESTS, HOSTS)
        plain_s = time.monotonic() - t0
    pairs = data["summary"]["pairs"]
    return {"hosts": len(HOSTS), "guests": len(GUESTS), "pairs": pairs, "audit_seconds": round(audit_s, 2),
            "plain_script_seconds": round(plain_s, 2), "plain_script_calls": calls,
            "ratio": round(plain_s / audit_s, 1), "audit_exit": p.returncode}


# --------------------------------------------------------------- (b) synthetic


def _worker(args: tuple[int, int, int, int, int, int, str | None]) -> dict:
    worker, workers, seed, hosts, guests, group_size, flags = args
    from migcheck.audit.evaluate import AuditPlan, Evaluator, FactCache
    from migcheck.audit.inventory import Inventory, InventoryHost
    from migcheck.audit.result import AuditResult
    from migcheck.checks.registry import all_checks
    from migcheck.flags import parse_flags
    from tests.unit.fleetgen import big_fleet_groups

    cache = FactCache()
    checks = all_checks()
    plan_flags = parse_flags(flags.split() if flags else [])
    gen_s = check_s = summary_s = 0.0
    kept = []  # the results, as the audit keeps them for its reports
    stats = {"vms": 0, "pairs": 0, "classes": 0, "check_runs": 0, "per_member_runs": 0, "exact_redo": 0}
    status: dict[str, int] = {}
    gen = big_fleet_groups(seed, hosts, guests, group_size, only=lambda gi: gi % workers == worker)
    check_wall = 0.0
    while True:
        t0 = time.process_time()
        try:
            gname, fleet = next(gen)
        except StopIteration:
            break
        gen_s += time.process_time() - t0
        plan = AuditPlan(candidates=fleet.candidates(), flags=plan_flags)
        ev = Evaluator(fleet.hosts, plan, checks=checks, cache=cache)
        w0, t2 = time.monotonic(), time.process_time()
        vms = ev.evaluate_all()
        check_s += time.process_time() - t2
        check_wall += time.monotonic() - w0
        t3 = time.process_time()
        inv = Inventory(path=gname, format="generated",
                        hosts={h: InventoryHost(h, h, [gname]) for h in fleet.hosts}, groups=fleet.groups)
        result = AuditResult(inventory=inv, hosts=fleet.hosts, vms=vms, flags=plan_flags.as_args(), started=0,
                             finished=0, checks_run=len(checks))
        for r in result.rows:
            status[r.status] = status.get(r.status, 0) + 1
        summary_s += time.process_time() - t3
        for k in stats:
            stats[k] += getattr(ev.stats, k)
        kept.extend(vms)  # keep the matrix (the per-host probe data goes with the group)
    return {"worker": worker, "generation_cpu_s": gen_s, "check_cpu_s": check_s, "check_wall_s": check_wall,
            "summary_cpu_s": summary_s,
            "stats": stats, "status": status, "kept_vms": len(kept),
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_synthetic(hosts: int, guests: int, group_size: int, workers: int, flags: str, seed: int = 2024) -> dict:
    import multiprocessing as mp

    t0 = time.monotonic()
    args = [(w, workers, seed, hosts, guests, group_size, flags) for w in range(workers)]
    if workers == 1:
        parts = [_worker(args[0])]
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_worker, args)
    wall = time.monotonic() - t0
    total = {k: sum(p["stats"][k] for p in parts) for k in parts[0]["stats"]}
    status: dict[str, int] = {}
    for p in parts:
        for k, v in p["status"].items():
            status[k] = status.get(k, 0) + v
    return {
        "hosts": hosts, "guests": guests, "group_size": group_size, "workers": workers, "flags": flags,
        "pairs": total["pairs"], "classes": total["classes"], "classes_per_guest": round(total["classes"] / total["vms"], 2),
        "check_runs": total["check_runs"], "per_member_runs": total["per_member_runs"],
        "exact_redo": total["exact_redo"], "status": status,
        "check_seconds_wall": round(max(p["check_wall_s"] for p in parts), 1),
        "check_cpu_seconds_total": round(sum(p["check_cpu_s"] for p in parts), 1),
        "summary_cpu_seconds_total": round(sum(p["summary_cpu_s"] for p in parts), 1),
        "generation_cpu_seconds_total": round(sum(p["generation_cpu_s"] for p in parts), 1),
        "wall_seconds_total": round(wall, 1),
        "peak_rss_mib_per_worker": round(max(p["max_rss_mib"] for p in parts)),
        "peak_rss_mib_sum": round(sum(p["max_rss_mib"] for p in parts)),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", action="store_true", help="only (a), the lab")
    ap.add_argument("--synthetic", action="store_true", help="only (b), the generated fleet")
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--guests", type=int, default=100_000)
    ap.add_argument("--group-size", type=int, default=25)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--flags", default="--live")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    both = not (a.lab or a.synthetic)
    out: dict = {}
    if a.synthetic or both:
        out["synthetic"] = r = bench_synthetic(a.hosts, a.guests, a.group_size, a.workers, a.flags)
        print(f"(b) synthetic: {r['hosts']} hosts, {r['guests']} guests, {r['pairs']} pairs, clusters of "
              f"{r['group_size']}: checking {r['check_seconds_wall']} s wall with {r['workers']} worker(s) "
              f"({r['check_cpu_seconds_total']} s CPU), peak RSS {r['peak_rss_mib_per_worker']} MiB per worker "
              f"({r['peak_rss_mib_sum']} MiB in all); {r['classes_per_guest']} classes per guest; "
              f"data generation {r['generation_cpu_seconds_total']} s CPU, apart; "
              f"load average {r['load_average']:.1f}", flush=True)
    if a.lab or both:
        out["lab"] = r = bench_lab()
        if "skipped" in r:
            print(f"(a) lab: skipped: {r['skipped']}")
        else:
            print(f"(a) lab: {r['hosts']} hosts, {r['guests']} guests, {r['pairs']} pairs: audit {r['audit_seconds']} s, "
                  f"plain virsh/ssh script {r['plain_script_seconds']} s ({r['plain_script_calls']} calls): "
                  f"ratio {r['ratio']}x")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
