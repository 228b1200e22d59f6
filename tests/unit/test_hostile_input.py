"""Hostile input given offline (issue 16 item 5): each case ends in one line and an exit code, in bounded memory.

Every test here failed on the code before its fix (checked by reverting the fix once).
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.factories import guest_xml, rules_of, run, source, target

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "snapshots" / "invtsc-blocked"
MEMORY_LIMIT = 4 << 30  # what the old code ran into (24 GB for a cpuset, /dev/zero read whole) fails here instead


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def refused(args: list[str], code: int, *words: str, **kw) -> str:
    """Run migcheck; it must print exactly one line on stderr, containing words, and exit with code."""
    p = subprocess.run([MIGCHECK, *args], capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory, **kw)
    lines = p.stderr.strip().splitlines()
    assert (p.returncode, len(lines)) == (code, 1), p.stderr[-2000:]
    assert lines[0].startswith("migcheck: ") and "internal error" not in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------- CPU and NUMA id lists


def test_id_lists_answer_as_python_sets_do():
    from migcheck.facts.procfs import IdSet, parse_id_list

    rnd = random.Random(16)
    for _ in range(300):
        parts, ref, excl = [], set(), set()
        for _ in range(rnd.randint(1, 5)):
            lo = rnd.randint(0, 40)
            hi = lo + rnd.randint(0, 6)
            if rnd.random() < 0.2:
                parts.append(f"^{lo}")
                excl.add(lo)
            elif rnd.random() < 0.5:
                parts.append(str(lo))
                ref.add(lo)
            else:
                parts.append(f"{lo}-{hi}")
                ref.update(range(lo, hi + 1))
        text, ref = ",".join(parts), ref - excl
        other = set(rnd.sample(range(48), 10))
        got = parse_id_list(text)
        assert sorted(ref) == got.first(1000) and len(got) == len(ref), text
        assert (got - other).first(1000) == sorted(ref - other), (text, other)
        assert bool(got & IdSet.of(other)) == bool(ref & other), (text, other)
    assert str(parse_id_list("0-3,8,10-11,^2")) == "0-1,3,8,10-11"


def test_a_cpuset_of_a_hundred_billion_cpus_is_a_finding_not_24_gigabytes():
    xml = guest_xml().replace("<vcpu placement='static'>1</vcpu>",
                              "<vcpu placement='static' cpuset='0-99999999999'>1</vcpu>"
                              "<cputune><vcpupin vcpu='0' cpuset='4-99999999999'/></cputune>")
    report = run(source(xml), target())
    [hit] = [f for f in report.findings if f.rule == "resources.cpu-pinning"]
    assert "vcpupin '4-99999999999' names CPUs the target does not have: 8,9,10,11" in hit.message
    assert len(hit.message) < 300


def test_a_numa_nodeset_of_four_billion_nodes_is_a_finding():
    xml = guest_xml().replace("<vcpu placement='static'>1</vcpu>",
                              "<vcpu placement='static'>1</vcpu>"
                              "<numatune><memory mode='strict' nodeset='0-4294967296'/></numatune>")
    report = run(source(xml), target())
    assert "resources.numa-nodeset" in rules_of(report, "block")
    [hit] = [f for f in report.findings if f.rule == "resources.numa-nodeset"]
    assert "names NUMA node(s) [1, 2, 3" in hit.message and "(4294967296 in all)" in hit.message
    assert len(hit.message) < 300


# ------------------------------------------------------------------ host arguments


def test_an_unclosed_bracket_in_any_argument_is_one_line_not_a_traceback():
    refused(["explain", "a://[b"], 2, "no check 'a://[b'")
    refused(["qemu+ssh://root:secret99@[h/system", "dst", "vm"], 2, "not a libvirt URI")
    line = refused(["qemu+ssh://root:secret99@[h/system", "dst", "vm"], 2)
    assert "secret99" not in line


# ---------------------------------------------------------------------- inventory bombs


def _laughs(levels: int = 9, width: int = 10) -> str:
    """YAML anchors, each a list of ten aliases to the one before: width**levels values once expanded."""
    lines = ["x0: &a0 [" + ",".join(["x"] * width) + "]"]
    lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines)


@pytest.mark.parametrize("text, words", [
    ("[g]\nh[1:100000]x[1:100000]\n", "more than 100000 hosts"),
    ("[g]\nh[1:60000]\n[k]\nh[1:60000]\n", "more than 100000 hosts in all"),
    ("all:\n  vars:\n    " + _laughs().replace("\n", "\n    ") + "\n    migcheck_uri: *a8\n  hosts: {h1: }\n",
     "aliases (*name) are expanded"),
    ("all:\n  vars:\n    big: &big [" + ",".join(f"h{i}" for i in range(20000)) + "]\n  children:\n"
     + "".join(f"    g{i}: {{hosts: *big}}\n" for i in range(60)), "aliases (*name) are expanded"),
    ("all:\n  vars:\n    a: &a x\n" + "".join(f"    v{i}: *a\n" for i in range(101)) + "  hosts: {h1: }\n",
     "more than 100 YAML aliases"),
], ids=["range-product", "hosts-in-all", "alias-chain", "alias-to-a-big-list", "many-aliases"])
def test_inventory_bombs_are_refused_in_one_line(text, words):
    from migcheck.audit.inventory import InventoryError, parse_inventory

    with pytest.raises(InventoryError, match=re.escape(words)) as exc:
        parse_inventory(text, "inv.yml")
    assert str(exc.value).startswith("inv.yml") and "\n" not in str(exc.value)


def test_an_inventory_with_a_few_anchors_still_loads():
    from migcheck.audit.inventory import parse_inventory

    inv = parse_inventory("all:\n  children:\n    a:\n      vars: &v {ansible_user: ops}\n      hosts: {h1: , h2: }\n"
                          "    b:\n      vars: *v\n      hosts: {h3: {<<: *v, ansible_port: 2222}}\n", "inv.yml")
    assert inv.hosts["h1"].spec == "ops@h1"
    assert inv.hosts["h3"].spec == "qemu+ssh://ops@h3:2222/system"


# ------------------------------------------------- files that are not files


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("where", ["snapshot.json", "source/raw.json", "source/domain-live.xml", "inventory"])
def test_a_fifo_or_dev_zero_is_refused_before_it_is_read(tmp_path, special, where):
    snap = tmp_path / "snap"
    shutil.copytree(EXAMPLE, snap)
    path = tmp_path / "inventory.yml" if where == "inventory" else snap / where
    path.unlink(missing_ok=True)
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(special)
    args = ["audit", str(path), "--no-db"] if where == "inventory" else ["check", "--from-snapshot", str(snap)]
    refused(args, 2, f"{path}: cannot read", "not a regular file",
            "(a FIFO)" if special == "fifo" else "(a character device)")


# ------------------------------------------------------- snapshots of the wrong shape


def _edit_json(path: Path, change) -> None:
    import json

    data = json.loads(path.read_text())
    path.write_text(change if isinstance(change, str) else json.dumps(change(data) or data))


@pytest.mark.parametrize("where, change, words", [
    ("snapshot.json", "[]", "a JSON array where migcheck writes an object"),
    ("snapshot.json", "null", "a JSON null where"),
    ("snapshot.json", lambda d: d.update(flags="--live"), "flags: expected a list of virsh migrate flags"),
    ("snapshot.json", lambda d: d.update(flags=["--bogus"]), "flags: unknown virsh migrate flag '--bogus'"),
    ("snapshot.json", lambda d: d.update(domain=123), "domain: a JSON number where a guest name was expected"),
    ("snapshot.json", lambda d: d.update(format=999), "format 999, but this migcheck reads format 1"),
    ("snapshot.json", lambda d: d.update(kind=[]), "kind []: expected"),
    ("snapshot.json", "[" * 100000 + "]" * 100000, "not valid JSON (nested too deeply)"),
    ("source/raw.json", "[]", "a JSON array where migcheck writes an object"),
    ("source/raw.json", lambda d: d.update(domain=123), "domain: a JSON number where migcheck writes an object"),
    ("source/raw.json", lambda d: d.update(domcaps_xml=[1]), "domcaps_xml: a JSON array"),
    ("source/raw.json", lambda d: d["domain"].update(cmdline="x"), "domain.cmdline: input should be a valid list"),
    ("source/raw.json", '{"a":' * 100000 + "1" + "}" * 100000, "not valid JSON (nested too deeply)"),
], ids=["array", "null", "flags-string", "flags-unknown", "domain-number", "format-999", "kind-array",
        "deep-meta", "raw-array", "raw-domain-number", "raw-domcaps-array", "raw-cmdline-string", "deep-raw"])
def test_a_snapshot_of_the_wrong_shape_is_one_line_naming_the_file(tmp_path, where, change, words):
    snap = tmp_path / "snap"
    shutil.copytree(EXAMPLE, snap)
    _edit_json(snap / where, change)
    refused(["check", "--from-snapshot", str(snap)], 2, f"{snap / where}: ", words)


# --------------------------------------------------------------------- ports


@pytest.mark.parametrize("uri, written", [("qemu+ssh://h:99999/system", "99999"), ("qemu+ssh://h:0/system", "0"),
                                          ("qemu+tls://h:-5/system", "-5"), ("qemu+ssh://u@[::1]:70000/system", "70000")])
def test_a_port_out_of_range_in_a_uri_is_one_line(uri, written):
    refused([uri, "dst", "vm"], 2, f"port '{written}' is not a port number; give one from 1 to 65535")


@pytest.mark.parametrize("text", ["all:\n  hosts:\n    h1: {ansible_port: -1}\n",
                                  "all:\n  hosts:\n    h1: {ansible_ssh_port: 99999}\n", "[g]\nh1 ansible_port=abc\n"])
def test_a_port_out_of_range_in_an_inventory_names_the_host(text):
    from migcheck.audit.inventory import InventoryError, parse_inventory

    with pytest.raises(InventoryError, match=r"^inv.yml: host 'h1': .* is not a port number; give one from 1 to 65535$"):
        parse_inventory(text, "inv.yml")


# ------------------------------------------------------------------ --ssh-config


@pytest.mark.parametrize("command", [["check", "src", "dst", "vm"], ["src", "dst", "vm"], ["probe", "src"],
                                     ["migrate", "src", "dst", "vm"], ["audit", "INVENTORY", "--no-db"]])
def test_an_ssh_config_that_cannot_be_read_is_refused_not_ignored(tmp_path, command):
    """Before: migcheck went on without it, with ~/.ssh/config's hosts and keys instead of those asked for."""
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    h1:\n")
    args = [str(inventory) if a == "INVENTORY" else a for a in command]
    missing = tmp_path / "nonexistent"
    refused([*args, "--ssh-config", str(missing), "--timeout", "1"], 2,
            f"--ssh-config {missing}: cannot read it: No such file or directory")
    refused([*args, "--ssh-config", str(tmp_path)], 2, "not a regular file (a directory)")


