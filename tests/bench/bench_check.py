"""`make bench`: how long one `migcheck SRC DST VM` takes, as ratios from one run (a benchmark, not a test).

On its own two-host lab (bench-a -> bench-b) it times, interleaved and repeated (medians):
- the floor: `virsh -c qemu+ssh://root@DST/system version` (one SSH handshake + one RPC);
- migcheck on a realistic guest: a qcow2 disk in a directory pool that both hosts have, a virtio
  NIC on a bridge both hosts have, a host-model CPU (so the target runs compareHypervisorCPU),
  checked with `--live --copy-storage-all` (the lab has no shared storage);
- migcheck on the minimal guest (no disk, no NIC, default CPU), `--live`;
- a competent script gathering the realistic guest's facts the way a careful operator would:
  one OpenSSH connection per host (ControlMaster), each host's virsh calls batched into one
  virsh process per phase, file reads in the same remote shell, both hosts in parallel;
- the old sequential script: one ssh or virsh process, so one SSH handshake, per command;
- migcheck with libvirt's own transport (MIGCHECK_NO_TUNNEL=1), for the tunnel's effect;
- start-up: `migcheck --help` and `migcheck version` against `python -c pass`;
then prints one MIGCHECK_TRACE=1 run of the realistic check: where its time goes.

Every timed migcheck run prints JSON; its verdict must be the expected one ("ok") or the bench
stops, as it does when a script run did not get every fact it asked for: a fast wrong answer
measures nothing.

migcheck's modules are byte-compiled first, as an installed package's are: an
editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile
every edited module on every run (~40 ms) and measure that instead.

Run as root: python -m tests.bench.bench_check [--rounds N]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.lab import HostSpec, Lab
from tests.lab.guest import disable_features_xml

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))
IMAGES = "/var/lib/libvirt/images"
BRIDGE = "br-bench"
MINIMAL, REALISTIC = "bench-min", "bench-real"
MINIMAL_FLAGS, REALISTIC_FLAGS = ["--live"], ["--live", "--copy-storage-all"]
EXPECTED_VERDICT = "ok"


class BenchError(Exception):
    """A timed run did not do what its figure claims (wrong verdict, missing facts): stop the bench."""


# ------------------------------------------------------------------ the guests


def realistic_xml(lab: Lab) -> str:
    cpu = f"<cpu mode='host-model' check='partial'>{disable_features_xml(lab.cpu_quirks)}</cpu>"
    devices = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>"
               f"<source file='{IMAGES}/{REALISTIC}.qcow2'/><target dev='vda' bus='virtio'/></disk>"
               f"<interface type='bridge'><source bridge='{BRIDGE}'/><model type='virtio'/></interface>")
    return lab.guest_xml(REALISTIC, cpu_xml=cpu, extra_devices=devices)


def set_up(lab: Lab) -> None:
    a, b = lab.hosts
    for h in (a, b):  # the image folder as a libvirt pool on both hosts: storage copy precreates the image
        h.virsh("pool-define-as", "images", "dir", "--target", IMAGES)
        h.virsh("pool-start", "images")
    a.run(["qemu-img", "create", "-q", "-f", "qcow2", f"{IMAGES}/{REALISTIC}.qcow2", "64M"], check=True)
    for name, xml in ((MINIMAL, lab.guest_xml(MINIMAL)), (REALISTIC, realistic_xml(lab))):
        a.write_file(f"{IMAGES}/{name}.xml", xml)
        a.virsh("define", f"{IMAGES}/{name}.xml")
        a.virsh("start", "--paused", name, timeout=120)


# ------------------------------------------------------------------ timing and verdicts


def timed(argv: list[str], env: dict | None = None, expect: str | None = None) -> float:
    """Wall time of one run; with expect, the run must print a JSON report with that verdict."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, timeout=120, env=env)
    elapsed = time.perf_counter() - t0
    if expect is None:
        if p.returncode != 0:
            raise BenchError(f"{shlex.join(argv[:4])} exited {p.returncode}: {p.stderr.decode()[-500:]}")
        return elapsed
    try:
        report = json.loads(p.stdout)
    except ValueError:
        raise BenchError(f"{shlex.join(argv)} printed no JSON report (exit {p.returncode}): "
                         f"{p.stderr.decode()[-500:]}") from None
    if report.get("verdict") != expect or p.returncode != report.get("exit_code"):
        found = [(f["severity"], f["rule"], f["message"][:160]) for f in report.get("findings", [])
                 if f["severity"] != "info"]
        raise BenchError(f"{shlex.join(argv)}: verdict {report.get('verdict')} (exit {p.returncode}), "
                         f"expected {expect}: {found}")
    return elapsed


