"""Facts of a source and a target -> a report with a verdict."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, merge_unavailable, run_checks
from migcheck.facts.host import build_host_facts
from migcheck.flags import MigrationFlags
from migcheck.probe.raw import RawHost
from migcheck.report.model import SEVERITY_ORDER, Finding, Report, Severity, verdict_of


def evaluate(source: RawHost, target: RawHost, domain: str, flags: MigrationFlags,
             only: list[str] | None = None, migration_xml=None) -> Report:
    """migration_xml: the files --xml/--persistent-xml name, as migcheck.destxml read them (read here when
    the flags name them and the caller did not)."""
    src = build_host_facts(source)
    dst = build_host_facts(target)
    if migration_xml is None and (flags.xml or flags.persistent_xml):
        from migcheck.destxml import load_migration_xml

        migration_xml = load_migration_xml(flags)
    ctx = CheckContext(source=src, target=dst, flags=flags, migration_xml=migration_xml)
    findings, count = run_checks(ctx, only)
    findings = merge_unavailable(findings)
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.rule))
    return Report(
        verdict=verdict_of(findings),
        source=source.spec,
        target=target.spec,
        domain=domain,
        flags=flags.as_args(),
        findings=findings,
        checks_run=count,
    )


def unknown_report(source: str, target: str, domain: str, flags: MigrationFlags, error: str) -> Report:
    """The host could not be probed: the verdict is unknown, with the one-line reason."""
    finding = Finding(rule="probe.failed", severity=Severity.UNKNOWN, message=error,
                      fix="fix the access problem named above and run migcheck again")
    return Report(verdict=verdict_of([finding]), source=source, target=target, domain=domain,
                  flags=flags.as_args(), findings=[finding], errors=[error])


def refused_flags_report(source: str, target: str, domain: str, flags: MigrationFlags) -> Report | None:
    """The blocked report for flags virsh or libvirt refuse whatever the hosts hold, or None.

    Made before any host is contacted: no probe could change this verdict, so none is made
    (flags.rejected-combination alone runs, on hosts of which nothing is known).
    """
    from migcheck.flags import rejected_combinations

    if not rejected_combinations(flags):
        return None
    unknown = build_host_facts(RawHost(spec=source, uri="")), build_host_facts(RawHost(spec=target, uri=""))
    findings, count = run_checks(CheckContext(source=unknown[0], target=unknown[1], flags=flags),
                                 ["flags.rejected-combination"])
    return Report(verdict=verdict_of(findings), source=source, target=target, domain=domain,
                  flags=flags.as_args(), findings=findings, checks_run=count)
