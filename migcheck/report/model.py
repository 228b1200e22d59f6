"""Findings, verdicts and exit codes: what every renderer reads."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from migcheck.report.exit_codes import ExitCode


class Severity(str, Enum):
    """How a finding affects the verdict.

    block: the migration will fail.  risk: it may fail, or endanger data,
    depending on things migcheck cannot see.  warn / info: worth knowing, no
    effect on the verdict.  unknown: a check could not run (never a pass).
    """

    BLOCK = "block"
    RISK = "risk"
    WARN = "warn"
    INFO = "info"
    UNKNOWN = "unknown"


class Verdict(str, Enum):
    OK = "ok"
    RISKY = "risky"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"


VERDICT_EXIT = {
    Verdict.OK: ExitCode.OK,
    Verdict.BLOCKED: ExitCode.BLOCKED,
    Verdict.UNKNOWN: ExitCode.UNKNOWN,
    Verdict.RISKY: ExitCode.RISKY,
}

SEVERITY_ORDER = {Severity.BLOCK: 0, Severity.UNKNOWN: 1, Severity.RISK: 2, Severity.WARN: 3, Severity.INFO: 4}


class Finding(BaseModel):
    rule: str
    severity: Severity
    message: str
    evidence: list[str] = Field(default_factory=list)
    fix: str | None = None


class Report(BaseModel):
    verdict: Verdict
    source: str
    target: str
    domain: str
    flags: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    checks_run: int = 0
    errors: list[str] = Field(default_factory=list)  # probe failures, one line each

    @property
    def exit_code(self) -> int:
        return int(VERDICT_EXIT[self.verdict])


def verdict_of(findings: list[Finding]) -> Verdict:
    """blocked beats unknown (a certain failure is certain); unknown beats risky and ok."""
    severities = {f.severity for f in findings}
    if Severity.BLOCK in severities:
        return Verdict.BLOCKED
    if Severity.UNKNOWN in severities:
        return Verdict.UNKNOWN
    if Severity.RISK in severities:
        return Verdict.RISKY
    return Verdict.OK