def check_argv(lab: Lab, vm: str, flags: list[str]) -> list[str]:
    a, b = lab.hosts
    return [MIGCHECK, a.name, b.name, vm, *flags, "--format", "json"]


def verify_realistic_workload(lab: Lab) -> list[str]:
    """What the realistic check really gathered (saved once with --save): the facts its figure claims."""
    with tempfile.TemporaryDirectory(prefix="mcbench-") as tmp:
        timed([*check_argv(lab, REALISTIC, REALISTIC_FLAGS), "--save", tmp], expect=EXPECTED_VERDICT)
        src = json.loads((Path(tmp) / "source" / "raw.json").read_text())
        dst = json.loads((Path(tmp) / "target" / "raw.json").read_text())
    problems = []
    if not dst.get("cpu_compare"):
        problems.append("the target ran no compareHypervisorCPU")
    if f"{IMAGES}/{REALISTIC}.qcow2" not in src.get("image_headers", {}):
        problems.append("the source's qcow2 header was not read")
    if not any(p.get("type") == "dir" and p.get("active") for p in dst.get("pools") or []):
        problems.append("the target's pool was not listed")
    if not any(path.endswith(f"/{BRIDGE}") for path in dst.get("paths", {})):
        problems.append("the target's bridge was not looked up")
    if src.get("errors") or dst.get("errors"):
        problems.append(f"facts missing: source {src.get('errors')}, target {dst.get('errors')}")
    if problems:
        raise BenchError("the realistic check did not gather what it should: " + "; ".join(problems))
    return [f"target compareHypervisorCPU answers: {len(dst['cpu_compare'])}",
            f"paths stat'ed on the target: {len(dst.get('paths', {}))}"]


# ------------------------------------------------------------------ the sequential script (old baseline)


def sequential_script(src: str, dst: str, vm: str) -> list[list[str]]:
    """One ssh or virsh process per fact, one after the other: each opens its own SSH connection."""
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
        ["ssh", src, "sh", "-c", shlex.quote(f"cat /proc/$(cat /run/libvirt/qemu/{vm}.pid)/cmdline")],
        ["ssh", src, "cat", f"/run/libvirt/qemu/{vm}.xml"],
        ["ssh", src, "tail", "-c", "16384", f"/var/log/libvirt/qemu/{vm}.log"],
        ["ssh", src, "cat", "/proc/self/mountinfo", "/proc/meminfo"],
        ["ssh", dst, "cat", "/proc/self/mountinfo", "/proc/meminfo", "/sys/devices/system/cpu/online"],
        ["ssh", dst, "ls", "-d", "/usr/bin/qemu-system-x86_64"],
    ]


