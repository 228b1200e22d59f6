"""Never wrong when things go wrong (issue 4): every fault ends in bounded time with exit
code 3, one line on stderr naming the host and the cause, a JSON report whose verdict is
"unknown", and no traceback. Against real lab hosts:

  flt-a, flt-b   plain hosts (source and target)
  flt-c          no sshd, no libvirtd: port 22 is closed
  flt-d          sshd but no libvirtd
  flt-e          its SSH host key is not in known_hosts

Secrets in host URIs (item 4 of the issue) are tested here too, on success and failure paths.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from migcheck.connectors.hostspec import parse_host
from tests.lab import HostSpec
from tests.lab.flt_lab import STATE_DIR, Run, define_guest, flt_lab, migcheck, remove_guest

pytestmark = pytest.mark.lab

VM = "flt-vm"
SECRET_URI = "qemu+ssh://root:secretpw@{host}/system?keyfile=/root/.ssh/secret_key&known_hosts=/x"
SECRETS = ("secretpw", "secret_key")


@pytest.fixture(scope="module")
def lab():
    yield from flt_lab([
        HostSpec("flt-a"), HostSpec("flt-b"),
        HostSpec("flt-c", start_sshd=False, start_libvirtd=False),
        HostSpec("flt-d", start_libvirtd=False),
        HostSpec("flt-e", ssh_host_key_registered=False),
    ])


@pytest.fixture(scope="module")
def vm(lab):
    define_guest(lab, lab.host("flt-a"), VM)
    yield VM
    remove_guest(lab, VM)


def assert_fault(run: Run, host: str, *causes: str, bound: float, json_report: bool = True) -> None:
    """Exit 3 within bound seconds, one stderr line naming host and cause, JSON verdict unknown."""
    print(f"\n  FAULT exit={run.code} {run.seconds}s: {run.stderr.strip()}")
    assert run.seconds < bound, f"took {run.seconds}s (bound {bound}s)"
    assert run.code == 3, (run.code, run.stderr, run.stdout[:500])
    assert "Traceback" not in run.stderr + run.stdout
    assert len(run.lines) == 1, f"{len(run.lines)} lines on stderr: {run.stderr!r}"
    line = run.lines[0]
    assert line.startswith(f"migcheck: {host}"), line
    assert all(c.lower() in line.lower() for c in causes), f"{causes} not in {line!r}"
    assert len(line) <= 700, line
    if json_report:
        report = run.report
        assert report["verdict"] == "unknown" and report["exit_code"] == 3, report
        assert report["errors"] and report["errors"][0] in line


# ------------------------------------------------------------------ unreachable hosts


def test_target_port_closed(lab, vm):
    run = migcheck("flt-a", "flt-c", vm, "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "flt-c", "connection refused", bound=8)


def test_source_port_closed(lab, vm):
    run = migcheck("flt-c", "flt-b", vm, "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "flt-c", "connection refused", bound=8)


def test_target_address_where_nothing_answers(lab, vm):
    """An address of the lab's subnet that no host holds: no ARP answer, 'No route to host'."""
    run = migcheck("flt-a", "10.251.77.120", vm, "--live", "--timeout", "10", "--format", "json")
    assert_fault(run, "10.251.77.120", bound=13)
    assert "no route to host" in run.lines[0].lower() or "no complete answer within 10s" in run.lines[0]


