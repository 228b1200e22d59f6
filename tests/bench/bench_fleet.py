"""Benchmark of ``migcheck audit`` on a real fleet of lab hosts (not a test): part of ``make bench``,
alone with ``make bench-fleet``. Needs root and the lab lock.

One lab of the largest size (tests/lab/fleet_lab.py: 44 hosts by default, each its own namespaces
with libvirtd, virtlogd and sshd; 3 shut-off guests per host, a running paused one on every fourth
host, one stuck guest) is brought up once; the audit is then run over the inventory of its first 3,
first 10 and all hosts, so every size sees the same hosts and guests per host. For each size, best
of ``--runs``: wall time, CPU time (migcheck and its check workers, from wait4), peak RSS (the
largest process of that tree), hosts probed per second and guest/target pairs per second. Next to
it, on the same hosts, the single-pair check ``migcheck fl-01 fl-02 fl-01-run --live`` and
``migcheck fl-01 fl-02 fl-01-off1 --offline --persistent``, measured the same way; "pair by pair"
is that time times the fleet's pairs (an estimate, not a run).

Every audit's report is checked first: every host probed, every guest seen with the flags its
state asks for, the pairs counted right, and the cells the fleet was built for (the stuck guest,
br-prod NICs blocked exactly towards the hosts without the bridge). A wrong answer aborts: a fast
wrong answer measures nothing.

    python -m tests.bench.bench_fleet [--sizes 3,10,44] [--runs 3] [--jobs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab.audit_lab import MIGCHECK
from tests.lab.fleet_lab import Fleet, daemon_count, fleet, fleet_lab, machine_limits, populate

PREFIX, SUBNET, STATE_DIR = "mcflb", "10.251.77.64/26", "/var/tmp/migcheck-lab-mcflb"  # /26: up to 52 hosts


class BenchError(Exception):
    """A measured run did not give the answer the fleet was built for."""


def measured(argv: list[str], timeout: float = 900) -> dict:
    """Run argv; wall, CPU (user+system of it and its reaped children) and peak RSS from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise BenchError(f"{argv[3:6]} ran over {timeout} s")
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    try:
        report = json.loads(stdout)
    except ValueError:
        raise BenchError(f"{argv[3:]} printed no JSON (exit {p.returncode}): {stderr[-800:]}") from None
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "exit": p.returncode,
            "report": report, "stderr": stderr}


def check_audit(f: Fleet, hosts: list[str], data: dict) -> int:
    """What the fleet was built to show, for the audit over ``hosts``; returns the pairs."""
    mine = [g for g in f.guests if g.host in hosts]
    bad = [h for h in data["hosts"] if h["state"] != "ok"]
    if [h["name"] for h in data["hosts"]] != hosts or bad:
        raise BenchError(f"hosts not all probed: {[(h['name'], h['state'], h['error']) for h in bad]}")
    guests = {g["name"]: g for g in data["guests"]}
    if set(guests) != {g.name for g in mine}:
        raise BenchError(f"the audit saw {len(guests)} guests, the fleet has {len(mine)} on these hosts")
    pairs = len(mine) * (len(hosts) - 1)
    if data["summary"]["pairs"] != pairs:
        raise BenchError(f"the audit counted {data['summary']['pairs']} pairs, expected {pairs}")
    brprod = {s.name for s in f.specs if "br-prod" in s.bridges}
    for g in mine:
        got = guests[g.name]
        if got["flags"] != (["--live"] if g.running else ["--offline", "--persistent"]):
            raise BenchError(f"{g.name}: checked with {got['flags']}")
        cells = {c["host"]: c for c in got["targets"]}
        for t, c in cells.items():
            if g.name.endswith("-stuck"):
                want = "blocked"
            elif g.running and "br-prod" in g.devices and t not in brprod:
                want = "blocked"
            else:
                want = "ok"
            if c["verdict"] != want:
                raise BenchError(f"{g.name} -> {t}: {c['verdict']} ({[x['rule'] for x in c['findings']]}), "
                                 f"the fleet is built for {want}")
    return pairs


def best(runs: list[dict]) -> dict:
    b = min(runs, key=lambda r: r["wall"])
    return {"wall": round(b["wall"], 2), "cpu": round(b["cpu"], 2), "rss_mib": round(b["rss_mib"]),
            "walls": [round(r["wall"], 2) for r in runs], "exit": b["exit"]}


