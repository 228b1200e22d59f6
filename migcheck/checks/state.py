"""Checks of the guest's jobs: another job running, an active block job, a QEMU that a dump left in
'postmigrate'."""

from __future__ import annotations

from migcheck.checks.platform import VIR_DOMAIN_PAUSED
from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check
from migcheck.report.model import Severity

VIR_DOMAIN_JOB_NONE = 0


@check("state.job-active", Severity.BLOCK, "another job (migration, save, dump, backup) is running on the guest",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_guest_with_a_dump_job_in_progress_is_blocked_and_fails",
       ),
       explains={100: r"another migration job|cannot acquire state change lock"})
def job_active(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0) with a dump into a slowly drained FIFO: while libvirt still holds the
    dump job, virDomainGetJobInfo says "Completed" (QEMU's part is done, libvirt's is not), and the migration
    waits 30 s for the job lock, then fails with "Timed out during operation: cannot acquire state change
    lock (held by monitor=remoteDispatchDomainCoreDump)". Once the job is over, job info says "None"."""
    g = ctx.guest
    if not g.running:
        return []
    if g.job_type is None:
        raise FactMissing(f"job info of {ctx.source.spec}: {ctx.source.errors.get('job', 'not gathered')}")
    if g.job_type == VIR_DOMAIN_JOB_NONE:
        return []
    return [Hit(message=f"a job is already running on the guest (job type {g.job_type}): libvirt refuses \"another "
                        f"migration job is already running for domain '{g.name}'\", or waits for the job lock and "
                        "fails with \"Timed out during operation: cannot acquire state change lock\"",
                evidence=[f"virsh domjobinfo {g.name}: type {g.job_type}"],
                fix=f"wait for it to finish, or cancel it (virsh domjobabort {g.name})")]


@check("state.block-job", Severity.BLOCK, "the guest has an active block job (copy, commit, pull)",
       explains={110: r"active block job"})
def block_job(ctx: CheckContext):
    g = ctx.guest
    if ctx.flags.offline or not g.running:
        return []
    if "block_jobs" in ctx.source.errors:
        raise FactMissing(f"block jobs of {ctx.source.spec}: {ctx.source.errors['block_jobs']}")
    if not g.block_jobs:
        return []
    return [Hit(message="domain has active block job", evidence=[f"block job on {d}" for d in g.block_jobs],
                fix="wait for the block job to finish (virsh blockjob GUEST DISK --info) or abort it")]


# libvirt.VIR_DOMAIN_JOB_OPERATION_*: jobs that stream the guest's memory with QEMU's migration
# Jobs that stream memory through QEMU's migration code and leave the QEMU process running. Not an outgoing
# migration (5): one that completed ended with libvirt killing that QEMU ("kill off VM if successful"), so a
# guest running here again is a new process; libvirt keeps the record across the restart (seen in the lab).
_STREAM_OPERATIONS = {6: "a snapshot with memory", 8: "a dump"}
VIR_DOMAIN_JOB_COMPLETED = 3


@check("state.postmigrate-paused", Severity.BLOCK,
       "a paused guest whose QEMU a dump left in 'postmigrate': QEMU refuses to migrate it", proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_paused_guest_after_a_dump_is_risky_without_qmp_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_paused_guest_after_a_dump_is_blocked_with_qmp_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_paused_again_after_a_dump_is_still_risky_without_qmp_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_paused_guest_started_again_after_migrating_away_is_ok_and_migrates",
       ), also=(Severity.RISK,))
def postmigrate_paused(ctx: CheckContext):
    """`virsh dump` (not --memory-only; also --live) streams memory with QEMU's migration code. A guest
    that was paused stays paused, its QEMU in runstate 'postmigrate', which refuses every later
    migration: "internal error: unable to execute QEMU command 'migrate': Can't migrate the vm that
    was paused due to previous migration" (lab: libvirt 9.0, QEMU 7.2). `virsh resume` + `virsh
    suspend` brings QEMU back to 'paused' and the guest migrates.

    Only QEMU knows its runstate: with --qmp migcheck asks it (query-status), 'postmigrate' blocks.
    Without --qmp, libvirt's statistics of the last finished job (kept until the next job or until
    someone reads them without KEEP_COMPLETED; resume/suspend do not clear them) say a dump happened,
    not whether the guest was resumed since: a risk. A --memory-only dump leaves neither.
    """
    g = ctx.guest
    if ctx.flags.offline or g.state != VIR_DOMAIN_PAUSED:
        raise NotApplicable
    fix = (f"resume and pause the guest once (virsh resume {g.name}; virsh suspend {g.name}): QEMU leaves "
           "'postmigrate'; then migrate")
    if g.qmp_status is not None:
        if g.qmp_status != "postmigrate":
            return []
        return [Hit(message="QEMU is in runstate 'postmigrate' (paused after a dump or a migration stream) and "
                            "refuses with \"Can't migrate the vm that was paused due to previous migration\"",
                    evidence=[f"QMP query-status of {g.name}: postmigrate"], fix=fix)]
    job = g.completed_job
    if job is None:
        if "completed_job" in ctx.source.errors:
            raise FactMissing(f"completed job statistics of {ctx.source.spec}: {ctx.source.errors['completed_job']}")
        raise NotApplicable  # a probe saved before this fact was gathered
    op = job.get("operation")
    if job.get("type") != VIR_DOMAIN_JOB_COMPLETED or op not in _STREAM_OPERATIONS or "memory_iteration" not in job:
        return []
    what = _STREAM_OPERATIONS[op]
    return [Hit(message=f"the guest is paused and the last job that finished on it was {what}: unless it was "
                        "resumed since, QEMU is in 'postmigrate' and refuses with \"Can't migrate the vm that was "
                        "paused due to previous migration\"",
                evidence=[f"virsh domjobinfo --completed --keep-completed {g.name}: Completed, operation {op} ({what})",
                          f"{ctx.source.spec}: {g.name} paused"],
                fix=fix + f"; migcheck --qmp asks QEMU for its runstate, and virsh domjobinfo --completed {g.name} "
                          "(without --keep-completed) discards the old statistics",
                severity=Severity.RISK)]
