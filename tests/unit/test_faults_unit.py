"""Faults at the unit level: secrets, one-line errors, guests that change mid-probe, hostile
answers and hung hosts. The same faults against real hosts are in tests/lab/test_faults.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import libvirt
import pytest

from migcheck.checks.registry import probe_plan

from migcheck.connectors.hostspec import parse_host, redact, scrub, secrets_in
from migcheck.connectors.libvirt_conn import explain_connect_error, one_line
from migcheck.probe import gather, session
from migcheck.probe.gather import ProbeError, ProbeOptions, gather_guest, probe_host
from migcheck.probe.pair import probe_pair
from migcheck.probe.raw import RawDomain, RawHost
from migcheck.report.model import Verdict
from tests.unit.factories import guest_xml, run, target
from tests.unit.test_checks_platform import clean_source

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))
SECRET_URI = "qemu+ssh://root:secretpw@host1/system?keyfile=/root/.ssh/secret_key&known_hosts=/x"

# What OpenSSH printed through libvirt in the lab (tests/lab/test_faults.py), CRs included.
CHANGED_KEY = (
    "Cannot recv data: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
    "Offending ED25519 key in /var/tmp/known_hosts:2\r\n"
    "  remove with:\r\n"
    '  ssh-keygen -f "/var/tmp/known_hosts" -R "10.251.77.108"\r\n'
    "Host key for 10.251.77.108 has changed and you have requested strict checking.\r\n"
    "Host key verification failed.: Connection reset by peer")
UNKNOWN_KEY = ("Cannot recv data: No ED25519 host key is known for 10.251.77.111 and you have requested "
               "strict checking.\r\nHost key verification failed.: Connection reset by peer")


class FakeLibvirtError(libvirt.libvirtError):
    def __init__(self, message: str, code: int = libvirt.VIR_ERR_INTERNAL_ERROR):
        Exception.__init__(self, message)
        self.err = (code, 0, message, 2, None, None, None, 0, 0)


# ------------------------------------------------------------------ secrets


def test_secrets_of_a_uri_are_found_and_never_in_the_display_form():
    t = parse_host(SECRET_URI)
    assert "secretpw" not in t.spec and "secret_key" not in t.spec and "root@host1" in t.spec
    assert "secretpw" in t.uri  # libvirt still gets what the user gave
    assert {"secretpw", "/root/.ssh/secret_key", "/x"} <= set(t.secrets)
    # what ssh and libvirt echo back on failure
    msg = ("Warning: Identity file /root/.ssh/secret_key not accessible: No such file or directory. "
           "root:secretpw@10.0.0.1: Permission denied (publickey).")
    assert "secret" not in t.scrub(msg)
    assert "root:***@10.0.0.1" in t.scrub(msg)


def test_percent_encoded_and_short_secrets():
    assert {"se%40cret", "se@cret"} <= set(secrets_in("qemu+ssh://root:se%40cret@h/system"))
    short = secrets_in("qemu+ssh://root:pw@h/system")
    assert scrub("login root:pw@h failed; pwd is fine", short) == "login root:***@h failed; pwd is fine"
    assert secrets_in("root@h") == () and secrets_in("h") == ()
    assert "***" in redact("qemu+tls://h/system?pkipath=/etc/pki/secret")


# ------------------------------------------------------------------ one line


def test_ssh_host_key_banners_become_one_sentence():
    changed = explain_connect_error(FakeLibvirtError(CHANGED_KEY))
    assert changed.splitlines() == [changed] and "@@" not in changed
    assert "CHANGED" in changed and "ssh-keygen -R 10.251.77.108" in changed
    unknown = explain_connect_error(FakeLibvirtError(UNKNOWN_KEY))
    assert unknown.splitlines() == [unknown] and "unknown" in unknown and "10.251.77.111" in unknown


def test_one_line_removes_control_characters_and_bounds_the_length():
    assert one_line("a\r\nb\tc\x1b[31md\u2028e") == "a b c [31md e"
    assert len(one_line("x" * 10_000)) <= 600


def test_probe_error_is_one_line_whatever_the_guest_name():
    e = ProbeError("h1", "no domain named 'a\nb\rc\x1b]0;title\x07'")
    assert str(e).splitlines() == [str(e)] and str(e).startswith("h1: ") and "\x1b" not in str(e)


# ------------------------------------------------------------------ the guest changes mid-probe


class FakeDomain:
    def __init__(self, conn, uuid="6d1c3a5e-0000-4000-8000-000000000001", dom_id=7, state=1):
        self.conn, self.uuid, self.dom_id, self.st = conn, uuid, dom_id, state

    def _alive(self):
        if self.conn.gone:
            raise FakeLibvirtError("Domain not found: no domain with matching name", libvirt.VIR_ERR_NO_DOMAIN)

    def UUIDString(self):
        self._alive()
        return self.uuid

    def ID(self):
        self._alive()
        return self.dom_id

    def state(self):
        self._alive()
        return [self.st, 1]

    def isPersistent(self):
        self._alive()
        return 1

    def XMLDesc(self, flags=0):
        self._alive()
        self.conn.after_xml()
        return guest_xml()

    def jobInfo(self):
        self._alive()
        return [0] * 12

    def snapshotNum(self, flags=0):
        self._alive()
        return 0

    def blockJobInfo(self, disk, flags=0):
        return {}


class FakeConn:
    """lookupByName answers; after_xml() is where the test makes the guest vanish or restart."""

    def __init__(self, after_xml=lambda: None):
        self.gone = False
        self.after_xml = after_xml
        self.doms = [FakeDomain(self)]

    def lookupByName(self, name):
        if self.gone:
            raise FakeLibvirtError(f"Domain not found: no domain with matching name '{name}'", libvirt.VIR_ERR_NO_DOMAIN)
        return self.doms[-1]


def _session(conn):
    return SimpleNamespace(conn=conn, target=parse_host("src1"), options=ProbeOptions(), files=None,
                           ssh_error="no SSH in this test")


def test_guest_that_disappears_between_two_steps_is_a_probe_error():
    conn = FakeConn()
    conn.after_xml = lambda: setattr(conn, "gone", True)  # destroyed right after its XML was read
    raw = RawHost(spec="src1", uri="x")
    with pytest.raises(ProbeError) as ei:
        gather_guest(_session(conn), raw, "vm1")
    assert ei.value.host == "src1" and "disappeared while it was being probed" in str(ei.value)


def test_guest_restarted_between_two_steps_is_a_probe_error():
    conn = FakeConn()

    def restart():
        if len(conn.doms) == 1:
            conn.doms.append(FakeDomain(conn, dom_id=8))

    conn.after_xml = restart
    with pytest.raises(ProbeError, match="changed while it was being probed.*restarted"):
        gather_guest(_session(conn), RawHost(spec="src1", uri="x"), "vm1")


def test_guest_that_stays_the_same_is_gathered():
    raw = RawHost(spec="src1", uri="x")
    gather_guest(_session(FakeConn()), raw, "vm1")
    assert raw.domain.live_xml and raw.errors["cmdline"] == "no SSH in this test"


# ------------------------------------------------------------------ hostile answers


class FakeFiles:
    def __init__(self, files: dict[str, bytes]):
        self.files = files

    def read(self, path, limit=1 << 22, offset=0):
        if path not in self.files:
            raise FileNotFoundError(2, "No such file", path)
        return self.files[path][offset:offset + limit]

    def readlink(self, path):
        return "/usr/bin/qemu-system-x86_64"

    def stat(self, path):
        from migcheck.probe.raw import PathStat

        return PathStat(path=path, exists=path in self.files, size=len(self.files.get(path, b"")))


def _running_qemu(cmdline: bytes) -> RawHost:
    files = FakeFiles({"/run/libvirt/qemu/vm1.pid": b"4242\n", "/proc/4242/cmdline": cmdline})
    raw = clean_source()
    raw.domain.cmdline = None
    rd = RawDomain(name="vm1")
    gather._gather_running_qemu(SimpleNamespace(files=files, ssh_error=None), raw, rd)
    assert rd.cmdline is None  # what the probe makes of it: no command line, and why in raw.errors
    return raw


def test_non_utf8_command_line_is_unknown():
    raw = _running_qemu(b"/usr/bin/qemu-system-x86_64\0-name\0guest=vm\xff\xfe1\0-cpu\0host\0")
    assert "not UTF-8" in raw.errors["cmdline"]
    r = run(raw, target())
    assert r.verdict == Verdict.UNKNOWN
    assert any("not UTF-8" in f.message for f in r.findings), r.findings


def test_huge_command_line_is_unknown():
    raw = _running_qemu(b"/usr/bin/qemu-system-x86_64\0" + b"-device\0virtio-rng\0" * 400_000)
    assert "more than" in raw.errors["cmdline"]
    assert run(raw, target()).verdict == Verdict.UNKNOWN


@pytest.mark.parametrize("side,fact", [("source", "capabilities_xml"), ("target", "capabilities_xml"),
                                       ("source", "live_xml")])
def test_huge_xml_is_unknown(side, fact):
    src, dst = clean_source(), target()
    huge = "<domain>" + "<x/>" * 5_000_000 + "</domain>"
    if fact == "live_xml":
        src.domain.live_xml = huge  # the inactive XML is fine: it must not stand in for the running guest
    else:
        setattr(src if side == "source" else dst, fact, huge)
    r = run(src, dst)
    assert r.verdict == Verdict.UNKNOWN
    assert any("bytes, more than the" in f.message for f in r.findings)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<{root}><host><uuid>&lol3;</uuid></host><name>&lol3;</name></{root}>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file:///etc/shadow">]>
<{root} type='kvm'><name>&xxe;</name></{root}>
"""


