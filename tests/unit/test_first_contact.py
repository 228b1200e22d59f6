"""A new user's first commands (issue 17, item 8): --version, the help texts, the names in the JSON.

Each test runs the real command line in a fresh interpreter (``python -m migcheck.cli``), as a
user's shell would, so the typer application, its help rendering and the plain-check path are the
ones a user meets.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import migcheck


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