def test_libvirtd_stopped(lab, vm):
    run = migcheck("flt-a", "flt-d", vm, "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "flt-d", "libvirtd is not running", bound=8)


def test_authentication_refused(lab, vm):
    run = migcheck("flt-a", "nouser@flt-b", vm, "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "nouser@flt-b", "authentication refused", bound=8)
    assert "Invalid user nouser" in lab.host("flt-b").dir.joinpath("sshd.log").read_text()


def test_unknown_host_key(lab, vm):
    run = migcheck("flt-a", "flt-e", vm, "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "flt-e", "host key", "unknown", bound=8)
    assert lab.host("flt-e").virsh("version").returncode == 0  # its libvirtd is fine: the key is the cause


def test_changed_host_key(lab, vm, tmp_path):
    """As OpenSSH: a known host presenting another key is refused, by paramiko and by libvirt's ssh."""
    known = STATE_DIR / "known_hosts"
    saved = known.read_text()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True, timeout=30)
    other = " ".join((tmp_path / "k.pub").read_text().split()[:2])
    lines = [f"{ln.split()[0]} {other}" if ln.startswith("flt-b,") else ln for ln in saved.splitlines()]
    assert lines != saved.splitlines()
    try:
        known.write_text("\n".join(lines) + "\n")
        run = migcheck("flt-a", "flt-b", vm, "--live", "--timeout", "5", "--format", "json")
        assert_fault(run, "flt-b", "host key", "changed", bound=8)
        run = migcheck("flt-a", "flt-b", vm, "--live", "--timeout", "5", "--no-ssh", "--format", "json")
        assert_fault(run, "flt-b", "host key", "changed", bound=8)
    finally:
        known.write_text(saved)
    assert migcheck("flt-a", "flt-b", vm, "--live", "--format", "json").code == 0


# ------------------------------------------------------------------ hung and slow hosts


SILENT_SERVER = textwrap.dedent("""
    # Accepts TCP connections and never says a word; stops by itself after argv[2] seconds.
    import socket, sys, time
    s = socket.socket()
    s.bind((sys.argv[1], 0))
    s.listen(16)
    s.settimeout(0.5)
    print(s.getsockname()[1], flush=True)
    end, held = time.monotonic() + float(sys.argv[2]), []
    while time.monotonic() < end:
        try:
            held.append(s.accept()[0])
        except socket.timeout:
            pass
""")


@pytest.fixture
def silent_ssh():
    """An 'SSH server' on 127.0.0.96 that accepts and never answers; its URI."""
    p = subprocess.Popen([sys.executable, "-c", SILENT_SERVER, "127.0.0.96", "60"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        with socket.create_connection(("127.0.0.96", port), timeout=5):
            pass
        yield f"qemu+ssh://root@127.0.0.96:{port}/system"
    finally:
        p.kill()
        p.wait(timeout=10)


def test_ssh_server_that_never_answers(lab, vm, silent_ssh):
    run = migcheck("flt-a", silent_ssh, vm, "--live", "--timeout", "3", "--format", "json")
    assert_fault(run, silent_ssh, "no complete answer within 3s", bound=6)


def test_source_that_never_answers(lab, vm, silent_ssh):
    run = migcheck(silent_ssh, "flt-b", vm, "--live", "--timeout", "3", "--format", "json")
    assert_fault(run, silent_ssh, "no complete answer within 3s", bound=6)


def _ssh_processes_to(port: int) -> list[str]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ssh") and str(port).encode() in argv and b"127.0.0.96" in argv:
            out.append(f"{pid}: {b' '.join(argv)[:120]!r}")
    return out


def test_host_slower_than_the_timeout(lab, vm, silent_ssh):
    run = migcheck("flt-a", silent_ssh, vm, "--timeout", "2", "--format", "json")
    assert_fault(run, silent_ssh, "within 2s", "--timeout", bound=4.5)
    run = migcheck("probe", silent_ssh, vm, "--timeout", "2")
    assert_fault(run, silent_ssh, "within 2s", bound=4.5, json_report=False)


def test_no_ssh_process_outlives_migcheck(lab, vm, silent_ssh):
    """libvirt's qemu+ssh transport runs ssh; stuck on a silent server, it must end with migcheck."""
    port = int(silent_ssh.rsplit(":", 1)[1].split("/")[0])
    run = migcheck("probe", silent_ssh, "--timeout", "2", "--no-ssh")  # libvirt's own ssh, straight away
    assert_fault(run, silent_ssh, "within 2s", "opening the libvirt connection", bound=4.5, json_report=False)
    end = time.monotonic() + 3
    while _ssh_processes_to(port) and time.monotonic() < end:
        time.sleep(0.2)
    assert _ssh_processes_to(port) == []


# ------------------------------------------------------------------ the guest


def test_vm_not_found(lab, vm):
    run = migcheck("flt-a", "flt-b", "no-such-guest", "--live", "--timeout", "5", "--format", "json")
    assert_fault(run, "flt-a", "no domain named 'no-such-guest'", bound=8)


DESTROY_MID_PROBE = textwrap.dedent("""
    # migcheck as installed, with one injection: right after the guest's XML was read and
    # before its QEMU files are, the real guest is destroyed by the real libvirtd.
    import subprocess, sys
    import migcheck.probe.gather as g
    from tests.lab import Lab
    from tests.lab.flt_lab import PREFIX, STATE_DIR

    host = Lab.attach(PREFIX, STATE_DIR).host(sys.argv[1])
    vm = sys.argv[2]
    original = g._gather_running_qemu

    def destroy_then_gather(session, raw, rd):
        host.virsh("destroy", vm)
        return original(session, raw, rd)

    g._gather_running_qemu = destroy_then_gather
    sys.argv = ["migcheck", *sys.argv[3:]]
    from migcheck.cli import main
    main()
""")


@pytest.mark.parametrize("transient", [True, False], ids=["transient-vanishes", "persistent-stops"])
def test_vm_disappearing_between_two_steps_of_the_probe(lab, transient):
    """The lab cannot time a destroy between two libvirt calls by itself: the destroy is injected
    at the probe level (between the XML and the QEMU file reads), against real hosts."""
    name = "flt-vanish"
    define_guest(lab, lab.host("flt-a"), name, transient=transient)
    try:
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-c", DESTROY_MID_PROBE, "flt-a", name,
                            "flt-a", "flt-b", name, "--live", "--timeout", "10", "--format", "json"],
                           capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
        run = Run(p.args, p.returncode, p.stdout, p.stderr, round(time.monotonic() - t0, 2))
        assert lab.host("flt-a").virsh("domstate", name, check=False).stdout.strip() in ("", "shut off")
        cause = "disappeared while it was being probed" if transient else "changed while it was being probed"
        assert_fault(run, "flt-a", f"'{name}'", cause, bound=12)
    finally:
        remove_guest(lab, name)


# ------------------------------------------------------------------ a crashing check


CRASHING_CHECK = textwrap.dedent("""
    import sys
    from migcheck.checks.registry import all_checks, check
    from migcheck.report.model import Severity

    all_checks()

    @check("test.crash", Severity.BLOCK, "always crashes")
    def crash(ctx):
        raise RuntimeError("boom")

    sys.argv = ["migcheck", *sys.argv[1:]]
    from migcheck.cli import main
    main()
""")


def test_a_crashing_check_is_unknown_end_to_end(lab, vm):
    p = subprocess.run([sys.executable, "-c", CRASHING_CHECK, "flt-a", "flt-b", vm, "--live", "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    report = Run(p.args, p.returncode, p.stdout, p.stderr, 0).report
    assert (p.returncode, report["verdict"]) == (3, "unknown"), p.stdout[:2000] + p.stderr
    crash = next(f for f in report["findings"] if f["rule"] == "test.crash")
    assert crash["severity"] == "unknown" and "boom" in crash["message"]
    assert "Traceback" not in p.stderr


# ------------------------------------------------------------------ no secrets out


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked: ...{text[max(0, text.find(secret) - 200):][:400]}"


def test_no_secret_in_output_when_it_works(lab, vm, tmp_path):
    uri = SECRET_URI.format(host="flt-b")
    for fmt in ("json", "table"):
        run = migcheck("flt-a", uri, vm, "--live", "-v", "--format", fmt, "--save", str(tmp_path / fmt))
        assert run.code == 0, run.stdout[-2000:] + run.stderr
        _assert_no_secret(run.stdout, run.stderr)
    run = migcheck("probe", uri, "--save", str(tmp_path / "probe"))
    assert run.code == 0, run.stderr
    _assert_no_secret(run.stdout, run.stderr)
    run = migcheck("probe", uri)
    assert run.code == 0 and '"uri"' in run.stdout, run.stderr
    _assert_no_secret(run.stdout, run.stderr)
    saved = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(saved) > 5
    _assert_no_secret(*(f.read_text(errors="replace") for f in saved))


@pytest.mark.parametrize("host,cause", [("flt-c", "connection refused"), ("flt-d", "libvirtd is not running"),
                                        ("flt-e", "unknown"), ("nouser@flt-b", "authentication refused")])
def test_no_secret_in_output_when_it_fails(lab, vm, host, cause):
    user, _, name = host.rpartition("@")
    uri = SECRET_URI.format(host=name).replace("root:", f"{user or 'root'}:")
    shown = parse_host(uri).spec  # qemu+ssh://USER@HOST/system?keyfile=***&known_hosts=***
    assert "***" in shown
    for args in (["flt-a", uri, vm, "--live", "-v", "--format", "json"], [uri, "flt-a", vm, "-v"],
                 ["probe", uri, vm]):
        run = migcheck(*args, "--timeout", "5")
        _assert_no_secret(run.stdout, run.stderr)
        assert_fault(run, shown, cause, bound=8, json_report="json" in args)


def test_no_graphics_password_in_verbose_output_or_snapshots(lab, tmp_path):
    """libvirt's status XML (read over SFTP) holds the VNC password in clear; migcheck drops it."""
    a = lab.host("flt-a")
    xml = lab.guest_xml("flt-vnc", extra_devices="<graphics type='vnc' autoport='yes' listen='127.0.0.1' "
                                                  "passwd='vncsec42'/>")
    a.write_file("/var/lib/libvirt/images/flt-vnc.xml", xml)
    try:
        a.virsh("define", "/var/lib/libvirt/images/flt-vnc.xml")
        a.virsh("start", "--paused", "--domain", "flt-vnc")
        assert "vncsec42" in a.read_file("/run/libvirt/qemu/flt-vnc.xml")
        outputs = []
        for args in (["flt-a", "flt-b", "flt-vnc", "--live", "-v", "--format", "json", "--save", str(tmp_path / "c")],
                     ["flt-a", "flt-b", "flt-vnc", "--live", "-v"],
                     ["probe", "flt-a", "flt-vnc"], ["probe", "flt-a", "flt-vnc", "--save", str(tmp_path / "p")]):
            run = migcheck(*args)
            assert run.code in (0, 4), (args, run.code, run.stderr)
            outputs += [run.stdout, run.stderr]
        saved = [f.read_text(errors="replace") for f in tmp_path.rglob("*") if f.is_file()]
        assert any("passwd='***'" in text for text in saved)
        assert not [t for t in outputs + saved if "vncsec42" in t]
    finally:
        remove_guest(lab, "flt-vnc")
        a.run(["rm", "-f", "/var/lib/libvirt/images/flt-vnc.xml"])


def test_no_secret_in_the_hosts_logs(lab):
    """After the runs above: the lab hosts' sshd and libvirt logs never saw the password or key path."""
    for h in lab.hosts:
        for log in [h.dir / "sshd.log", *sorted((h.dir / "log").rglob("*.log"))]:
            if log.exists():
                _assert_no_secret(log.read_text(errors="replace"))
