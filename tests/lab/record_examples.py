"""Re-record the shipped examples/snapshots/* from the lab with the current probe.

Run as root, under the lab lock, from the repository:

    flock /tmp/migcheck-lab.lock .venv/bin/python -m tests.lab.record_examples

Brings up the two plain lab hosts (mc-a, mc-b, as the lab tests do), defines the invtsc guest and
its twin with the TSC frequency pinned (as `make demo` does), saves `migcheck mc-a mc-b NAME --live
--save DIR` for each, replaces the shipped directories, and tears the lab down.
tests/unit/test_first_contact.py replays what it wrote.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab import HostSpec, Lab
from tests.lab.guest import disable_features_xml

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "snapshots"
SHIPPED = {"invtsc-blocked": "invtsc-guest", "invtsc-fixed": "invtsc-fixed"}  # directory: guest


def main() -> int:
    with Lab([HostSpec("mc-a"), HostSpec("mc-b")]) as lab:
        src, dst = lab.hosts
        if not lab.kvm:
            print("no usable /dev/kvm: under TCG the invtsc blocker does not exist; not recording", file=sys.stderr)
            return 1
        tsc = re.search(r"<counter name='tsc' frequency='(\d+)'", src.virsh("capabilities").stdout)
        if not tsc:
            print("the source reports no TSC frequency: cannot pin the fixed twin's", file=sys.stderr)
            return 1
        cpu = f"<cpu mode='host-passthrough' migratable='off'>{disable_features_xml(lab.cpu_quirks)}</cpu>"
        guests = {"invtsc-guest": lab.guest_xml("invtsc-guest", cpu),
                  "invtsc-fixed": lab.guest_xml("invtsc-fixed", cpu, clock_xml="<clock offset='utc'><timer name='tsc' "
                                                f"frequency='{tsc.group(1)}'/></clock>")}
        for name, xml in guests.items():
            src.write_file(f"/tmp/{name}.xml", xml)
            src.virsh("define", f"/tmp/{name}.xml")
            src.virsh("start", "--paused", name)
        with tempfile.TemporaryDirectory() as tmp:
            for directory, name in SHIPPED.items():
                out = Path(tmp) / directory
                run = subprocess.run([MIGCHECK, src.name, dst.name, name, "--live", "--save", str(out)],
                                     capture_output=True, text=True, timeout=300)
                print(f"{name}: exit {run.returncode}\n{run.stdout}{run.stderr}", flush=True)
                if not (out / "snapshot.json").is_file():
                    print(f"{name}: nothing saved", file=sys.stderr)
                    return 1
            for directory in SHIPPED:
                shutil.rmtree(EXAMPLES / directory, ignore_errors=True)
                shutil.copytree(Path(tmp) / directory, EXAMPLES / directory)
    print(f"recorded: {', '.join(SHIPPED)} in {EXAMPLES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