def run_sequential(cmds: list[list[str]]) -> float:
    t0 = time.perf_counter()
    for argv in cmds:
        p = subprocess.run(argv, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise BenchError(f"sequential script: {shlex.join(argv)} exited {p.returncode}: {p.stderr.decode()[-300:]}")
    return time.perf_counter() - t0


# ------------------------------------------------------------------ the competent script

MARK = "@@migcheck-bench@@"
HOST_FILES = ("/proc/meminfo", "/proc/self/mountinfo", "/sys/devices/system/cpu/online",
              "/sys/devices/system/node/online", "/proc/net/fib_trie", "/proc/net/if_inet6", "/proc/net/unix",
              "/etc/libvirt/qemu.conf", "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
              "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages")

# Remote shell scripts: fixed text fed on stdin to `sh -s`. Names, paths and virsh command lines
# arrive as positional parameters ("$1", ...), quoted with shlex on this side; every output
# section starts with a marker line. Each ends with `exit 0`: verify() checks the sections.
# Host facts: $1 virsh commands separated by ';' (one virsh process), then files to print.
HOST_SCRIPT = f"""
virsh -q -c qemu:///system "$1"
shift
for f in "$@"; do printf '\\n{MARK} file %s @@\\n' "$f"; cat -- "$f" 2>/dev/null; done
exit 0
"""
# The source: $1 virsh commands, $2 the guest's name, $3 its disk image, then host files.
SOURCE_SCRIPT = f"""
virsh -q -c qemu:///system "$1"
vm=$2; img=$3; shift 3
for f in "$@" "/run/libvirt/qemu/$vm.xml"; do printf '\\n{MARK} file %s @@\\n' "$f"; cat -- "$f" 2>/dev/null; done
pid=$(cat "/run/libvirt/qemu/$vm.pid")
printf '\\n{MARK} cmdline @@\\n'; cat "/proc/$pid/cmdline"
printf '\\n{MARK} exe @@\\n'; readlink "/proc/$pid/exe"
printf '\\n{MARK} log @@\\n'; tail -c 262144 "/var/log/libvirt/qemu/$vm.log"
printf '\\n{MARK} stat %s @@\\n' "$img"; stat -L -c '%s %F' -- "$img"
printf '\\n{MARK} header @@\\n'; head -c 512 -- "$img"
printf '\\n{MARK} own-cpu-compare @@\\n'
virsh -q -c qemu:///system dumpxml -- "$vm" | virsh -q -c qemu:///system hypervisor-cpu-compare /dev/stdin
exit 0
"""
# The target's guest-specific questions: $1 virsh commands, $2 the guest's <cpu> element,
# $3 the disk image, then paths to stat.
TARGET_GUEST_SCRIPT = f"""
virsh -q -c qemu:///system "$1"
printf '\\n{MARK} cpu-compare @@\\n'; printf '%s' "$2" | virsh -q -c qemu:///system hypervisor-cpu-compare /dev/stdin
img=$3; shift 3
for p in "$@"; do printf '\\n{MARK} stat %s @@\\n' "$p"; stat -L -c '%s %F' -- "$p" 2>&1; done
if [ -e "$img" ]; then printf '\\n{MARK} header @@\\n'; head -c 512 -- "$img"; fi
exit 0
"""


def virsh_batch(*cmds: list[str]) -> str:
    """One virsh command line running several commands, with a marker between their outputs."""
    parts = []
    for cmd in cmds:
        parts += [shlex.join(["echo", f"{MARK} virsh {cmd[0]} @@"]), shlex.join(cmd)]
    return "; ".join(parts)


class CompetentScript:
    """The facts migcheck gathers for one guest, gathered as a careful operator's script would.

    ssh: one ControlMaster connection per host (ControlPath under a temp dir, closed at the end);
    every command below is a session over it. Both hosts at once; the target's guest-specific
    questions wait for the source's domain XML, as migcheck's do.
    """

    def __init__(self, src: str, dst: str, vm: str):
        self.src, self.dst, self.vm = src, dst, vm
        self.image = f"{IMAGES}/{vm}.qcow2"

    def ssh(self, ctl: str, host: str, script: str, args: list[str]) -> bytes:
        argv = ["ssh", "-o", "ControlMaster=auto", "-o", f"ControlPath={ctl}/%C", "-o", "ControlPersist=30",
                "-o", "BatchMode=yes", host, shlex.join(["sh", "-s", "--", *args])]
        p = subprocess.run(argv, input=script.encode(), capture_output=True, timeout=60)
        if p.returncode != 0:
            raise BenchError(f"competent script: ssh {host} exited {p.returncode}: {p.stderr.decode()[-300:]}")
        return p.stdout

    def run(self) -> float:
        with tempfile.TemporaryDirectory(prefix="mcbench-ssh-") as ctl:
            t0 = time.perf_counter()
            out: dict[str, bytes] = {}
            errors: list[BaseException] = []

            def source() -> None:
                cmds = virsh_batch(["version"], ["hostname"], ["capabilities"], ["domstate", "--reason", self.vm],
                                   ["dominfo", self.vm], ["dumpxml", self.vm], ["dumpxml", "--inactive", self.vm],
                                   ["domjobinfo", self.vm], ["snapshot-list", "--name", self.vm],
                                   ["blockjob", self.vm, "vda", "--info"],
                                   ["domcapabilities", "--virttype", "kvm", "--arch", "x86_64",
                                    "--machine", "q35"])
                out["source"] = self.ssh(ctl, self.src, SOURCE_SCRIPT, [cmds, self.vm, self.image, *HOST_FILES])

            def target_host() -> None:
                cmds = virsh_batch(["version"], ["hostname"], ["capabilities"], ["list", "--all", "--uuid", "--name"],
                                   ["net-list", "--all"], ["nwfilter-list"], ["secret-list"],
                                   ["pool-list", "--all", "--details"], ["freecell"])
                out["target"] = self.ssh(ctl, self.dst, HOST_SCRIPT, [cmds, *HOST_FILES])

            def guarded(fn):
                def run() -> None:
                    try:
                        fn()
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        errors.append(exc)
                return run

            threads = [threading.Thread(target=guarded(f)) for f in (source, target_host)]
            for t in threads:
                t.start()
            threads[0].join()
            if not errors:  # the guest's XML tells what to ask the target
                xml = section(out["source"], "virsh dumpxml").decode()
                cpu = xml[xml.index("<cpu"):xml.index("</cpu>") + len("</cpu>")] if "</cpu>" in xml else "<cpu/>"
                cmds = virsh_batch(["domcapabilities", "--virttype", "kvm", "--arch", "x86_64", "--machine", "q35"],
                                   ["pool-dumpxml", "images"])
                out["target-guest"] = self.ssh(ctl, self.dst, TARGET_GUEST_SCRIPT,
                                               [cmds, cpu, self.image, "/usr/bin/qemu-system-x86_64", self.image,
                                                f"/sys/class/net/{BRIDGE}"])
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            for host in (self.src, self.dst):
                subprocess.run(["ssh", "-o", f"ControlPath={ctl}/%C", "-O", "exit", host], capture_output=True,
                               timeout=30)
        if errors:
            raise errors[0]
        self.verify(out)
        return elapsed

    def verify(self, out: dict[str, bytes]) -> None:
        """Every section the script asked for came back with content."""
        wanted = {"source": ["virsh capabilities", "virsh dumpxml", "virsh domcapabilities", "cmdline", "log",
                             "own-cpu-compare", f"file /run/libvirt/qemu/{self.vm}.xml", "file /proc/meminfo", "header"],
                  "target": ["virsh capabilities", "virsh pool-list", "file /proc/self/mountinfo"],
                  "target-guest": ["virsh domcapabilities", "cpu-compare", f"stat /sys/class/net/{BRIDGE}"]}
        for part, names in wanted.items():
            for name in names:
                if not section(out.get(part, b""), name).strip():
                    raise BenchError(f"competent script: no {name!r} in the {part} answer")
        if b"identical" not in section(out["target-guest"], "cpu-compare") and \
                b"superset" not in section(out["target-guest"], "cpu-compare"):
            raise BenchError(f"competent script: cpu-compare said {section(out['target-guest'], 'cpu-compare')!r}")


def section(data: bytes, name: str) -> bytes:
    """The output between the marker named `name` and the next marker."""
    head = f"{MARK} {name} @@".encode()
    start = data.find(head)
    if start < 0:
        return b""
    start += len(head) + data[start + len(head):start + len(head) + 1].count(b"\n")
    end = data.find(MARK.encode(), start)
    return data[start:end if end >= 0 else len(data)]


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import migcheck

    compileall.compile_dir(str(Path(migcheck.__file__).parent), quiet=1)
    with Lab([HostSpec("bench-a", bridges=[BRIDGE]), HostSpec("bench-b", bridges=[BRIDGE])], prefix="mcbench",
             subnet="10.251.77.160/27", state_dir="/var/tmp/migcheck-lab-mcbench") as lab:
        a, b = lab.hosts
        set_up(lab)
        no_tunnel = dict(os.environ, MIGCHECK_NO_TUNNEL="1")
        real, minimal = check_argv(lab, REALISTIC, REALISTIC_FLAGS), check_argv(lab, MINIMAL, MINIMAL_FLAGS)
        sequential = sequential_script(a.name, b.name, REALISTIC)
        competent = CompetentScript(a.name, b.name, REALISTIC)
        workload = verify_realistic_workload(lab)  # also warms caches once
        timed(minimal, expect=EXPECTED_VERDICT)
        series: dict[str, list[float]] = {k: [] for k in (
            "floor", "real", "minimal", "no-tunnel", "competent", "sequential", "python", "help", "version")}
        for _ in range(args.rounds):  # interleaved, so load changes hit every series alike
            series["floor"].append(timed(["virsh", "-c", b.uri, "version"]))
            series["real"].append(timed(real, expect=EXPECTED_VERDICT))
            series["minimal"].append(timed(minimal, expect=EXPECTED_VERDICT))
            series["no-tunnel"].append(timed(real, no_tunnel, expect=EXPECTED_VERDICT))
            series["competent"].append(competent.run())
            series["sequential"].append(run_sequential(sequential))
            series["python"].append(timed([sys.executable, "-c", "pass"]))
            series["help"].append(timed([MIGCHECK, "--help"]))
            series["version"].append(timed([MIGCHECK, "version"]))
        med = {k: statistics.median(v) for k, v in series.items()}
        traced = subprocess.run(real, capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, MIGCHECK_TRACE="1"))
    report(args.rounds, lab.kvm, med, len(sequential), workload, traced.stderr)
    return 0


