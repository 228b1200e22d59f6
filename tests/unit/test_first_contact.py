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
