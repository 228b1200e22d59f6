"""The every-pair reference for the audit's grouping: engine.evaluate on each pair's RawHosts.

The audit (migcheck.audit.evaluate) checks a guest once per class of equal targets; these tests and the
benchmark compare its matrix, pair by pair, with this plain evaluation of every pair, which is what
``migcheck SRC DST VM`` gives. With ``MIGCHECK_COLLECT_READS`` set, each pair also records what every
check reads of the target (tests/unit/declared_reads.py).
"""

from __future__ import annotations

import os
from typing import Iterable

from migcheck.audit.evaluate import AuditPlan, VmResult, pair_report
from migcheck.audit.fleet import HostProbe, source_raw, target_raw
from migcheck.checks.registry import all_checks
from migcheck.flags import MigrationFlags
from migcheck.report.model import Report


def evaluate_every_pair(hosts: dict[str, HostProbe], plan: AuditPlan) -> dict[tuple[str, str, str], Report]:
    """The reference: for every guest and every candidate target, engine.evaluate on the pair's RawHosts."""
    from migcheck.engine import evaluate

    out: dict[tuple[str, str, str], Report] = {}
    n_checks = len(all_checks())
    for name, host in hosts.items():
        if not host.ok:
            continue
        for g in host.guests.values():
            flags = plan.guest_flags(g) if g.raw is not None else plan.flags
            if flags is None:
                continue
            for t in plan.candidates.get(name, []):
                th = hosts[t]
                if g.error is not None or g.raw is None:
                    err = f"{host.spec}: {g.error or 'not probed'}"
                    out[(name, g.name, t)] = _unknown(host, th, g.name, flags, err)
                elif th.error is not None or th.target_error is not None:
                    err = f"{th.spec}: {th.error or th.target_error}"
                    out[(name, g.name, t)] = _unknown(host, th, g.name, flags, err)
                else:
                    src_raw, dst_raw = source_raw(host, g), target_raw(th, g)
                    out[(name, g.name, t)] = evaluate(src_raw, dst_raw, g.name, flags)
                    if os.environ.get("MIGCHECK_COLLECT_READS"):
                        from tests.unit.declared_reads import assert_reads_declared

                        assert_reads_declared(src_raw, dst_raw, flags)
                    assert out[(name, g.name, t)].checks_run == n_checks
    return out


def _unknown(src: HostProbe, dst: HostProbe, vm: str, flags: MigrationFlags, error: str) -> Report:
    from migcheck.engine import unknown_report

    return unknown_report(src.spec, dst.spec, vm, flags, error)


def grouped_reports(results: Iterable[VmResult], hosts: dict[str, HostProbe],
                    checks_run: int | None = None) -> dict[tuple[str, str, str], Report]:
    n = checks_run if checks_run is not None else len(all_checks())
    return {(vm.host, vm.name, t): pair_report(vm, t, hosts, n) for vm in results for t in vm.targets}
