"""The faults lab (prefix mcflt): its own hosts, and a migcheck runner that times each run.

Used by test_faults.py, test_hostile_names.py and test_read_only.py, each with its
own module-scoped lab (only one lab per prefix can be up, so they never overlap).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.pairing import MIGCHECK

PREFIX = "mcflt"
SUBNET = "10.251.77.96/27"
STATE_DIR = Path("/var/tmp/migcheck-lab-mcflt")


def flt_lab(specs: list[HostSpec]) -> Iterator[Lab]:
    """Bring the lab up (seeded with the main lab's QEMU caps cache when ours is empty), yield, tear down."""
    require_lab()
    ours, main = STATE_DIR / "cache", Path("/var/tmp/migcheck-lab/cache")
    if not ours.exists() and main.is_dir():
        shutil.copytree(main, ours, dirs_exist_ok=True)
    lab = Lab(specs, prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)
    with lab:
        inodes = lab.netns_inodes()
        yield lab
    left = lab.leftovers(inodes)
    assert not left, f"lab teardown left: {left}"


@dataclass
class Run:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        """stderr split the way a terminal or a log would split it (CR included)."""
        return self.stderr.splitlines()

    @property
    def report(self) -> dict:
        return json.loads(self.stdout) if self.stdout.strip() else {}


def migcheck(*args: str, timeout: float = 60) -> Run:
    t0 = time.monotonic()
    p = subprocess.run([MIGCHECK, *args], capture_output=True, text=True, timeout=timeout)
    return Run([MIGCHECK, *args], p.returncode, p.stdout, p.stderr, round(time.monotonic() - t0, 2))


def define_guest(lab: Lab, host, name: str, *, transient: bool = False, start: bool = True) -> None:
    """A diskless guest named exactly `name` (any characters libvirt allows), started paused."""
    from xml.sax.saxutils import escape

    xml = lab.guest_xml("PLACEHOLDER").replace("<name>PLACEHOLDER</name>", f"<name>{escape(name)}</name>")
    path = f"/var/lib/libvirt/images/mcflt-guest-{abs(hash(name))}.xml"  # no guest name in any path
    host.write_file(path, xml)
    try:
        if transient:
            host.virsh("create", path, "--paused")
        else:
            host.virsh("define", path)
            if start:  # --domain: a name like --help is not an option to virsh
                host.virsh("start", "--paused", "--domain", name)
    finally:
        host.run(["rm", "-f", path])


def remove_guest(lab: Lab, name: str) -> None:
    for h in lab.hosts:
        if h.spec.start_libvirtd:
            h.virsh("destroy", "--domain", name, check=False, timeout=30)
            h.virsh("undefine", "--domain", name, check=False, timeout=30)
