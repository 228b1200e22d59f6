"""The suite's own rules (tests/conftest.py): a missing prerequisite fails the run, it never skips it.

Each test runs pytest on a lab module in a subprocess, collection only (no lab
comes up), with one prerequisite taken away.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB_MODULE = "tests/lab/test_lab_selfcheck.py"


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MIGCHECK_LAB"}
    env.update(changes)
    return env


def test_a_missing_lab_tool_fails_the_run_with_one_line():
    # PATH with Python only: virsh, ip, ssh, ... are not found
    p = _pytest(_env(PATH=str(Path(sys.executable).parent)), LAB_MODULE)
    out = p.stdout + p.stderr
    assert p.returncode == 4, out
    lines = [line for line in out.splitlines() if "the lab cannot run here" in line]
    assert len(lines) == 1, out
    assert ("virsh" in lines[0] and "lab tools missing" in lines[0]) or "need root" in lines[0], lines
    assert "MIGCHECK_LAB=0" in lines[0]


def test_the_lab_is_left_out_only_when_asked():
    p = _pytest(_env(PATH=str(Path(sys.executable).parent), MIGCHECK_LAB="0"), LAB_MODULE)
    out = p.stdout + p.stderr
    assert p.returncode == 5, out  # nothing collected: every lab test deselected
    assert "lab tests not run (MIGCHECK_LAB=0)" in out, out


def test_a_missing_corpus_fails_the_run_with_one_line(tmp_path):
    p = _pytest(_env(MIGCHECK_LIBVIRT_CORPUS=str(tmp_path / "absent"), MIGCHECK_LAB="0"), "tests/unit/test_error_rules.py")
    out = p.stdout + p.stderr
    assert p.returncode == 4, out
    assert sum("the libvirt test corpus is not at" in line for line in out.splitlines()) == 1, out
