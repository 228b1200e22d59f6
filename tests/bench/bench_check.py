"""`make bench`: how long one `migcheck SRC DST VM` takes, as ratios from one run (a benchmark, not a test).

On its own two-host lab it times, interleaved and repeated (medians):
- the floor: `virsh -c qemu+ssh://root@DST/system version` (one SSH handshake + one RPC);
- `migcheck SRC DST VM --live`;
- a plain script gathering the same facts sequentially with virsh and ssh;
- migcheck with libvirt's own transport (MIGCHECK_NO_TUNNEL=1), for the tunnel's effect;
- Python start-up: `migcheck --help` against `python -c pass`;
then prints one MIGCHECK_TRACE=1 run: where the time of a check goes.

migcheck's modules are byte-compiled first, as an installed package's are: an
editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile
every edited module on every run (~40 ms) and measure that instead.

Run as root: python -m tests.bench.bench_check [--rounds N]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.lab import HostSpec, Lab

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))


def timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    elapsed = time.perf_counter() - t0
    if p.returncode not in (0, 1, 4):
        raise RuntimeError(f"{argv[:4]} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    return elapsed


def plain_script(src: str, dst: str, vm: str) -> list[list[str]]:
    """What an operator's script would run to gather the same facts, one command after the other."""
    s, d = f"qemu+ssh://root@{src}/system", f"qemu+ssh://root@{dst}/system"
    return [
        ["virsh", "-c", s, "version"], ["virsh", "-c", d, "version"],
        ["virsh", "-c", s, "capabilities"], ["virsh", "-c", d, "capabilities"],
        ["virsh", "-c", s, "dumpxml", vm], ["virsh", "-c", s, "dumpxml", "--inactive", vm],
        ["virsh", "-c", s, "domstate", "--reason", vm], ["virsh", "-c", s, "domjobinfo", vm],
        ["virsh", "-c", s, "snapshot-list", "--name", vm],
        ["virsh", "-c", s, "domcapabilities"], ["virsh", "-c", d, "domcapabilities"],
        ["virsh", "-c", d, "list", "--all", "--uuid"], ["virsh", "-c", d, "net-list", "--all"],
        ["virsh", "-c", d, "nwfilter-list"], ["virsh", "-c", d, "pool-list", "--all"],
        ["virsh", "-c", d, "secret-list"],
        ["ssh", src, "cat", f"/run/libvirt/qemu/{vm}.pid"],
        ["ssh", src, "sh", "-c", f"cat /proc/$(cat /run/libvirt/qemu/{vm}.pid)/cmdline"],
        ["ssh", src, "cat", f"/run/libvirt/qemu/{vm}.xml"],
        ["ssh", src, "tail", "-c", "16384", f"/var/log/libvirt/qemu/{vm}.log"],
        ["ssh", src, "cat", "/proc/self/mountinfo", "/proc/meminfo"],
        ["ssh", dst, "cat", "/proc/self/mountinfo", "/proc/meminfo", "/sys/devices/system/cpu/online"],
        ["ssh", dst, "ls", "-d", "/usr/bin/qemu-system-x86_64"],
    ]


def run_plain(cmds: list[list[str]]) -> float:
    t0 = time.perf_counter()
    for argv in cmds:
        subprocess.run(argv, capture_output=True, timeout=60)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import migcheck

    compileall.compile_dir(str(Path(migcheck.__file__).parent), quiet=1)
    with Lab([HostSpec("bench-a"), HostSpec("bench-b")], prefix="mcbench", subnet="10.251.77.160/27",
             state_dir="/var/tmp/migcheck-lab-mcbench") as lab:
        a, b = lab.hosts
        a.write_file("/tmp/bench-vm.xml", lab.guest_xml("bench-vm"))
        a.virsh("define", "/tmp/bench-vm.xml")
        a.virsh("start", "--paused", "bench-vm")
        no_tunnel = dict(os.environ, MIGCHECK_NO_TUNNEL="1")
        series: dict[str, list[float]] = {k: [] for k in ("floor", "migcheck", "migcheck-no-tunnel",
                                                          "plain", "python", "help")}
        plain = plain_script(a.name, b.name, "bench-vm")
        timed([MIGCHECK, a.name, b.name, "bench-vm", "--live"])  # warm caches once
        for _ in range(args.rounds):  # interleaved, so load changes hit every series alike
            series["floor"].append(timed(["virsh", "-c", b.uri, "version"]))
            series["migcheck"].append(timed([MIGCHECK, a.name, b.name, "bench-vm", "--live"]))
            series["migcheck-no-tunnel"].append(timed([MIGCHECK, a.name, b.name, "bench-vm", "--live"], no_tunnel))
            series["plain"].append(run_plain(plain))
            series["python"].append(timed([sys.executable, "-c", "pass"]))
            series["help"].append(timed([MIGCHECK, "--help"]))
        med = {k: statistics.median(v) for k, v in series.items()}
        traced = subprocess.run([MIGCHECK, a.name, b.name, "bench-vm", "--live"], capture_output=True, text=True,
                                timeout=120, env=dict(os.environ, MIGCHECK_TRACE="1"))
    load = os.getloadavg()[0]
    print(f"\nmigcheck bench: {args.rounds} interleaved rounds, medians; load average {load:.2f}; "
          f"{'KVM' if lab.kvm else 'TCG'}")
    print(f"  floor (virsh version over qemu+ssh)    {med['floor']:.3f} s")
    print(f"  migcheck SRC DST VM --live             {med['migcheck']:.3f} s   = {med['migcheck'] / med['floor']:.2f} x floor")
    print(f"  same, libvirt's own transport          {med['migcheck-no-tunnel']:.3f} s   = "
          f"{med['migcheck-no-tunnel'] / med['floor']:.2f} x floor")
    print(f"  plain virsh/ssh script, same facts     {med['plain']:.3f} s   = migcheck is "
          f"{med['plain'] / med['migcheck']:.1f} x faster ({len(plain)} commands)")
    print(f"  start-up: migcheck --help              {med['help']:.3f} s   (python -c pass: {med['python']:.3f} s, "
          f"+{med['help'] - med['python']:.3f} s)")
    print("\nwhere one check's time goes (MIGCHECK_TRACE=1: wall and CPU since the process started):")
    for line in traced.stderr.splitlines():
        if line.startswith("migcheck trace"):
            print("  " + line.removeprefix("migcheck trace").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
