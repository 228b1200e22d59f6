"""A new user's first commands (issue 17, item 8): --version, the help texts, the names in the JSON.

Each test runs the real command line in a fresh interpreter (``python -m migcheck.cli``), as a
user's shell would, so the typer application, its help rendering and the plain-check path are the
ones a user meets.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import migcheck
from migcheck.cli import SUBCOMMANDS
from migcheck.report.exit_codes import MEANING, ExitCode


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "80", **(env or {})}
    return subprocess.run([sys.executable, "-m", "migcheck.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


def test_dash_dash_version_prints_the_version_and_exits_0() -> None:
    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == migcheck.__version__
    assert out.stdout.strip() == importlib.metadata.version("migcheck")  # the package's, not a second number
    assert out.stderr == ""
    same = run("version")
    assert same.returncode == 0 and same.stdout == out.stdout


def _commands() -> list[str]:
    from typer.main import get_command

    from migcheck.commands import app

    return sorted(get_command(app).commands)


# a Python type where a value's name belongs: typer's <bool>, <float>, <list[Path]>, <table|json|nagios>,
# click's TEXT/FLOAT/PATH/BOOLEAN columns
TYPE_NAME = re.compile(r"<[A-Za-z_|\[\], ]+>|\b(TEXT|FLOAT|INTEGER|BOOLEAN|PATH)\b")


def test_every_subcommand_is_in_the_help_walk() -> None:
    assert set(_commands()) == SUBCOMMANDS


@pytest.mark.parametrize("command", ["", *sorted(SUBCOMMANDS)])
def test_no_help_output_shows_a_python_type_name(command: str) -> None:
    for width in ("80", "200"):
        out = run(*([command] if command else []), "--help", env={"COLUMNS": width})
        assert out.returncode == 0, out.stderr
        assert "Usage: migcheck" in out.stdout
        found = TYPE_NAME.findall(out.stdout)
        assert not TYPE_NAME.search(out.stdout), f"migcheck {command} --help shows type names: {found}"


def test_every_option_and_argument_has_a_help_text() -> None:
    from typer.main import get_command

    from migcheck.commands import app

    group = get_command(app)
    missing = []
    for name, command in [("migcheck", group), *sorted(group.commands.items())]:
        ctx = command.make_context(name, ["--help"], resilient_parsing=True)
        for param in command.get_params(ctx):
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{name} {param.name}")
        if name != "migcheck":
            assert (command.help or "").strip(), f"{name} has no help"
    assert missing == []


def test_check_help_lists_every_exit_code_from_exit_codes_py() -> None:
    out = run("check", "--help", env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for code in (ExitCode.OK, ExitCode.BLOCKED, ExitCode.USAGE, ExitCode.UNKNOWN, ExitCode.RISKY):
        assert f"{int(code)} {MEANING[code]}" in text, code


def test_the_readme_exit_code_table_says_what_exit_codes_py_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Verdicts and exit codes", 1)[1].split("\n\n", 2)[1]
    rows = {int(cells[1]): cells[2] for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:])}
    assert set(rows) == {0, 1, 2, 3, 4}
    for code, meaning in rows.items():
        assert MEANING[ExitCode(code)].endswith(meaning.replace(": one line", "; one line")), (code, meaning)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "snapshots"


def _finding_keys(findings: list[dict]) -> set[str]:
    return {k for f in findings for k in f}


def test_one_key_names_a_check_in_rules_json_and_in_the_reports(tmp_path) -> None:
    """'rule' in `rules --format json`, in a pair's JSON report and in an audit's: a script joins them on it."""
    listed = json.loads(run("rules", "--format", "json").stdout)
    assert listed and all("rule" in c and "id" not in c for c in listed)
    ids = {c["rule"] for c in listed}

    pair = run("check", "--from-snapshot", str(EXAMPLES / "invtsc-blocked"), "--format", "json")
    assert pair.returncode in (0, 1, 3, 4), pair.stderr
    findings = json.loads(pair.stdout)["findings"]
    assert findings and _finding_keys(findings) >= {"rule"} and "id" not in _finding_keys(findings)
    assert "cpu.invtsc-without-tsc-frequency" in {f["rule"] for f in findings} <= ids | {"probe.failed",
                                                                                       "facts.unavailable"}

    from tests.unit.test_audit_reports import _run
    from tests.unit.fleetgen import small_fleet

    _run(tmp_path, small_fleet(seed=1))
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    found = [f for g in audit["guests"] for t in g["targets"] for f in t["findings"]]
    assert found and "id" not in _finding_keys(found)
    assert {f["rule"] for f in found} & ids


@pytest.mark.parametrize("rule", ["probe.failed", "facts.unavailable"])
def test_explain_knows_the_findings_that_name_no_check(rule: str) -> None:
    from migcheck.checks.registry import NOT_CHECKS, not_check_doc

    out = run("explain", rule)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{rule} (unknown): {NOT_CHECKS[rule]}\n")
    assert not_check_doc(rule).strip() in out.stdout and "## How to fix" in out.stdout


def test_every_finding_id_the_code_writes_is_explained() -> None:
    """The literal IDs of findings made outside a check (engine, audit) are in NOT_CHECKS."""
    from migcheck.checks.registry import NOT_CHECKS, UNAVAILABLE

    src = Path(migcheck.__file__).parent
    literal = {m for p in src.rglob("*.py") for m in re.findall(r'Finding\(rule="([a-z.-]+)"', p.read_text())}
    assert literal and literal | {UNAVAILABLE} <= set(NOT_CHECKS)


_NO_CONTACT = """
import socket, sys
tried = []
def refuse(*a, **k):
    tried.append(a[:2])
    raise OSError("a test refused this network call")
