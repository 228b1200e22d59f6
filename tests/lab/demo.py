"""`make demo`: two real hypervisor hosts, the invtsc guest and its fixed twin, migcheck's verdicts,
then the real `virsh migrate` outcomes. Everything is torn down at the end.

Run as root: python -m tests.lab.demo
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.lab import HostSpec, Lab
from tests.lab.guest import disable_features_xml

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text}\033[0m" if sys.stdout.isatty() else f"\n=== {text}", flush=True)


def show(argv: list[str]) -> int:
    print("$ " + " ".join(argv), flush=True)
    return subprocess.run(argv, timeout=300).returncode


def main() -> int:
    banner("bringing up two lab hosts (libvirtd + sshd + QEMU in their own namespaces)")
    with Lab([HostSpec("demo-src"), HostSpec("demo-dst")], prefix="mcdemo", subnet="10.251.77.224/27",
             state_dir="/var/tmp/migcheck-lab-mcdemo") as lab:
        src, dst = lab.hosts
        print(f"{src.name} ({src.ip}) and {dst.name} ({dst.ip}) are up in {lab.up_seconds}s; "
              f"{'KVM' if lab.kvm else 'TCG (no usable /dev/kvm: the invtsc blocker does not exist under TCG)'}")
        tsc = re.search(r"<counter name='tsc' frequency='(\d+)'", src.virsh("capabilities").stdout)
        quirks = disable_features_xml(lab.cpu_quirks)
        guests = {
            "invtsc-guest": lab.guest_xml("invtsc-guest", f"<cpu mode='host-passthrough' migratable='off'>{quirks}</cpu>"),
            "invtsc-fixed": lab.guest_xml(
                "invtsc-fixed", f"<cpu mode='host-passthrough' migratable='off'>{quirks}</cpu>",
                clock_xml=f"<clock offset='utc'><timer name='tsc' frequency='{tsc.group(1)}'/></clock>" if tsc else ""),
        }
        banner("two guests on demo-src: host-passthrough with migratable='off' (invtsc exposed), "
               "and its twin with the TSC frequency pinned")
        for name, xml in guests.items():
            src.write_file(f"/tmp/{name}.xml", xml)
            src.virsh("define", f"/tmp/{name}.xml")
            src.virsh("start", "--paused", name)
        show(["virsh", "-c", src.uri, "list", "--all"])

        for name in guests:
            banner(f"migcheck: can {name} move from {src.name} to {dst.name}?")
            code = show([MIGCHECK, src.name, dst.name, name, "--live"])
            print(f"(exit code {code})")

        banner("migcheck --format json, as a wrapper script reads it")
        show([MIGCHECK, src.name, dst.name, "invtsc-guest", "--live", "--format", "json"])

        for name in guests:
            banner(f"the real migration: virsh migrate --live {name}")
            p = lab.migrate(src, dst, name, ["--live"])
            print(f"$ virsh -c {src.uri} migrate --live {name} {dst.uri}")
            print(p.stdout.strip() or "", (p.stderr or "").strip(), sep="\n" if p.stdout.strip() else "")
            print(f"-> {'MIGRATED' if p.returncode == 0 else 'FAILED'} (exit {p.returncode})")
        show(["virsh", "-c", dst.uri, "list", "--all"])
        banner("tearing the lab down")
    print("done: no namespaces, processes or mounts left behind.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