def bench(sizes: list[int], runs: int, jobs: int | None) -> dict:
    from tests.lab.fixtures import lab_skip_reason

    if reason := lab_skip_reason():
        return {"skipped": reason}
    f = fleet(max(sizes))
    lab = fleet_lab(f, prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)
    out: dict = {"fleet": f.describe(), "limits": machine_limits(), "kvm": lab.kvm, "audits": [], "pairs": {}}
    with lab:
        out["up_seconds"] = lab.up_seconds
        t0 = time.monotonic()
        populate(lab, f)
        out["populate_seconds"] = round(time.monotonic() - t0, 1)
        out["processes"] = daemon_count(lab)
        out["mem_used_mib"] = _mem_used_mib()
        extra = ["--jobs", str(jobs)] if jobs else []
        with tempfile.TemporaryDirectory(prefix="mcbench-fleet-") as tmp:
            invs = {}
            for n in sizes:
                inv = Path(tmp) / f"fleet-{n}.yml"
                inv.write_text("groups:\n  fleet: [" + ", ".join(f.hosts[:n]) + "]\n")
                invs[n] = inv
            measured([*MIGCHECK, "audit", str(invs[min(sizes)]), "--live", "--no-db", "--format", "json"])  # warm
            pair_argv = {
                "running": [*MIGCHECK, f.hosts[0], f.hosts[1], f"{f.hosts[0]}-run", "--live", "--format", "json"],
                "shut off": [*MIGCHECK, f.hosts[0], f.hosts[1], f"{f.hosts[0]}-off1", "--offline", "--persistent",
                             "--format", "json"],
            }
            pair_runs: dict[str, list[dict]] = {k: [] for k in pair_argv}
            audit_runs: dict[int, list[dict]] = {n: [] for n in sizes}
            for _ in range(runs):  # interleaved: every size and the pair checks in each round
                for kind, argv in pair_argv.items():
                    r = measured(argv)
                    if r["report"].get("verdict") != "ok":
                        raise BenchError(f"single pair ({kind}): {r['report'].get('verdict')}: {r['stderr'][-500:]}")
                    pair_runs[kind].append(r)
                for n in sizes:
                    load = os.getloadavg()[0]
                    r = measured([*MIGCHECK, "audit", str(invs[n]), "--live", "--no-db", "--format", "json", *extra])
                    r["pairs"] = check_audit(f, f.hosts[:n], r["report"])
                    r["load"] = load
                    audit_runs[n].append(r)
        for kind, rs in pair_runs.items():
            out["pairs"][kind] = best(rs)
        for n in sizes:
            rs = audit_runs[n]
            b = best(rs)
            rep = rs[0]["report"]
            running = sum(g["running"] for g in rep["guests"])
            b.update(hosts=n, guests=len(rep["guests"]), running=running, pairs=rs[0]["pairs"],
                     hosts_per_s=round(n / b["wall"], 2), pairs_per_s=round(rs[0]["pairs"] / b["wall"], 1),
                     cpu_ms_per_pair=round(1000 * b["cpu"] / rs[0]["pairs"], 2),
                     load=round(min(r["load"] for r in rs), 2), stuck=rep["summary"]["stuck"])
            out["audits"].append(b)
    return out


def _mem_used_mib() -> int:
    info = {ln.split(":")[0]: int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()}
    return (info["MemTotal"] - info["MemAvailable"]) // 1024


def print_report(r: dict, runs: int) -> None:
    if "skipped" in r:
        print(f"(c) fleet on the lab: skipped: {r['skipped']}")
        return
    p = r["processes"]
    print(f"(c) fleet on the lab, {'KVM' if r['kvm'] else 'TCG'}: {r['fleet']}; brought up in {r['up_seconds']} s "
          f"({p['libvirtd']} libvirtd, {p['virtlogd']} virtlogd, {p['sshd']} sshd, {p['qemu-system-x86']} QEMU), "
          f"guests defined and started in {r['populate_seconds']} s; machine memory in use {r['mem_used_mib']} MiB; "
          f"limits {r['limits']}")
    print(f"    `migcheck audit INV --live --no-db --format json` over the first N hosts, best of {runs} "
          f"(interleaved); CPU = migcheck + its check workers; RSS = largest process of the run")
    print(f"    {'hosts':>5} {'guests':>6} {'run':>4} {'pairs':>6} {'wall s':>7} {'CPU s':>6} {'RSS MiB':>7} "
          f"{'hosts/s':>7} {'pairs/s':>8} {'CPU ms/pair':>11} {'pair by pair s':>14}  all walls")
    one = r["pairs"]["running"]["wall"]
    for a in r["audits"]:
        print(f"    {a['hosts']:>5} {a['guests']:>6} {a['running']:>4} {a['pairs']:>6} {a['wall']:>7} {a['cpu']:>6} "
              f"{a['rss_mib']:>7} {a['hosts_per_s']:>7} {a['pairs_per_s']:>8} {a['cpu_ms_per_pair']:>11} "
              f"{round(a['pairs'] * one):>14}  {a['walls']} (load {a['load']})")
    for kind, b in r["pairs"].items():
        flags = "--live" if kind == "running" else "--offline --persistent"
        print(f"    single pair `migcheck fl-01 fl-02 VM {flags}` ({kind} guest, same lab): {b['wall']} s wall, "
              f"{b['cpu']} s CPU, {b['rss_mib']} MiB, {round(1 / b['wall'], 2)} pairs/s (all {b['walls']})")
    print("    'pair by pair' = pairs x the running guest's single-pair wall time: an estimate, not a run", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3,10,44", help="fleet sizes, comma-separated (largest <= 52)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None, help="migcheck audit --jobs (default: migcheck's)")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    sizes = sorted({int(x) for x in a.sizes.split(",")})
    if sizes[0] < 2 or sizes[-1] > 52:
        ap.error("sizes must be 2..52 (the lab's /26 subnet slice)")
    r = bench(sizes, a.runs, a.jobs)
    print_report(r, a.runs)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_fleet: {exc}", file=sys.stderr)
        sys.exit(1)