def _ok_snapshot(dir_: Path) -> Path:
    from migcheck.probe.snapshot import save_pair

    src, dst = clean_source(), target()
    assert run(src, dst).verdict == Verdict.OK
    save_pair(src, dst, "vm1", ["--live"], dir_)
    return dir_


@pytest.mark.parametrize("side,file,root,payload", [
    ("target", "capabilities.xml", "capabilities", BILLION_LAUGHS),
    ("source", "domain-live.xml", "domain", EXTERNAL_ENTITY),
    ("source", "domain-live.xml", "domain", BILLION_LAUGHS),
    ("target", "domcaps-0.xml", "domainCapabilities", EXTERNAL_ENTITY),
])
def test_hostile_xml_in_a_snapshot_replay_is_unknown_with_a_clear_message(tmp_path, side, file, root, payload):
    snap = _ok_snapshot(tmp_path / "snap")
    p = subprocess.run([MIGCHECK, "check", "--from-snapshot", str(snap), "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["verdict"] == "ok", p.stdout + p.stderr
    assert (snap / side / file).exists(), sorted(x.name for x in (snap / side).iterdir())
    (snap / side / file).write_text(payload.format(root=root))
    p = subprocess.run([MIGCHECK, "check", "--from-snapshot", str(snap), "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr
    report = json.loads(p.stdout)
    assert (p.returncode, report["verdict"]) == (3, "unknown"), p.stdout[:2000]
    messages = [f["message"] for f in report["findings"] if f["severity"] == "unknown"]
    assert any("refused: it declares a DTD or entities" in m for m in messages), messages
    assert "lollol" not in p.stdout and "root:" not in p.stdout  # nothing was expanded or read


def test_a_garbage_snapshot_file_is_unknown_not_a_crash(tmp_path):
    snap = _ok_snapshot(tmp_path / "snap")
    (snap / "source" / "domain-live.xml").write_bytes(b"<domain type='kvm'><name>vm1</na\xff\xfe")
    p = subprocess.run([MIGCHECK, "check", "--from-snapshot", str(snap)], capture_output=True, text=True, timeout=60)
    assert p.returncode in (2, 3) and "Traceback" not in p.stderr, p.stderr
    if p.returncode == 3:
        assert "UNKNOWN" in p.stdout


# ------------------------------------------------------------------ hung hosts


@pytest.fixture
def hung_libvirt(monkeypatch):
    """libvirt connections that never open (a host that accepts and never answers)."""
    release = threading.Event()

    def hang(uri):
        release.wait(60)
        raise gather.LibvirtError("released")

    monkeypatch.setattr(session, "open_readonly", hang)
    monkeypatch.setattr(session, "open_readwrite", hang)
    yield
    release.set()


def test_a_hung_host_is_a_probe_error_within_the_timeout(hung_libvirt):
    t0 = time.monotonic()
    with pytest.raises(ProbeError) as ei:
        probe_host(parse_host("slow1"), "vm1", ProbeOptions(timeout=0.5, connect_timeout=0.5, use_ssh=False))
    assert time.monotonic() - t0 < 2
    assert ei.value.host == "slow1" and "within 0.5s, still opening the libvirt connection" in str(ei.value)


def test_a_hung_pair_names_the_hung_host(hung_libvirt):
    with pytest.raises(ProbeError) as ei:
        probe_pair(parse_host("slow1"), parse_host("slow2"), "vm1",
                   ProbeOptions(timeout=0.5, connect_timeout=0.5, use_ssh=False, plan=probe_plan))
    assert ei.value.host == "slow1"


def test_timeout_errors_do_not_leak_secrets(hung_libvirt):
    with pytest.raises(ProbeError) as ei:
        probe_host(parse_host(SECRET_URI), None, ProbeOptions(timeout=0.3, connect_timeout=0.3, use_ssh=False))
    assert "secret" not in str(ei.value)


HUNG_CLI = textwrap.dedent("""
    import sys, time
    import migcheck.probe.session as g

    def hang(uri):
        while True:  # a libvirt call that never returns (and ignores the GIL's wishes)
            time.sleep(3600)

    g.open_readonly = g.open_readwrite = hang
    sys.argv = ["migcheck", *sys.argv[1:]]
    from migcheck.cli import main
    main()
""")


@pytest.mark.parametrize("args", [["src1", "dst1", "vm1", "--live"], ["probe", "src1", "vm1"]])
def test_the_cli_exits_promptly_with_a_thread_stuck_in_libvirt(args):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", HUNG_CLI, *args, "--timeout", "1", "--no-ssh"]
                       + (["--format", "json"] if args[0] != "probe" else []),
                       capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    assert took < 6, took
    assert p.returncode == 3, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("migcheck: src1: no complete answer within 1s"), p.stderr
    if args[0] != "probe":
        assert json.loads(p.stdout)["verdict"] == "unknown"


def test_probe_results_and_saved_snapshots_keep_no_secret(monkeypatch, tmp_path):
    from migcheck.probe.snapshot import save_single

    class Conn:  # every call fails as libvirt over a broken ssh would, quoting the secrets
        def __getattr__(self, name):
            def fail(*args):
                raise FakeLibvirtError("ssh: Warning: Identity file /root/.ssh/secret_key not accessible; "
                                       "root:secretpw@10.0.0.1: Permission denied")
            return fail

        def close(self):
            pass

    monkeypatch.setattr(session, "open_readonly", lambda uri: Conn())
    monkeypatch.setattr(session, "open_readwrite", lambda uri: Conn())
    raw = probe_host(parse_host(SECRET_URI), None, ProbeOptions(timeout=5, use_ssh=False))
    assert "Identity file *** not accessible" in raw.errors["hostname"]
    save_single(raw, tmp_path / "s")
    texts = [raw.model_dump_json()] + [f.read_text() for f in (tmp_path / "s").rglob("*") if f.is_file()]
    for text in texts:
        assert "secretpw" not in text and "secret_key" not in text


def test_the_status_xml_loses_graphics_passwords_and_cookies():
    from migcheck.probe.gather import redact_secure_xml

    status = ("<domstatus pid='42'><domain><devices><graphics type='vnc' port='5900' passwd='vncsec42' "
              "listen='127.0.0.1'/><graphics type=\"spice\" passwd=\"sp'ice\"/><disk><source protocol='https'>"
              "<cookies><cookie name='session'>tok-123</cookie></cookies></source></disk></devices></domain>"
              "</domstatus>")
    out = redact_secure_xml(status)
    assert "vncsec42" not in out and "sp'ice" not in out and "tok-123" not in out
    assert "passwd='***'" in out and "<cookie name='session'>***</cookie>" in out and "pid='42'" in out


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "1e308"])
def test_a_nonsense_timeout_is_a_usage_error_before_any_host_is_contacted(value):
    for args in (["src1", "dst1", "vm1"], ["probe", "src1"]):
        p = subprocess.run([MIGCHECK, *args, "--timeout", value], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--timeout" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [["src1", "-oProxyCommand=touch x", "vm1"], ["src1", "dst1", "--help"],
                                  ["src1", "dst1", "-h", "--live"], ["probe", "src1", "--help"]])
def test_no_exit_0_without_a_verdict(args):
    """A hostile host word or a guest named --help must not print the help and exit 0."""
    p = subprocess.run([MIGCHECK, *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stdout == "", (p.returncode, p.stderr)


def test_broken_pipe_diagnosis_goes_where_ssh_went(tmp_path, monkeypatch):
    """libvirt sometimes says only 'Cannot write data: Broken pipe' for a closed SSH port (the ssh child died
    first); the diagnosis must connect where ssh_config sends ssh (HostName, Port), not resolve the alias."""
    import socket

    from migcheck.connectors.libvirt_conn import _tcp_diagnosis

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(f"Host lab-alias\n    HostName 127.0.0.1\n    Port {port}\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _tcp_diagnosis("qemu+ssh://root@lab-alias/system?keyfile=/x") == \
        f"connection refused on port {port}: nothing listens there; is sshd (or libvirtd's port) running?"
