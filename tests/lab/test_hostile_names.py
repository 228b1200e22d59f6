"""Hostile guest names reach no shell (issue 4, item 2), proven end to end on lab hosts.

Each guest is named to run a command if any shell on the way (migcheck's, ssh's remote
shell, libvirtd's, QEMU's) ever sees its name unquoted. libvirt forbids '/' and newlines
in names, so the payloads spell '/' as printf '\\057' or work in $HOME. Each guest is
checked by migcheck (check and probe), must get the right verdict (ok, proven by a real
`virsh migrate`), and afterwards no marker file exists anywhere a shell could have put it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.lab import HostSpec
from tests.lab.flt_lab import define_guest, flt_lab, migcheck, remove_guest

pytestmark = pytest.mark.lab

MARK = "mcflt-pwned"
HOSTILE = [
    "x; touch $(printf '\\057tmp\\057mcflt-pwned-1-%s' $(id -u)) #",
    "a`touch $(printf '\\057tmp\\057mcflt-pwned-2')`b",
    "q'; cd; touch mcflt-pwned-3; echo '",
    'd"q; cd; touch mcflt-pwned-7; echo "',
    "ünï €ode $(cd;touch mcflt-pwned-4)\ttab",
    "| touch mcflt-pwned-5 & %s%n ${IFS} * ..",
    "--help",  # migcheck must not print its help and exit 0 for it
    "-oProxyCommand=touch mcflt-pwned-6",
]
# Where a shell would have created its marker: /tmp (shared by the lab hosts and this
# namespace), $HOME of root, and the working directories of libvirtd, QEMU and sshd.
MARKER_DIRS = ["/tmp", "/root", "/", "/var/lib/libvirt", "/var/lib/libvirt/qemu", "/run/libvirt/qemu",
               "/var/log/libvirt/qemu", "/run"]


@pytest.fixture(scope="module")
def lab():
    yield from flt_lab([HostSpec("flt-a"), HostSpec("flt-b")])


def _markers(lab) -> list[str]:
    found = [str(p) for d in MARKER_DIRS + [os.getcwd()] for p in Path(d).glob(f"{MARK}*")]
    for h in lab.hosts:  # their own /run, /var/lib/libvirt, /var/log/libvirt
        p = h.run(["find", *MARKER_DIRS, "-maxdepth", "1", "-name", f"{MARK}*"])
        found += [f"{h.name}:{line}" for line in p.stdout.split()]
    return found


def _marker_of(name: str) -> str:
    import re

    return re.search(r"mcflt-pwned-\d+", name).group(0)


@pytest.mark.parametrize("name", [n for n in HOSTILE if "pwned" in n], ids=lambda n: _marker_of(n))
def test_the_payloads_do_run_when_a_shell_sees_them(lab, name):
    """Positive control: each payload leaves its marker when interpolated into a shell command
    the careless ways (unquoted, in '...', in "...", as an ssh argument), so the marker checks
    of the other tests would see an execution."""
    a = lab.hosts[0]
    env = ["env", "HOME=/tmp"]  # 'cd' alone goes to /tmp, where the markers are looked for
    for template in ("cd /tmp; echo {n}", "cd /tmp; echo '{n}'", 'cd /tmp; echo "{n}"'):
        a.run([*env, "sh", "-c", template.format(n=name)])
    if name.startswith("-o"):
        subprocess.run(["ssh", "-F", "/dev/null", name, "-oBatchMode=yes", "-oConnectTimeout=2", "127.0.0.1",
                        "true"], cwd="/tmp", capture_output=True, timeout=30)
    found = _markers(lab)
    assert any(_marker_of(name) in m for m in found), f"{name!r} left no marker: {found}"
    for p in Path("/tmp").glob(f"{MARK}*"):
        p.unlink()


@pytest.fixture(autouse=True)
def no_markers_before(lab):
    for d in MARKER_DIRS:
        for p in Path(d).glob(f"{MARK}*"):
            p.unlink()
    assert _markers(lab) == []


@pytest.mark.parametrize("name", HOSTILE, ids=[f"name{i}" for i in range(1, len(HOSTILE) + 1)])
def test_hostile_guest_name_is_checked_and_nothing_runs(lab, name):
    a, b = lab.hosts
    define_guest(lab, a, name)
    try:
        assert a.virsh("domname", a.virsh("domuuid", "--domain", name).stdout.strip()).stdout.strip() == name
        # as a script would call it; a name starting with '-' must come after '--'
        guest = ["--", name] if name.startswith("-") else [name]
        run = migcheck("flt-a", "flt-b", "--format", "json", "-v", *guest, "--live", timeout=90)
        report = run.report
        assert (run.code, report.get("verdict")) == (0, "ok"), run.stdout[-3000:] + run.stderr
        assert report["domain"] == name
        unknown = [f for f in report["findings"] if f["severity"] == "unknown"]
        assert not unknown, unknown
        # the running QEMU was read (its pid file and command line, named after the guest)
        assert "cpu.xml-differs-from-running" not in {f["rule"] for f in report["findings"]}
        table = migcheck("flt-a", "flt-b", *guest, "--live", timeout=90)
        assert table.code == 0 and "verdict: OK" in table.stdout, table.stdout + table.stderr
        probe = migcheck("probe", "flt-a", *guest, timeout=90)
        assert probe.code == 0 and probe.stderr == "", probe.stderr
        if name.startswith("-"):  # without '--' it is a usage error, never the help with exit 0
            bare = migcheck("flt-a", "flt-b", name, "--live")
            assert bare.code == 2 and len(bare.lines) == 1, (bare.code, bare.stderr)
        # the verdict is right: the real migration works
        p = subprocess.run(["virsh", "-c", a.uri, "migrate", "--live", "--domain", name, "--desturi", b.uri],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert b.virsh("domstate", "--domain", name).stdout.strip() == "paused"
    finally:
        remove_guest(lab, name)
    assert _markers(lab) == []


def test_names_libvirt_refuses_are_refused_before_any_host_sees_them(lab):
    """Newlines and escape characters never get a guest; migcheck given one says so in one line."""
    a = lab.hosts[0]
    xml = lab.guest_xml("PLACEHOLDER").replace("PLACEHOLDER", "nl\nname")
    a.write_file("/var/lib/libvirt/images/mcflt-nl.xml", xml)
    p = a.virsh("define", "/var/lib/libvirt/images/mcflt-nl.xml", check=False)
    a.run(["rm", "-f", "/var/lib/libvirt/images/mcflt-nl.xml"])
    assert p.returncode != 0 and "invalid char in name" in p.stderr, p.stderr
    for name in ["nl\nname; touch mcflt-pwned-6", "esc\x1b]0;title\x07\x1b[31mred\rcr"]:
        run = migcheck("flt-a", "flt-b", name, "--live", "--format", "json")
        assert run.code == 3 and len(run.lines) == 1, run.stderr
        assert run.lines[0].startswith("migcheck: flt-a: no domain named") and "\x1b" not in run.stderr
        assert run.report["verdict"] == "unknown"
    assert _markers(lab) == []


@pytest.mark.parametrize("host", ["-oProxyCommand=touch mcflt-pwned-7", "flt-a;touch mcflt-pwned-8",
                                  "$(touch mcflt-pwned-9)", "root@flt-a`touch mcflt-pwned-10`"])
def test_hostile_host_arguments_are_usage_errors(lab, host):
    """Refused before anything is contacted (exit 2). An argument starting with '-' is an unknown
    option to the command line parser first, which prints its own usage box, not one line."""
    for args in ([host, "flt-b", "vm"], ["flt-a", host, "vm"], ["probe", host]):
        run = migcheck(*args)
        assert run.code == 2, (args, run.code, run.stderr)
        if not run.argv[1].startswith("-") and not (args[0] == "probe" and host.startswith("-")):
            assert len(run.lines) == 1 and run.lines[0].startswith("migcheck: "), (args, run.stderr)
    assert _markers(lab) == []