def report(rounds: int, kvm: bool, med: dict[str, float], n_sequential: int, workload: list[str], trace: str) -> None:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    f, r = med["floor"], med["real"]
    print(f"\nmigcheck bench: {rounds} interleaved rounds, medians; {os.cpu_count()} CPUs ({cpu}); "
          f"load average {os.getloadavg()[0]:.2f}; {'KVM' if kvm else 'TCG'}; every migcheck run verified: "
          f"verdict {EXPECTED_VERDICT}")
    print(f"  floor: virsh -c qemu+ssh://root@DST/system version          {f:.3f} s")
    print(f"  migcheck, realistic guest                                   {r:.3f} s  = {r / f:.2f} x floor")
    print(f"      ({REALISTIC}: 64 MiB, qcow2 disk in a dir pool on both hosts, virtio NIC on bridge {BRIDGE},")
    print(f"       host-model CPU; {' '.join(REALISTIC_FLAGS)} --format json; {'; '.join(workload)})")
    print(f"  migcheck, minimal guest ({MINIMAL}: no disk, no NIC, default CPU; --live)   "
          f"{med['minimal']:.3f} s  = {med['minimal'] / f:.2f} x floor")
    print(f"  migcheck, realistic, libvirt's own transport (MIGCHECK_NO_TUNNEL=1)  {med['no-tunnel']:.3f} s  = "
          f"{med['no-tunnel'] / f:.2f} x floor")
    print(f"  competent script, realistic guest's facts                   {med['competent']:.3f} s  = "
          f"{med['competent'] / r:.2f} x migcheck")
    print("      (one ssh ControlMaster connection per host, hosts in parallel; source: 1 remote shell, one virsh "
          "with 12 commands + 1 for its own CPU compare;")
    print("       target: 1 remote shell, one virsh with 9 commands, then after the source's XML 1 remote shell, "
          "one virsh with 3 commands + 1 for the CPU compare)")
    print(f"  sequential script ({n_sequential} commands, one SSH handshake each)      {med['sequential']:.3f} s  = "
          f"{med['sequential'] / r:.2f} x migcheck")
    print(f"  start-up: migcheck --help {med['help']:.3f} s, migcheck version {med['version']:.3f} s, "
          f"python -c pass {med['python']:.3f} s: +{med['help'] - med['python']:.3f} s and "
          f"+{med['version'] - med['python']:.3f} s")
    print("\nwhere the realistic check's time goes (MIGCHECK_TRACE=1: wall and CPU since the process started):")
    for line in re.split(r"\n|(?=migcheck trace)", trace):  # two threads' lines can meet on one line
        if line.startswith("migcheck trace"):
            print("  " + line.removeprefix("migcheck trace").strip())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_check: {exc}", file=sys.stderr)
        sys.exit(1)
