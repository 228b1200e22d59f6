"""A fleet of N lab hosts for `migcheck audit` at scale: shared by the fleet lab test
(tests/lab/test_fleet.py, 6 hosts) and the scale benchmark (tests/bench/bench_fleet.py, 3, 10
and 44 hosts); never both at once.

Hosts are plain tests.lab hosts (Lab, HostSpec: no bring-up code of its own), named
``<stem>-01`` ... and differing the way a real cluster drifts:

- two hosts in three have the bridge br-prod, the third has none;
- the first host has a folder of its own (/srv/<stem>-only-01).

Guests (64 MiB, 1 vCPU, diskless, as the lab makes them): each host has ``off_per_host`` guests
defined and shut off (checked ``--offline --persistent``), alternately plain and with a br-prod
NIC; every ``running_every``-th host (the first included) also runs one guest, started
``--paused``: a br-prod NIC (blocked towards the hosts without the bridge), and on the first host
a second one whose serial log is in that host's own folder (blocked everywhere: stuck). Most of
the fleet is therefore defined and shut off, a few guests run, and the matrix is not uniform.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.lab import HostSpec, Lab
from tests.lab._cmd import LabError
from tests.lab.audit_lab import BRIDGE_IF, serial_log

MAIN_CACHE = Path("/var/tmp/migcheck-lab/cache")  # the main lab's QEMU capabilities probe


@dataclass(frozen=True)
class FleetGuest:
    name: str
    host: str
    devices: str
    running: bool


@dataclass(frozen=True)
class Fleet:
    """What a fleet of ``n`` hosts holds: its hosts (HostSpecs) and guests, before bring-up."""

    specs: list[HostSpec]
    guests: list[FleetGuest]

    @property
    def hosts(self) -> list[str]:
        return [s.name for s in self.specs]

    def on(self, host: str) -> list[FleetGuest]:
        return [g for g in self.guests if g.host == host]

    def inventory_yaml(self) -> str:
        """One migration group of every host: each guest is checked against every other host."""
        return "groups:\n  fleet: [" + ", ".join(self.hosts) + "]\n"

    def describe(self) -> str:
        running = sum(g.running for g in self.guests)
        brprod = sum("br-prod" in s.bridges for s in self.specs)
        return (f"{len(self.specs)} hosts ({brprod} with bridge br-prod), {len(self.guests)} guests "
                f"({len(self.guests) - running} defined and shut off, {running} running paused, 64 MiB each), "
                f"one group: {len(self.guests) * (len(self.specs) - 1)} guest/target pairs")


def fleet(n: int, *, stem: str = "fl", off_per_host: int = 3, running_every: int = 4) -> Fleet:
    if n < 2:
        raise ValueError("a fleet needs at least two hosts")
    specs, guests = [], []
    for i in range(1, n + 1):
        name = f"{stem}-{i:02d}"
        own = f"/srv/{stem}-only-{i:02d}"
        specs.append(HostSpec(name, bridges=["br-prod"] if i % 3 else [], dirs=[own] if i == 1 else []))
        for k in range(1, off_per_host + 1):
            guests.append(FleetGuest(f"{name}-off{k}", name, BRIDGE_IF if k % 2 == 0 else "", False))
        if (i - 1) % running_every == 0:
            # a running guest needs its NIC's bridge on its own host to start
            guests.append(FleetGuest(f"{name}-run", name, BRIDGE_IF if i % 3 else "", True))
        if i == 1:
            guests.append(FleetGuest(f"{name}-stuck", name, serial_log(f"{own}/{name}-stuck.log"), True))
    return Fleet(specs, guests)


def fleet_lab(f: Fleet, *, prefix: str, subnet: str, state_dir: str, ready_timeout: float = 300) -> Lab:
    """The Lab for a fleet, its QEMU capabilities cache seeded from the main lab's when empty
    (libvirt otherwise probes QEMU for seconds on the first host)."""
    ours = Path(state_dir) / "cache"
    if not ours.exists() and MAIN_CACHE.is_dir():
        shutil.copytree(MAIN_CACHE, ours, dirs_exist_ok=True)
    return Lab(f.specs, prefix=prefix, subnet=subnet, state_dir=state_dir, ready_timeout=ready_timeout)


def populate(lab: Lab, f: Fleet) -> None:
    """Define every guest and start the running ones: one virsh process per host (its commands
    joined with virsh's own ';'), the XML files written into the host's /var/lib/libvirt folder
    (bind-mounted from the host's lab folder). Raises LabError naming the host on failure."""
    for name in f.hosts:
        h = lab.host(name)
        mine = f.on(name)
        if not mine:
            continue
        cmds = []
        for g in mine:
            (h.dir / "lib" / "images" / f"{g.name}.xml").write_text(lab.guest_xml(g.name, extra_devices=g.devices))
            cmds.append(f"define /var/lib/libvirt/images/{g.name}.xml")
        cmds += [f"start --paused {g.name}" for g in mine if g.running]
        p = h.virsh(" ; ".join(cmds), check=False, timeout=60 + 30 * len(mine))
        if p.returncode != 0:
            raise LabError(f"{name}: defining its guests failed: {(p.stderr or p.stdout).strip()}")
    for name in f.hosts:  # every guest where it should be, in the state it should have
        h = lab.host(name)
        p = h.virsh("list", "--all", "--name", check=False)
        running = h.virsh("list", "--name", check=False).stdout.split()
        want = {g.name for g in f.on(name)}
        if set(p.stdout.split()) != want or set(running) != {g.name for g in f.on(name) if g.running}:
            raise LabError(f"{name}: has guests {p.stdout.split()} (running {running}), expected {sorted(want)}")


def daemon_count(lab: Lab) -> dict[str, int]:
    """How many libvirtd, virtlogd, sshd and QEMU processes the lab's namespaces hold."""
    inodes = set(lab.netns_inodes())
    out = {"libvirtd": 0, "virtlogd": 0, "sshd": 0, "qemu-system-x86": 0}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            ino = (d / "ns" / "net").stat().st_ino
        except OSError:
            continue
        if ino in inodes:
            for k in out:
                if comm.startswith(k[:15]):
                    out[k] += 1
    return out


def machine_limits() -> dict[str, str]:
    """The kernel limits a big lab may hit, as this machine has them (for the benchmark's report)."""
    def read(p: str) -> str:
        try:
            return Path(p).read_text().strip()
        except OSError:
            return "?"
    nofile = subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True, timeout=10).stdout.strip()
    return {"inotify.max_user_instances": read("/proc/sys/fs/inotify/max_user_instances"),
            "inotify.max_user_watches": read("/proc/sys/fs/inotify/max_user_watches"),
            "kernel.pid_max": read("/proc/sys/kernel/pid_max"), "fs.file-max": read("/proc/sys/fs/file-max"),
            "ulimit -n": nofile}