# --------------------------------------------------------------- YAML host names


@pytest.mark.parametrize("text", ["all:\n  hosts:\n    0x7f000001:\n    017700000001:\n    yes:\n    1.5:\n",
                                  "groups:\n  g: [0x7f000001, 017700000001, yes, 1.5]\n"],
                         ids=["ansible-yaml", "migcheck-yaml"])
def test_numeric_yaml_host_names_stay_the_names_written(text):
    """Before: YAML read 0x7f000001 and 017700000001 as the number 2130706433 (127.0.0.1 to the resolver),
    one host under a name nobody wrote; 'yes' became the host 'True'."""
    from migcheck.audit.inventory import parse_inventory

    inv = parse_inventory(text, "inv.yml")
    assert {n: h.spec for n, h in inv.hosts.items()} == {n: n for n in ("0x7f000001", "017700000001", "yes", "1.5")}


def test_yaml_variables_are_the_words_written():
    from migcheck.audit.inventory import parse_inventory

    inv = parse_inventory("all:\n  hosts:\n    h1: {ansible_host: 0x7f000001}\n"
                          "    h2: {ansible_port: 2222, ansible_connection: ~}\n", "inv.yml")
    assert (inv.hosts["h1"].spec, inv.hosts["h2"].spec) == ("0x7f000001", "qemu+ssh://root@h2:2222/system")


