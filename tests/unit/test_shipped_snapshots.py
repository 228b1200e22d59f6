"""Every shipped snapshot (examples/snapshots/*) replays as a new user's first command would.

They are re-recorded from the lab with `python -m tests.lab.record_examples` (under the lab lock):
a snapshot saved by an older probe (before the read-write connection) replayed as "unknown: read
only access prevents virConnectGetDomainCapabilities", and the fixed twin never said ok.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "snapshots"
SHIPPED = sorted(p.name for p in EXAMPLES.iterdir() if (p / "snapshot.json").is_file())


def replay(name: str) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "migcheck.cli", "check", "--from-snapshot", str(EXAMPLES / name),
                          "--format", "json"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env={**os.environ, "COLUMNS": "100"})
    return out.returncode, json.loads(out.stdout)


def test_the_examples_are_shipped() -> None:
    assert {"invtsc-blocked", "invtsc-fixed"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_snapshot_replays_without_a_probe_error(name: str) -> None:
    code, report = replay(name)
    texts = [f["message"] for f in report["findings"]] + report["errors"]
    assert not [t for t in texts if "read only access prevents" in t], texts
    assert not [f for f in report["findings"] if f["severity"] == "unknown"], report["findings"]
    assert code == report["exit_code"] and report["verdict"] != "unknown"


def test_the_invtsc_guest_is_blocked_by_invtsc_and_its_fixed_twin_is_ok() -> None:
    code, report = replay("invtsc-blocked")
    assert (code, report["verdict"]) == (1, "blocked")
    assert [f["rule"] for f in report["findings"] if f["severity"] == "block"] == ["cpu.invtsc-without-tsc-frequency"]
    code, report = replay("invtsc-fixed")
    assert (code, report["verdict"]) == (0, "ok"), report["findings"]