socket.getaddrinfo = refuse
socket.socket.connect = lambda self, *a: refuse(*a)
socket.create_connection = refuse
from migcheck.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("EXIT", code, "TRIED", len(tried), "PROBE", "migcheck.probe.pair" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("args, near", [(["rulse"], "rules"), (["rulse", "a", "b"], "rules"),
                                        (["chek", "mc-a", "mc-b", "vm"], "check"), (["verison"], "version"),
                                        (["Probe", "h"], "probe"), (["expalin", "probe.failed"], "explain")])
def test_a_mistyped_subcommand_is_not_taken_for_a_host(args: list[str], near: str) -> None:
    out = subprocess.run([sys.executable, "-c", _NO_CONTACT, *args], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    lines = out.stderr.splitlines()
    assert lines[-1] == "EXIT 2 TRIED 0 PROBE False", out.stderr  # usage; no host looked up or contacted
    assert len(lines) == 2 and out.stdout == ""
    assert lines[0].startswith(f"migcheck: {args[0]!r} is not a command; did you mean 'migcheck {near}'?")


@pytest.mark.parametrize("word", ["mc-a", "g1-h03", "host1", "src", "localhost", "lab-a", "h.example.com",
                                  "root@rulse", "qemu:///system", "aud-a", "probe1", "audit-2", "check_1"])
def test_host_names_still_mean_a_check(word: str) -> None:
    from migcheck.cli import mistyped_subcommand

    assert mistyped_subcommand(word) is None


def test_a_host_named_like_a_command_is_checked_after_check() -> None:
    out = subprocess.run([sys.executable, "-c", _NO_CONTACT, "check", "rulse", "b", "vm", "--timeout", "2"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "is not a command" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith("EXIT 3 TRIED") and " TRIED 0 " not in out.stderr  # it was tried


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", [72, 80, 120, 200])
def test_the_table_keeps_check_ids_whole(columns: int, monkeypatch) -> None:
    """From 72 columns on, every real check ID stays on one line (a pipe into grep finds it), the finding wraps;
    narrower, the longest IDs are cut only when the finding column is down to 8."""
    from migcheck.checks.registry import all_checks
    from migcheck.report.model import Finding, Report, Severity, Verdict
    from migcheck.report.render import render_table

    monkeypatch.setenv("COLUMNS", str(columns))
    longest = max((c.id for c in all_checks()), key=len)
    report = Report(verdict=Verdict.BLOCKED, source="src", target="dst", domain="vm", flags=["--live"],
                    findings=[Finding(rule=longest, severity=Severity.BLOCK, message="word " * 60)], checks_run=1)
    out = render_table(report)
    assert longest in out, out
    assert _widest(out) <= columns, out


@pytest.mark.parametrize("columns", [60, 200])
def test_the_table_fits_columns(columns: int, monkeypatch) -> None:
    from migcheck.report.model import Finding, Report, Severity, Verdict
    from migcheck.report.render import render_table

    monkeypatch.setenv("COLUMNS", str(columns))
    long_word = "qemu+ssh://root@a-host-with-a-very-long-name.example.com/system?keyfile=/root/.ssh/id_ed25519" * 2
    report = Report(verdict=Verdict.UNKNOWN, source="src-" + "s" * 70, target="dst", domain="vm", flags=["--live"],
                    findings=[Finding(rule="network.a-check-id-that-is-longer-than-thirty-four", severity=Severity.UNKNOWN,
                                      message="could not check: " + long_word + " and then some words " * 20,
                                      evidence=["evidence " * 30], fix="fix it " * 30)], checks_run=3)
    for verbose in (False, True):
        out = render_table(report, verbose)
        assert _widest(out) <= columns, out
        assert "verdict: UNKNOWN" in out and "3 checks run" in out
    if columns == 200:  # room enough: nothing cut that needs no cutting
        assert "network.a-check-id-that-is-longer-than-thirty-four"[:34] in out.replace("│", "")


@pytest.mark.parametrize("columns", ["60", "200"])
@pytest.mark.parametrize("command", [["rules"], ["check", "--from-snapshot", str(EXAMPLES / "invtsc-blocked"), "-v"]])
def test_the_command_line_tables_fit_columns(columns: str, command: list[str]) -> None:
    out = run(*command, env={"COLUMNS": columns})
    assert out.returncode in (0, 1, 3, 4), out.stderr
    assert out.stdout and _widest(out.stdout) <= int(columns)
    if columns == "60":
        assert _widest(out.stdout) >= 50  # the width is used, not a fixed narrow table