# ------------------------------------------------------------ flags refused up front


@pytest.fixture
def listener():
    """A TCP port on this machine that counts the connections made to it (it never answers them)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)

    def connections() -> int:
        n = 0
        while True:
            try:
                sock.accept()[0].close()
            except BlockingIOError:
                return n
            n += 1

    yield sock.getsockname()[1], connections
    sock.close()


@pytest.mark.parametrize("flags", [["--live", "--offline", "--persistent"], ["--offline"],
                                   ["--live", "--tunnelled", "--copy-storage-all"]])
def test_flags_libvirt_refuses_are_blocked_before_any_host_is_contacted(listener, flags):
    """Before: both hosts were probed first (up to --timeout each), then the flags were found refused."""
    import json

    port, connections = listener
    host = f"qemu+ssh://127.0.0.1:{port}/system"
    p = subprocess.run([MIGCHECK, host, host, "vm", *flags, "--timeout", "3", "-f", "json"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr, connections()) == (1, "", 0)
    report = json.loads(p.stdout)
    assert {f["rule"] for f in report["findings"]} == {"flags.rejected-combination"}
    assert all(f["severity"] == "block" for f in report["findings"]), report


def test_an_audit_with_flags_libvirt_refuses_is_refused_before_any_host_is_contacted(tmp_path, listener):
    port, connections = listener
    inventory = tmp_path / "inv.yml"
    inventory.write_text(f"all:\n  hosts:\n    h1: {{ansible_host: 127.0.0.1, ansible_port: {port}}}\n")
    refused(["audit", str(inventory), "--no-db", "--live", "--offline", "--timeout", "3"], 2,
            "--live --offline: libvirt refuses these flags: 'Options --live and --offline are mutually exclusive'",
            "change the virsh migrate flags")
    assert connections() == 0


# ------------------------------------------------------------ an audit of nothing


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed: every connection is refused


def test_an_audit_in_which_every_host_failed_says_nothing_was_checked(tmp_path):
    """Before: 'STUCK: none, every guest checked has somewhere to go', of an audit that checked no guest."""
    port = _closed_port()
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n" + "".join(f"    h{i}: {{ansible_host: 127.0.0.{i}, ansible_port: {port}}}\n"
                                                      for i in (1, 2)))
    html = tmp_path / "audit.html"
    p = subprocess.run([MIGCHECK, "audit", str(inventory), "--no-db", "--timeout", "10", "--html", str(html)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stdout + p.stderr
    headline = "NOTHING CHECKED: none of the 2 host(s) could be probed, so no guest was checked"
    assert headline in p.stdout and "somewhere to go" not in p.stdout, p.stdout
    assert headline in html.read_text() and "No stuck guest" not in html.read_text()
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and all(": could not be probed: " in line for line in lines), p.stderr


# ------------------------------------------------------- inventory URIs that run programs


@pytest.mark.parametrize("uri, words", [
    ("qemu+ext://h1/system?command=PROGRAM", "the ext transport runs the program named by command= on this machine"),
    ("qemu+ssh://h1/system?command=PROGRAM", "command= names the program libvirt runs on this machine"),
    ("qemu+ssh://h1/system?no_tty=1&Netcat=PROGRAM", "netcat= names the program run on the host"),
    ("qemu+ssh://h1/system?socket=/run/x%3BPROGRAM", "socket= is written into the shell command ssh runs"),
], ids=["ext", "command", "netcat", "socket"])
def test_an_inventory_uri_that_runs_a_program_is_refused_unless_allowed(tmp_path, uri, words):
    """Before: libvirt ran the program the inventory named (the audit of a qemu+ext:// entry ran it here)."""
    marker = tmp_path / "ran"
    program = tmp_path / "program"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(0o755)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(f"all:\n  hosts:\n    h1: {{migcheck_uri: '{uri.replace('PROGRAM', str(program))}'}}\n")
    refused(["audit", str(inventory), "--no-db", "--timeout", "5"], 2, f"{inventory}: host 'h1': ", words,
            "only with --allow-uri-commands")
    assert not marker.exists()
    if "ext" in uri or "?command" in uri:  # the opt-in does let it run: the refusal above is what stopped it
        subprocess.run([MIGCHECK, "audit", str(inventory), "--no-db", "--timeout", "5", "--allow-uri-commands"],
                       capture_output=True, timeout=60)
        assert marker.exists()


# ------------------------------------------------------------ one broken answer, one finding


def test_a_guest_whose_xml_cannot_be_parsed_is_one_finding_saying_why(tmp_path):
    """Before: 39 identical 'could not check: domain_xml ... not available' rows, one per check reading the XML."""
    import json

    snap = tmp_path / "snap"
    shutil.copytree(EXAMPLE, snap)
    for name in ("domain-live.xml", "domain-inactive.xml"):
        (snap / "source" / name).write_text("<domain type='kvm'><name>x</na")
    p = subprocess.run([MIGCHECK, "check", "--from-snapshot", str(snap), "-f", "json"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 3, p.stderr
    findings = json.loads(p.stdout)["findings"]
    about_xml = [f for f in findings if "domain_xml" in f["message"]]
    assert len(about_xml) == 1, [f["rule"] for f in about_xml]
    [f] = about_xml
    assert (f["rule"], f["severity"]) == ("facts.unavailable", "unknown")
    assert "checks could not run: domain_xml of mc-a not available" in f["message"]
    assert "not well-formed" in f["message"]
    named = f["evidence"][0].removeprefix("checks: ").split(", ")
    assert len(named) > 20 and "resources.memory" in named and "storage.not-shared" in named


@pytest.mark.parametrize("args, words", [
    (["audit"], "Missing argument 'INVENTORY'. (see: migcheck audit -h)"),
    (["audit", "inv.yml", "--jobs", "x"], "Invalid value for '--jobs' / '-j'"),
    (["check", "a", "b", "vm", "--timeout", "x"], "Invalid value for '--timeout'"),
    (["a", "b", "vm", "-f", "xml"], "'xml' is not one of 'table', 'json', 'nagios'. (see: migcheck check -h)"),
    (["probe"], "Missing argument 'HOST'. (see: migcheck probe -h)"),
    (["rules", "--format", "x"], "(see: migcheck rules -h)"),
], ids=["missing-argument", "bad-int", "bad-float", "bad-choice-plain-check", "probe-missing", "rules"])
def test_typer_usage_errors_are_one_line(args, words):
    """Before: a box of five lines (usage, a hint, a frame around the error)."""
    refused(args, 2, words)
