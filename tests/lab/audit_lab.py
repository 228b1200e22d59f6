"""The fleet-audit lab: three hosts that differ, fifteen small guests. Shared by the lab test
(tests/lab/test_audit.py) and the benchmark (tests/bench/bench_audit.py); never both at once.

    aud-a: bridge br-prod, network audnet, folder /srv/only-a
    aud-b: bridge br-prod, network audnet
    aud-c: neither, folder /srv/only-c

Guests (64 MiB, diskless, started --paused unless named *-off): plain ones go anywhere; a
br-prod interface cannot go to aud-c; an audnet interface cannot go to aud-c; a serial log in
a host-only folder cannot go anywhere (stuck); a shut-off guest is checked --offline --persistent.

Also here: running the audit and the single-pair check the way an operator would, and comparing
the audit's matrix with the single-pair checks (test_audit.py and test_fleet.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.lab import HostSpec, Lab

PREFIX = "mcaud"
SUBNET = "10.251.77.32/27"
STATE_DIR = "/var/tmp/migcheck-lab-mcaud"
HOSTS = ["aud-a", "aud-b", "aud-c"]
NETWORK_XML = "<network><name>audnet</name><bridge name='virbr-aud'/></network>"

BRIDGE_IF = "<interface type='bridge'><source bridge='br-prod'/><model type='virtio'/></interface>"
NETWORK_IF = "<interface type='network'><source network='audnet'/><model type='virtio'/></interface>"


def serial_log(path: str) -> str:
    return f"<serial type='file'><source path='{path}'/><target port='1'/></serial>"


# guest -> (host, extra devices, started)
GUESTS: dict[str, tuple[str, str, bool]] = {
    "a-plain1": ("aud-a", "", True),
    "a-plain2": ("aud-a", "", True),
    "a-brprod": ("aud-a", BRIDGE_IF, True),
    "a-net": ("aud-a", NETWORK_IF, True),
    "a-serial": ("aud-a", serial_log("/srv/only-a/a-serial.log"), True),
    "a-off": ("aud-a", BRIDGE_IF, False),
    "b-plain1": ("aud-b", "", True),
    "b-plain2": ("aud-b", "", True),
    "b-brprod": ("aud-b", BRIDGE_IF, True),
    "b-net": ("aud-b", NETWORK_IF, True),
    "b-off": ("aud-b", "", False),
    "c-plain1": ("aud-c", "", True),
    "c-plain2": ("aud-c", "", True),
    "c-serial": ("aud-c", serial_log("/srv/only-c/c-serial.log"), True),
    "c-off": ("aud-c", "", False),
}


def audit_lab() -> Lab:
    return Lab([HostSpec("aud-a", bridges=["br-prod"], dirs=["/srv/only-a"]),
                HostSpec("aud-b", bridges=["br-prod"]),
                HostSpec("aud-c", dirs=["/srv/only-c"])],
               prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)


def populate(lab: Lab) -> None:
    """Networks and guests; raises (naming the host) when something cannot be set up."""
    for name in ("aud-a", "aud-b"):
        h = lab.host(name)
        h.write_file("/var/lib/libvirt/images/audnet.xml", NETWORK_XML)
        h.virsh("net-define", "/var/lib/libvirt/images/audnet.xml")
        h.virsh("net-start", "audnet")
    for vm, (host, devices, started) in GUESTS.items():
        h = lab.host(host)
        h.write_file(f"/var/lib/libvirt/images/{vm}.xml", lab.guest_xml(vm, extra_devices=devices))
        h.virsh("define", f"/var/lib/libvirt/images/{vm}.xml")
        if started:
            h.virsh("start", "--paused", vm, timeout=120)


def inventory_yaml() -> str:
    return "groups:\n  lab: [" + ", ".join(HOSTS) + "]\n"


MIGCHECK = [sys.executable, "-m", "migcheck.cli"]


def run_audit(tmp: Path, inventory: str, *extra: str, timeout: float = 600) -> tuple[int, dict, str]:
    """``migcheck audit INVENTORY --live --format json`` (history in tmp unless extra says --no-db):
    exit code, the JSON report, stderr."""
    inv = tmp / "fleet.yml"
    inv.write_text(inventory)
    db = [] if "--no-db" in extra else ["--db", str(tmp / "audit.sqlite")]
    p = subprocess.run([*MIGCHECK, "audit", str(inv), "--live", "--format", "json", *db, *extra],
                       capture_output=True, text=True, timeout=timeout)
    assert p.stdout, p.stderr
    return p.returncode, json.loads(p.stdout), p.stderr


def pair_report(src: str, dst: str, vm: str, flags: list[str], timeout: float = 300) -> dict:
    """``migcheck SRC DST VM FLAGS --format json``: the single-pair check's report."""
    p = subprocess.run([*MIGCHECK, src, dst, vm, *flags, "--format", "json"], capture_output=True, text=True,
                       timeout=timeout)
    assert p.stdout, p.stderr
    return json.loads(p.stdout)


def cell_of(report: dict) -> tuple[str, list[dict]]:
    """A single-pair report as the audit's matrix cell shows it: the verdict and the findings that
    are not info (rule, severity, message), in the report's order."""
    return report["verdict"], [{"rule": f["rule"], "severity": f["severity"], "message": f["message"]}
                               for f in report["findings"] if f["severity"] in ("block", "unknown", "risk")]


def matrix_mismatches(data: dict, home: dict[str, str], hosts: list[str]) -> tuple[int, list[str]]:
    """Check every cell of an audit report against ``migcheck SRC DST VM`` with the guest's flags.

    home: guest -> the host it is on; hosts: the group, in inventory order (each guest's targets
    must be every other host, in that order). Returns (cells compared, what differed).
    """
    problems, n = [], 0
    for g in data["guests"]:
        vm, host = g["name"], g["host"]
        if home.get(vm) != host:
            problems.append(f"{vm}: the audit has it on {host}, the lab on {home.get(vm)}")
            continue
        targets = [t["host"] for t in g["targets"]]
        if targets != [h for h in hosts if h != host]:
            problems.append(f"{vm}: targets {targets}")
        for cell in g["targets"]:
            got = (cell["verdict"], cell["findings"])
            want = cell_of(pair_report(host, cell["host"], vm, g["flags"]))
            if got != want:
                problems.append(f"{vm} {host} -> {cell['host']} {g['flags']}: audit {got}, migcheck SRC DST VM {want}")
            n += 1
    return n, problems
