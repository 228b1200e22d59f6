"""Pair migcheck's verdict with a real `virsh migrate` between lab hosts.

The judge of a check is a real migration: a lab scenario runs migcheck (the
installed console script, as an operator would), then the real migration with
the same flags, and asserts both the expected outcome and that the two agree:
ok means the migration succeeds, blocked means it fails (with the expected text).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.lab import Lab
from tests.lab.host import LabHost

MIGCHECK = str(Path(sys.executable).with_name("migcheck"))


@dataclass
class Outcome:
    verdict: str
    exit_code: int
    report: dict
    migrated: bool | None = None
    migrate_error: str = ""

    def rules(self, severity: str | None = None) -> set[str]:
        return {f["rule"] for f in self.report.get("findings", [])
                if severity is None or f["severity"] == severity}


def migcheck(src: str, dst: str, vm: str, flags: list[str], *extra: str, timeout: float = 90) -> tuple[int, dict, str]:
    """Run `migcheck SRC DST VM FLAGS --format json`; returns (exit code, report, stderr)."""
    p = subprocess.run([MIGCHECK, src, dst, vm, *flags, "--format", "json", *extra],
                       capture_output=True, text=True, timeout=timeout)
    try:
        report = json.loads(p.stdout) if p.stdout.strip() else {}
    except json.JSONDecodeError:
        raise AssertionError(f"migcheck printed no JSON (exit {p.returncode}): {p.stdout[:500]} {p.stderr[:500]}")
    return p.returncode, report, p.stderr


@contextlib.contextmanager
def guest(lab: Lab, host: LabHost, name: str, xml: str, *, start: bool = True,
          paused: bool = True) -> Iterator[str]:
    """Define (and start) a guest on host; on exit remove it from every lab host."""
    path = f"/tmp/{name}.xml"
    host.write_file(path, xml)
    try:
        host.virsh("define", path)
        if start:
            args = ["start", name] + (["--paused"] if paused else [])
            p = host.virsh(*args, check=False)
            if p.returncode != 0:
                raise AssertionError(f"guest {name} did not start on {host.name}: {p.stderr.strip()}")
        yield name
    finally:
        for h in lab.hosts:
            h.virsh("destroy", name, check=False, timeout=30)
            h.virsh("undefine", name, "--nvram", check=False, timeout=30)
            h.virsh("undefine", name, check=False, timeout=30)


def pair(lab: Lab, src: LabHost, dst: LabHost, vm: str, flags: list[str], *, expect: str,
         expect_rule: str | None = None, expect_error: str | None = None, migrate: bool = True) -> Outcome:
    """migcheck first, then the real migration; assert the expected verdict and that both agree."""
    code, report, stderr = migcheck(src.name, dst.name, vm, flags)
    out = Outcome(verdict=report.get("verdict", "?"), exit_code=code, report=report)
    assert out.verdict == expect, f"migcheck said {out.verdict} (exit {code}), expected {expect}: " \
                                  f"{json.dumps(report.get('findings'), indent=1)[:3000]} {stderr}"
    if expect_rule:
        assert expect_rule in out.rules(), f"{expect_rule} not among {sorted(out.rules())}"
    if not migrate:
        return out
    p = lab.migrate(src, dst, vm, flags)
    out.migrated = p.returncode == 0
    out.migrate_error = (p.stderr or "").strip()
    # the two must agree: ok -> it migrates; blocked -> it fails
    if out.verdict == "ok":
        assert out.migrated, f"migcheck said ok but virsh migrate failed: {out.migrate_error}"
    elif out.verdict == "blocked":
        assert not out.migrated, "migcheck said blocked but the migration succeeded"
        if expect_error:
            assert expect_error in out.migrate_error, f"expected {expect_error!r} in: {out.migrate_error}"
    return out
