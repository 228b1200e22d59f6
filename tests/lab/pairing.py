"""Pair migcheck's verdict with a real `virsh migrate` between lab hosts.

The judge of a check is a real migration: a lab scenario runs migcheck (the
installed console script, as an operator would), then the real migration with
the same flags, and asserts both the expected outcome and that the two agree:
ok means the migration succeeds, blocked means it fails (with the expected text).
A risky verdict is proven by two scenarios: one that migrates (the caller asserts
it) and one that fails, for which the caller names the error it expects
(``expect_error``) and the pairing asserts it as for blocked.

At the exact severity: for a blocked (risky) verdict the expected check must be
one that blocks (warns of a risk), not one that only warned beside another
check's block; and the real error text must belong to that check
(``rules_for_error``). Where libvirt forces a vaguer text (with --p2p libvirt
9.0 sometimes reports only the lost connection), the caller names it in
``vague_errors`` and the pairing asserts more instead: the guest is still on
the source and nothing arrived on the target.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from migcheck.checks.errors import rules_for_error
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


# The severity of the findings that carry each verdict.
VERDICT_SEVERITY = {"blocked": "block", "risky": "risk", "unknown": "unknown"}


def pair(lab: Lab, src: LabHost, dst: LabHost, vm: str, flags: list[str], *, expect: str,
         expect_rule: str | None = None, expect_error: str | None = None, vague_errors: tuple[str, ...] = (),
         migrate: bool = True) -> Outcome:
    """migcheck first, then the real migration; assert the expected verdict and that both agree.

    expect_error: a text the real failure must contain (or one of vague_errors, see the module's
    docstring); with expect_rule, the failure's text must belong to that check. With expect="risky",
    giving it says this is the risk's failing scenario: the migration must fail.
    """
    code, report, stderr = migcheck(src.name, dst.name, vm, flags)
    out = Outcome(verdict=report.get("verdict", "?"), exit_code=code, report=report)
    assert out.verdict == expect, f"migcheck said {out.verdict} (exit {code}), expected {expect}: " \
                                  f"{json.dumps(report.get('findings'), indent=1)[:3000]} {stderr}"
    if expect_rule:
        severity = VERDICT_SEVERITY.get(expect)
        carrying = out.rules(severity) if severity else out.rules()
        assert expect_rule in carrying, \
            f"{expect_rule} does not carry the verdict {expect}: findings at {severity or 'any'} severity: " \
            f"{sorted(carrying)}, all: {sorted(out.rules())}"
    if not migrate:
        return out
    p = lab.migrate(src, dst, vm, flags)
    out.migrated = p.returncode == 0
    out.migrate_error = (p.stderr or "").strip()
    # the two must agree: ok -> it migrates; blocked -> it fails
    if out.verdict == "ok":
        assert out.migrated, f"migcheck said ok but virsh migrate failed: {out.migrate_error}"
    elif out.verdict == "blocked" or (out.verdict == "risky" and expect_error):
        # risky with an expected error: the failing side of a risk (the other side is a scenario that migrates)
        assert not out.migrated, f"migcheck said {out.verdict} but the migration succeeded" + \
                                 (f" (expected it to fail with {expect_error!r})" if expect_error else "")
        vague = [t for t in vague_errors if t in out.migrate_error]
        if vague and not (expect_error and expect_error in out.migrate_error):
            assert_still_on_source(src, dst, vm, out.migrate_error)
            return out
        if expect_error:
            assert expect_error in out.migrate_error, f"expected {expect_error!r} in: {out.migrate_error}"
        if expect_rule:
            assert expect_rule in rules_for_error(out.migrate_error), \
                f"the real failure does not belong to {expect_rule} (it matches {rules_for_error(out.migrate_error)}): " \
                f"{out.migrate_error}"
    return out


def assert_still_on_source(src: LabHost, dst: LabHost, vm: str, error: str) -> None:
    """After a failure whose text says little: the guest is still active on the source, and absent on the target."""
    state = src.virsh("domstate", vm, check=False).stdout.strip()
    assert state in ("running", "paused"), f"{vm} is {state or 'gone'} on {src.name} after: {error}"
    arrived = dst.virsh("list", "--all", "--name").stdout.split()
    assert vm not in arrived, f"{vm} is on {dst.name} after a failed migration: {error}"
