"""QEMU's own answer (``--qmp``): the blocked-reasons of query-migrate, mapped to the checks that predict them."""

from __future__ import annotations

import re

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.report.model import Severity


# QEMU's blocked-reasons texts -> the check that predicts them.
QMP_REASON_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"non-migratable CPU device \(invtsc flag\)"), "cpu.invtsc-without-tsc-frequency"),
    (re.compile(r"feature 'peer mode' in device 'ivshmem'|ivshmem", re.I), "devices.shmem-not-master"),
    (re.compile(r"VirtFS export path"), "devices.9p-share"),
    (re.compile(r"VFIO device", re.I), "devices.hostdev"),
    (re.compile(r"TPM emulator does not support migration"), "devices.tpm-emulator"),
    (re.compile(r"format used by node .* does not support live migration"), "devices.image-format"),
    (re.compile(r"vhost lacks VHOST_F_LOG_ALL"), "devices.vhost-user-socket"),
]


@check("qemu.blocked-reasons", Severity.BLOCK, "QEMU itself reports a migration blocker (--qmp)")
def qmp_blocked_reasons(ctx: CheckContext):
    """Only with --qmp: asks the running QEMU (query-migrate, QEMU >= 6.0). libvirt quotes these reasons
    as 'cannot migrate domain: ...' when the migration starts."""
    reasons = ctx.guest.qmp_blocked_reasons
    if reasons is None:
        err = ctx.source.errors.get("qmp")
        if err:
            return [Hit(message=f"could not ask QEMU for its migration blockers: {err}", evidence=[],
                        fix="check the source libvirt, or run without --qmp", severity=Severity.UNKNOWN)]
        raise NotApplicable
    out = []
    for reason in reasons:
        rule = next((r for pattern, r in QMP_REASON_RULES if pattern.search(reason)), None)
        out.append(Hit(message=f"QEMU refuses to migrate: '{reason}'",
                       evidence=[f"query-migrate blocked-reasons: {reason}",
                                 "asked through libvirt: the guest is now marked tainted: custom-monitor"],
                       fix="see 'migcheck explain " + (rule or "qemu.blocked-reasons") + "'",
                       rule=rule))
    return out
