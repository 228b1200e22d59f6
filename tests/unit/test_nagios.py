"""--format nagios: the Icinga/Nagios plugin output of a check and of an audit, read by a strict parser of the plugin grammar.

The grammar (Monitoring Plugins Development Guidelines): the first line is
``SERVICE STATE - text | perfdata``; perfdata items ``'label'=value[UOM];[warn];[crit];[min];[max]``
separated by spaces, a label holding neither '=' nor a single quote, value/min/max in [-0-9.]
(or value 'U'), warn and crit ranges ``[@][start:][end]``, UOM one of s, ms, us, %, B, KB, MB,
TB, c; exit code 0-3 matching the state word. Long text lines follow, without '|'.
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migcheck.report import nagios
from migcheck.report.model import Finding, Report, Severity, Verdict

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "examples" / "snapshots"
STATES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

# ------------------------------------------------------------------ the strict parser

_NUM = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RANGE = rf"(?:@?(?:(?:{_NUM}|~):)?(?:{_NUM})?)"
_UOM = r"(?:s|ms|us|%|B|KB|MB|TB|c)?"
_ITEM = re.compile(
    rf"(?:'(?P<quoted>[^'=]+)'|(?P<bare>[^'=\s|]+))=(?P<value>{_NUM}|U)(?P<uom>{_UOM})"
    rf"(?:;(?P<warn>{_RANGE})(?:;(?P<crit>{_RANGE})(?:;(?P<min>{_NUM})?(?:;(?P<max>{_NUM})?)?)?)?)?")
_FIRST = re.compile(r"MIGCHECK (?P<state>OK|WARNING|CRITICAL|UNKNOWN) - (?P<summary>[^|]+?)(?: \| (?P<perf>.+))?")


@dataclass
class PerfItem:
    value: float | None
    uom: str
    warn: str
    crit: str
    min: float | None
    max: float | None


@dataclass
class PluginOutput:
    state: int
    summary: str
    long_text: list[str]
    perf: dict[str, PerfItem] = field(default_factory=dict)


def _check_range(r: str) -> None:
    if not r:
        return
    body = r.removeprefix("@")
    start, _, end = body.rpartition(":") if ":" in body else ("0", "", body)
    if start not in ("", "~") and end:
        assert float(start) <= float(end), f"range {r!r}: start > end"


def parse_perfdata(text: str) -> dict[str, PerfItem]:
    items: dict[str, PerfItem] = {}
    pos = 0
    while True:
        m = _ITEM.match(text, pos)
        assert m, f"not a perfdata item at {text[pos:pos + 60]!r}"
        lab = m["quoted"] if m["quoted"] is not None else m["bare"]
        assert lab not in items, f"label {lab!r} twice"
        assert all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in lab), f"label {lab!r}"
        for r in (m["warn"] or "", m["crit"] or ""):
            _check_range(r)
        items[lab] = PerfItem(None if m["value"] == "U" else float(m["value"]), m["uom"], m["warn"] or "",
                              m["crit"] or "", float(m["min"]) if m["min"] else None,
                              float(m["max"]) if m["max"] else None)
        pos = m.end()
        if pos == len(text):
            return items
        assert text[pos] == " " and pos + 1 < len(text) and text[pos + 1] != " ", \
            f"items are separated by one space: {text[pos:pos + 20]!r}"
        pos += 1


def parse_plugin_output(out: str, exit_code: int | None = None) -> PluginOutput:
    """The plugin output, checked against the grammar; exit_code must match the state word."""
    assert out.endswith("\n") and "\r" not in out, repr(out[-80:])
    lines = out[:-1].split("\n")
    assert all(lines), "an empty line"
    for line in lines:
        assert all(unicodedata.category(c)[0] != "C" for c in line), f"a control character in {line!r}"
    m = _FIRST.fullmatch(lines[0])
    assert m, f"not a status line: {lines[0]!r}"
    for line in lines[1:]:
        assert "|" not in line, f"'|' in the long text: {line!r}"
    state = STATES[m["state"]]
    if exit_code is not None:
        assert exit_code == state, (exit_code, lines[0])
    return PluginOutput(state, m["summary"], lines[1:], parse_perfdata(m["perf"]) if m["perf"] else {})


@pytest.mark.parametrize("bad", [
    "MIGCHECK OK - fine | a b=1\n",  # a label with a space, unquoted
    "MIGCHECK OK - fine | 'a'b'=1\n",  # a quote inside the label
    "MIGCHECK OK - fine | 'a=b'=1\n",  # '=' inside the label
    "MIGCHECK OK - fine | a=1,5\n",  # a decimal comma
    "MIGCHECK OK - fine | a=1;;;;;\n",  # more than warn;crit;min;max
    "MIGCHECK OK - fine | a=1KiB\n",  # not a plugin UOM
    "MIGCHECK OK - fine | a=1;5:2\n",  # start above end
    "MIGCHECK OK - fine | a=1  b=2\n",  # two spaces
    "MIGCHECK OK - fine | a=1 a=2\n",  # a label twice
    "MIGCHECK FINE - fine\n",  # not a state
    "MIGCHECK OK - fine\nmore | x=1\n",  # '|' in the long text
    "MIGCHECK OK - fine\x1b[31m\n",  # a control character
    "MIGCHECK OK - fine",  # no newline at the end
])
def test_the_parser_refuses_what_the_grammar_forbids(bad) -> None:
    with pytest.raises((AssertionError, KeyError)):
        parse_plugin_output(bad)


def test_the_parser_reads_the_guidelines_own_shapes() -> None:
    p = parse_plugin_output("MIGCHECK WARNING - x | 'a b'=1.5s;10;@0:20;0;30 c=U d=2;;~:3 e=1%\nline two\n", 1)
    assert p.perf["a b"] == PerfItem(1.5, "s", "10", "@0:20", 0, 30)
    assert p.perf["c"].value is None and p.perf["d"].crit == "~:3" and p.long_text == ["line two"]


# ------------------------------------------------------------------ the building blocks


@pytest.mark.parametrize("raw", ["it's", "a=b", "a b", "a|b", "tab\there", "new\nline", "quote''twice", "",
                                 "bidi\u202eevil", "back\\slash", "é ✓"])
def test_a_label_is_quoted_and_holds_nothing_that_breaks_the_grammar(raw) -> None:
    lab = nagios.label(raw)
    assert lab.startswith("'") and lab.endswith("'")
    inner = lab[1:-1]
    assert inner and not set(inner) & set("'=|\\ \t\n") and inner.isprintable()
    parse_perfdata(f"{lab}=1")


def test_labels_that_collapse_to_the_same_text_stay_distinct() -> None:
    out = nagios.perfdata([nagios.Perf("h a", 1), nagios.Perf("h=a", 2), nagios.Perf("h'a", 3)])
    assert list(parse_perfdata(out)) == ["h_a", "h_a~2", "h_a~3"]


def test_trailing_empty_fields_are_dropped_and_numbers_are_c_locale() -> None:
    out = nagios.perfdata([nagios.Perf("a", 3, min=None), nagios.Perf("b", 1.23456, uom="s"),
                           nagios.Perf("c", 0, crit="0", max=12)])
    assert out == "'a'=3 'b'=1.235s;;;0 'c'=0;;0;0;12"


def test_text_escapes_the_perfdata_bar_and_control_characters_and_keeps_one_line() -> None:
    assert nagios.text("a | b\nc\td") == "a \\x7c b c d"
    assert nagios.name("a | b\nc\td") == "a \\x7c b\\x0ac\\x09d"
    assert nagios.name("bidi\u202e\\") == "bidi\\u202e\\x5c"
    with pytest.raises(ValueError):
        nagios.output(nagios.OK, "raw | text")


# ------------------------------------------------------------------ one pair


def _replay(name: str) -> Report:
    from migcheck.cli import _replay
    from migcheck.flags import parse_flags

    return _replay([SNAPSHOTS / name], parse_flags([]))


def _ok() -> Report:
    from tests.unit.factories import argv, guest_xml, run, source, target
    from tests.unit.test_checks_cpu import PT_OFF, TSC_CLOCK

    return run(source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000")),
               target())


def _risky() -> Report:
    from migcheck.probe.raw import CpuCompareAnswer
    from tests.unit.factories import run, target
    from tests.unit.test_checks_cpu_skew import EPYC_LIVE, MISSING, _key, _src

    src = _src(EPYC_LIVE)
    src.cpu_compare = {_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}
    return run(src, target(cpu_compare={_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}))


PAIR_STATE = {Verdict.OK: 0, Verdict.RISKY: 1, Verdict.BLOCKED: 2, Verdict.UNKNOWN: 3}


@pytest.mark.parametrize("make", [lambda: _replay("invtsc-blocked"), lambda: _replay("invtsc-fixed"), _ok, _risky],
                         ids=["snapshot-blocked", "snapshot-unknown", "factory-ok", "factory-risky"])
def test_a_pair_report_as_plugin_output(make) -> None:
    report = make()
    out = nagios.render_pair(report, duration=1.25)
    p = parse_plugin_output(out, PAIR_STATE[report.verdict])
    assert p.summary.startswith(f"vm {report.domain} {report.source}->{report.target} {report.verdict.value}")
    blocking = sorted({f.rule for f in report.findings if f.severity == Severity.BLOCK})
    assert p.perf["blocking_findings"].value == sum(f.severity == Severity.BLOCK for f in report.findings)
    assert p.perf["blocking_findings"].crit == "0"  # critical above 0, as the state says
    assert p.perf["unknown_findings"].value == sum(f.severity == Severity.UNKNOWN for f in report.findings)
    assert p.perf["risk_findings"].value == sum(f.severity == Severity.RISK for f in report.findings)
    assert p.perf["checks_run"].value == report.checks_run
    assert p.perf["duration"] == PerfItem(1.25, "s", "", "", 0, None)
    if report.verdict == Verdict.BLOCKED:
        assert blocking[0] in p.summary
    for f in report.findings:
        if f.severity != Severity.INFO:
            assert f"{f.severity.value} {f.rule}: " in out  # each finding in the long text


def test_hostile_names_and_messages_cannot_break_the_status_line() -> None:
    domain = "web'01 = \"db\" | x\nOK - fake\u202e"
    report = Report(verdict=Verdict.BLOCKED, source="qemu+ssh://root@h1/system?keyfile=/k&no_verify=1",
                    target="it's a|b = c", domain=domain, checks_run=3,
                    findings=[Finding(rule="cpu.x", severity=Severity.BLOCK, message="a | b='c'\n| d=1",
                                      fix="x | 'y'=2", evidence=["e | f=3"])])
    out = nagios.render_pair(report, 0.5, verbose=True)
    p = parse_plugin_output(out, 2)
    assert p.summary.startswith(f"vm {nagios.name(domain)} ")
    assert "web'01 = \"db\" \\x7c x\\x0aOK - fake\\u202e" in p.summary
    assert "it's a\\x7cb = c" in p.summary
    assert set(p.perf) == {"blocking_findings", "unknown_findings", "risk_findings", "warn_findings", "checks_run",
                           "duration"}
    assert any("e \\x7c f=3" in line for line in p.long_text)


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    from migcheck.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_the_check_command_as_a_plugin_and_its_default_formats_unchanged(capsys) -> None:
    snap = str(SNAPSHOTS / "invtsc-blocked")
    code, out, err = _main(["check", "--from-snapshot", snap, "--format", "nagios"], capsys)
    p = parse_plugin_output(out, code)
    assert code == 2 and err == "" and "cpu.invtsc-without-tsc-frequency" in p.summary
    code, out, _ = _main(["check", "--from-snapshot", snap, "-f", "json"], capsys)
    assert code == 1 and json.loads(out)["exit_code"] == 1
    code, out, _ = _main(["check", "--from-snapshot", snap], capsys)
    assert code == 1 and "verdict: BLOCKED" in out
    code, out, _ = _main(["check", "--from-snapshot", str(SNAPSHOTS / "invtsc-fixed"), "-fnagios"], capsys)
    assert parse_plugin_output(out, code).state == 0  # OK since re-recorded with the current probe (was UNKNOWN)


@pytest.mark.parametrize("args", [
    ["check", "--from-snapshot", "/nonexistent/snap", "--format=nagios"],  # migcheck's own usage error
    ["check", "src", "dst", "vm", "--timeout", "abc", "-f", "nagios"],  # the option parser's
    ["src", "dst", "vm", "--timeout", "0", "-f", "nagios"],  # the plain check's
    ["src", "dst", "-oProxyCommand=x", "--format", "nagios"],  # before any parser
    ["src", "dst", "vm", "--bogus-flag", "-f", "nagios"],  # a virsh flag that does not exist
    ["audit", "/nonexistent/fleet.yml", "--no-db", "-f", "nagios"],
])
def test_bad_input_is_unknown_with_a_status_line_and_nothing_on_stderr(args, capsys) -> None:
    code, out, err = _main(args, capsys)
    p = parse_plugin_output(out, code)
    assert p.state == 3 and err == "" and p.summary and not p.summary.startswith("migcheck:")
    plain = [a for a in args if a not in ("-f", "--format", "--format=nagios", "nagios")]
    assert _main(plain, capsys)[0] == 2  # without --format nagios: the usage error's exit code, as before


def test_a_host_that_refuses_is_unknown_naming_the_host(capsys) -> None:
    uri = "qemu+ssh://root@127.0.0.1:1/system"  # nothing listens on port 1
    code, out, err = _main([uri, uri, "web|01", "--live", "-f", "nagios", "--timeout", "5"], capsys)
    p = parse_plugin_output(out, code)
    assert code == 3 and err == ""
    assert p.summary.startswith(f"vm web\\x7c01 {uri}->{uri} could not be checked: ") and "refused" in p.summary


# ------------------------------------------------------------------ the audit


def _inventory(tmp_path, groups: dict[str, list[str]]) -> str:
    p = tmp_path / "fleet.yml"
    p.write_text("groups:\n" + "".join(f"  {json.dumps(g)}: {json.dumps(m)}\n" for g, m in groups.items()))
    return str(p)


def _audit(tmp_path, fleet, fmt: str, **kw) -> tuple[int, str, str]:
    from migcheck.audit.cli import AuditOptions, run_audit

    opts = AuditOptions(inventory=_inventory(tmp_path, fleet.groups), flags=["--live"], fmt=fmt, progress=False,
                        db=kw.pop("db", None), **kw)
    out, err = io.StringIO(), io.StringIO()
    code = run_audit(opts, out, err, probe=lambda inv, options, jobs, progress, audited: fleet.hosts)
    return code, out.getvalue(), err.getvalue()


def test_an_audit_with_stuck_guests_is_critical_and_its_perfdata_is_the_json_summary(tmp_path) -> None:
    from tests.unit.fleetgen import small_fleet

    fleet = small_fleet(seed=1)
    code, out, err = _audit(tmp_path, fleet, "nagios", db=str(tmp_path / "audit.sqlite"))
    p = parse_plugin_output(out, code)
    jcode, jout, _ = _audit(tmp_path, fleet, "json")
    data = json.loads(jout)
    s = data["summary"]
    assert jcode == 1 and s["stuck"] > 0  # the default format's exit code is unchanged
    assert code == 2 and err == ""  # nothing on stderr: the probe failures are in the long text
    stuck = [g for g in data["guests"] if g["status"] == "stuck"]
    assert p.summary.startswith(f"audit fleet.yml: {s['stuck']} of {s['guests']} guest(s) stuck: "
                                f"{stuck[0]['name']} on {stuck[0]['host']}")
    expect = {"stuck_guests": s["stuck"], "unknown_guests": s["unknown"], "risky_only_guests": s["risky_only"],
              "ok_guests": s["ok"], "guests": s["guests"], "unreachable_hosts": s["hosts_not_probed"],
              "hosts": s["hosts"], "pairs": s["pairs"]}
    assert {k: p.perf[k].value for k in expect} == expect
    assert p.perf["stuck_guests"].crit == "0" and p.perf["stuck_guests"].max == s["guests"]
    assert p.perf["duration"].uom == "s" and p.perf["duration"].value >= 0
    for h in data["hosts"]:
        if h["state"] != "failed":
            assert p.perf[f"stuck_guests:{h['name']}"].value == len(h["stuck"])
    for h in (h for h in data["hosts"] if h["state"] != "ok"):
        assert any(line.startswith("not probed ") and f": {h['name']}: " in line for line in p.long_text)
    assert any(line.startswith("stuck: ") for line in p.long_text)
    assert "<script>alert(1)</script>" in out  # the hostile guest name, shown as it is: plugin text is not HTML


def test_an_audit_with_only_hosts_not_probed_is_a_warning(tmp_path) -> None:
    import dataclasses

    from tests.unit.fleetgen import small_fleet

    whole = small_fleet(seed=1)  # its group g1: a host not probed, one not answering as a target, no guest stuck
    g1 = whole.groups["g1"]
    fleet = dataclasses.replace(whole, groups={"g1": g1}, hosts={h: whole.hosts[h] for h in g1})
    code, out, _ = _audit(tmp_path, fleet, "nagios")
    jcode, jout, _ = _audit(tmp_path, fleet, "json")
    s = json.loads(jout)["summary"]
    assert s["stuck"] == 0 and s["hosts_not_probed"] == 2 and s["ok"] + s["risky_only"] > 0  # the case at hand
    assert jcode == 3  # the default exit code: unknown
    p = parse_plugin_output(out, code)
    assert code == 1 and p.summary.startswith(f"audit fleet.yml: no guest stuck; 2 of {len(g1)} host(s) not probed")
    assert any(line.startswith("not probed at all: g1-h03: ") for line in p.long_text)
    assert any(line.startswith("not probed as a target: g1-h04: ") for line in p.long_text)
    # ... and an output that could not be written turns it UNKNOWN (a stuck guest would still be CRITICAL)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = _audit(tmp_path, fleet, "nagios", html_file=str(blocker / "audit.html"))
    p = parse_plugin_output(out, code)
    assert code == 3 and err == "" and any(line.startswith(f"note: cannot write {blocker}") for line in p.long_text)
    code, out, _ = _audit(tmp_path, whole, "nagios", html_file=str(blocker / "audit.html"))
    assert parse_plugin_output(out, code).state == 2


def _fleet(seed: int, **edit):
    from tests.unit.fleetgen import DEFAULT_PROFILES, build_group, finish

    specs = build_group(random.Random(seed), "g", edit.get("hosts", 3), edit.get("guests", 2), DEFAULT_PROFILES)
    for h in specs:
        h.error = edit.get("error")
    return finish(specs, {"g": [h.name for h in specs]})


def test_an_audit_that_probed_no_host_is_unknown(tmp_path) -> None:
    code, out, _ = _audit(tmp_path, _fleet(3, error="ssh: connect to host: Connection refused"), "nagios")
    p = parse_plugin_output(out, code)
    assert code == 3 and "none of the 3 host(s) could be probed" in p.summary
    assert p.perf["unreachable_hosts"].value == 3 and p.perf["guests"].value == 0


def test_an_audit_of_hosts_without_guests_is_ok(tmp_path) -> None:
    code, out, _ = _audit(tmp_path, _fleet(4, guests=0), "nagios")
    p = parse_plugin_output(out, code)
    assert code == 0 and p.summary == "audit fleet.yml: no guest stuck, every one of 0 guest(s) can move"


def test_hostile_host_and_guest_names_in_an_audit_keep_the_grammar(tmp_path) -> None:
    """Inventory names may be libvirt URIs ('=' and '?' in them); guest names may hold anything libvirt allows."""
    from tests.unit.fleetgen import DEFAULT_PROFILES, build_group, finish

    specs = build_group(random.Random(5), "g", 3, 2, DEFAULT_PROFILES)
    for i, h in enumerate(specs):
        h.name = f"qemu+ssh://root@h{i}/system?no_verify=1"
        for g in h.guests:
            g.host = h.name
    specs[0].guests[0].name = "web's = \"db\" | x\ny"
    fleet = finish(specs, {"g": [h.name for h in specs]})
    code, out, err = _audit(tmp_path, fleet, "nagios")
    p = parse_plugin_output(out, code)
    assert err == ""
    assert "'stuck_guests:qemu+ssh://root@h0/system?no_verify_1'=" in out
    assert {f"stuck_guests:qemu+ssh://root@h{i}/system?no_verify_1" for i in range(3)} <= set(p.perf)
    assert any("web's = \"db\" \\x7c x\\x0ay on qemu+ssh://root@h0/system?no_verify=1" in line for line in p.long_text)


def test_the_audit_command_line_as_a_plugin(tmp_path, capsys, monkeypatch) -> None:
    """Through main(): the state as the exit code, one output on stdout, nothing on stderr."""
    from migcheck.audit import probe as audit_probe
    from tests.unit.fleetgen import small_fleet

    fleet = small_fleet(seed=1)
    monkeypatch.setattr(audit_probe, "probe_fleet", lambda inv, options, jobs, progress, audited: fleet.hosts)
    code, out, err = _main(["audit", _inventory(tmp_path, fleet.groups), "--no-db", "--live", "-f", "nagios"], capsys)
    assert parse_plugin_output(out, code).state == 2 and err == ""
    assert out.count("MIGCHECK ") == 1


def test_a_migcheck_bug_is_unknown_with_a_status_line_not_a_traceback(tmp_path) -> None:
    """The guidelines' "default catch-all ... that returns an UNKNOWN": in a real process (it ends with os._exit)."""
    import subprocess
    import textwrap

    code = textwrap.dedent(f"""
        import migcheck.cli as cli

        def broken(*args, **kwargs):
            raise RuntimeError("boom | x=1")

        cli._replay = broken
        cli.main(["check", "--from-snapshot", {str(SNAPSHOTS / "invtsc-blocked")!r}, "--format", "nagios"])
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    out = parse_plugin_output(p.stdout, p.returncode)
    assert p.returncode == 3 and p.stderr == ""
    assert out.summary == "internal error: RuntimeError: boom \\x7c x=1 (please report it)" and not out.perf
