"""``migcheck migrate``: run the real ``virsh migrate`` once the verdict allows it, and learn from misses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from migcheck.checks.errors import rule_for_error
from migcheck.connectors.hostspec import HostTarget
from migcheck.probe.pair import PairProbe
from migcheck.report.model import Report


@dataclass
class MigrationOutcome:
    ok: bool
    returncode: int
    stderr: str
    seconds: float

    @property
    def error_line(self) -> str:
        lines = [line.strip() for line in self.stderr.replace("\r", "\n").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or ["(no output)"])[-1]

    @property
    def matched_rule(self) -> str | None:
        return rule_for_error(self.stderr)

    @property
    def explanation(self) -> str:
        rule = self.matched_rule
        if rule:
            return f"the error matches check {rule} ('migcheck explain {rule}'), which did not fire: a migcheck miss"
        return "no check matches this error: a migcheck miss"


def virsh_migrate_argv(src: HostTarget, dst: HostTarget, vm: str, flags: list[str]) -> list[str]:
    """An argv (never a shell string): the guest name is one argument, whatever it contains.

    --verbose makes virsh print its progress, which migcheck streams through.
    """
    progress = [] if "--verbose" in flags else ["--verbose"]
    return ["virsh", "-c", src.uri, "migrate", *flags, *progress, "--", vm, dst.uri]


def run_virsh_migrate(src: HostTarget, dst: HostTarget, vm: str, flags: list[str], timeout: float) -> MigrationOutcome:
    """Run virsh migrate, streaming its output (progress with --verbose) while keeping it for the verdict."""
    argv = virsh_migrate_argv(src, dst, vm, flags)
    print(f"migcheck: running virsh -c {src.spec} migrate {' '.join(flags)} {vm} {dst.spec}", file=sys.stderr)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=sys.stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    chunks: list[bytes] = []
    assert proc.stderr is not None
    deadline = t0 + timeout
    while True:
        chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
        if not chunk:
            break
        chunks.append(chunk)
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
        if time.monotonic() > deadline:
            proc.kill()
            chunks.append(f"\nerror: migcheck stopped virsh migrate after {timeout:g}s\n".encode())
            break
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    return MigrationOutcome(ok=rc == 0, returncode=rc, stderr=b"".join(chunks).decode("utf-8", "replace"),
                            seconds=time.monotonic() - t0)


def record_miss(base: Path, pair: PairProbe, report: Report, outcome: MigrationOutcome) -> Path:
    """Keep what the project needs to learn from a miss: the saved probe, the verdict and the error."""
    from migcheck.probe.snapshot import save_pair

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pair.domain)[:64]
    where = base / f"{stamp}-{safe}"
    save_pair(pair.source, pair.target, pair.domain, report.flags, where / "probe")
    (where / "report.json").write_text(report.model_dump_json(indent=2) + "\n")
    (where / "migration-error.json").write_text(json.dumps({
        "returncode": outcome.returncode, "stderr": outcome.stderr, "error_line": outcome.error_line,
        "matched_rule": outcome.matched_rule, "seconds": round(outcome.seconds, 2)}, indent=2) + "\n")
    return where
