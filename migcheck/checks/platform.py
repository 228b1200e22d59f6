"""Platform checks: same host, versions, machine type, emulator, arch, domain state, name collisions, flags."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check
from migcheck.flags import rejected_combinations
from migcheck.report.model import Severity

# libvirt.VIR_DOMAIN_* states
_STATE_NAMES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down",
                5: "shut off", 6: "crashed", 7: "pm-suspended"}
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_PAUSED_IOERROR = 5


@check("flags.rejected-combination", Severity.BLOCK, "libvirt rejects this combination of migration flags",
       proven_by_lab=True)
def rejected_flag_combination(ctx: CheckContext):
    """virsh's and libvirt's refusals of flag combinations (migcheck.flags.rejected_combinations), plus one that
    depends on the guest: --tunnelled with --copy-storage-* fails only when there is a disk to copy (libvirt 9.0
    with a -blockdev QEMU; proven in the lab: a diskless guest migrates, one with a disk fails)."""
    whys = rejected_combinations(ctx.flags)
    if ctx.flags.tunnelled and ctx.flags.copy_storage and not ctx.flags.offline:
        try:
            disks = ctx.domain.disks
        except FactMissing:
            if not whys:
                raise
            disks = []  # the flags are refused anyway (engine.refused_flags_report knows no guest)
        copied = [d.target for d in disks
                  if d.source and d.device != "cdrom" and not d.readonly and not d.shareable]
        if copied:
            whys.append(f"disks cannot be copied over a tunnelled connection (disk {', '.join(copied)}): libvirt "
                        "logs 'migration of non-shared storage is not supported with tunnelled migration and this "
                        "QEMU', while virsh 9.0 reports 'End of file while reading data', "
                        "\"argument key 'host' must not have null value\" or a storage pool error")
    out = [Hit(message=f"libvirt refuses these flags: {why}", evidence=[" ".join(ctx.flags.as_args()) or "(no flags)"],
               fix="change the virsh migrate flags") for why in whys]
    return out + _unknown_migrate_disks(ctx)


def _unknown_migrate_disks(ctx: CheckContext) -> list[Hit]:
    """--migrate-disks naming a disk target the guest does not have: libvirt's Begin phase refuses it, but only
    with storage copy (lab, libvirt 9.0: "invalid argument: disk target vdz not found"; without
    --copy-storage-* the list is ignored and the guest migrates)."""
    if ctx.flags.migrate_disks is None or not ctx.flags.copy_storage or ctx.flags.offline:
        return []
    have = {d.target for d in ctx.domain.disks}
    named = [t.strip() for t in ctx.flags.migrate_disks.split(",") if t.strip()]
    return [Hit(message=f"--migrate-disks names disk {t}, which the guest does not have: libvirt refuses "
                        f"'invalid argument: disk target {t} not found'",
                evidence=[f"--migrate-disks {ctx.flags.migrate_disks}",
                          f"the guest's disks: {', '.join(sorted(have)) or 'none'}"],
                fix="name only the guest's disk targets (virsh domblklist GUEST) in --migrate-disks")
            for t in dict.fromkeys(named) if t not in have]


@check("platform.same-host", Severity.BLOCK, "source and target are the same host (equal host UUIDs)")
def same_host(ctx: CheckContext):
    """libvirt refuses 'Attempt to migrate guest to the same host <uuid>'."""
    src = ctx.need(ctx.source.caps, "capabilities", ctx.source)
    dst = ctx.need(ctx.target.caps, "capabilities", ctx.target)
    if not src.uuid or src.uuid != dst.uuid:
        return []
    return [Hit(
        message=f"source and target have the same host UUID {src.uuid}: libvirt will refuse "
                "'Attempt to migrate guest to the same host'",
        evidence=[f"{ctx.source.spec}: host uuid {src.uuid}", f"{ctx.target.spec}: host uuid {dst.uuid}"],
        fix="if these are different machines, give each a unique host_uuid in /etc/libvirt/libvirtd.conf "
            "(cloned images often share the SMBIOS UUID) and restart libvirtd",
    )]


@check("platform.target-hostname-localhost", Severity.BLOCK,
       "the target's hostname resolves to localhost", proven_by_lab=True)
def target_hostname_localhost(ctx: CheckContext):
    """Without --migrateuri libvirt builds the incoming URI from the target's hostname (qemuMigrationDstPrepare:
    a hostname starting with 'localhost' is refused), unless the target's qemu.conf sets migration_host.
    Tunnelled migration carries the data over the libvirt connection and needs no incoming URI.
    Proven in the lab (libvirt 9.0): a target whose hostname is 'localhost.lab' fails with "internal error:
    hostname on destination resolved to localhost, but migration requires an FQDN"; with --migrateuri
    tcp://ADDRESS it migrates."""
    from migcheck.facts.procfs import parse_conf_value

    if ctx.flags.migrateuri or ctx.flags.offline or ctx.flags.tunnelled:
        raise NotApplicable
    name = ctx.need(ctx.target.hostname, "hostname", ctx.target)
    conf = ctx.target.raw.files.get(QEMU_CONF)
    if conf and parse_conf_value(conf, "migration_host"):
        # libvirt takes migration_host instead of the hostname. A localhost one never gets this far: libvirtd
        # refuses to start with it (lab, libvirt 9.0: "migration_host must not be the address of the local
        # machine: localhost.lab"). Whether the source resolves it: network.migration-address.
        return []
    evidence = [f"{ctx.target.spec}: virConnectGetHostname = {name}"]
    return [Hit(
        message=f"the target's hostname is '{name}': libvirt fails with 'hostname on destination resolved to "
                "localhost, but migration requires an FQDN'",
        evidence=evidence,
        fix="give the target a real hostname that the source resolves, or pass --migrateuri tcp://ADDRESS",
    )] if name.startswith("localhost") else []


@check("platform.guest-not-running", Severity.BLOCK, "a live migration of a guest that is not running",
       proven_by_lab=True)
def guest_not_running(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0): a shut-off guest fails with 'Requested operation is not valid:
    domain is not running'; with --offline --persistent its definition moves (defined, shut off, on the
    target)."""
    g = ctx.guest
    if ctx.flags.offline or g.running:
        return []
    state = _STATE_NAMES.get(g.state, str(g.state))
    return [Hit(
        message=f"the guest is {state}: only a running guest can be migrated live "
                "(libvirt: 'Requested operation is not valid: domain is not running')",
        evidence=[f"{ctx.source.spec}: {g.name} state {state}"],
        fix="start the guest first, or move its definition with: virsh migrate --offline --persistent",
    )]


@check("platform.paused-on-io-error", Severity.BLOCK, "the guest is paused on an I/O error", also=(Severity.WARN,))
def paused_on_io_error(ctx: CheckContext):
    """libvirt refuses only with --abort-on-error; without it the guest moves still paused on the error."""
    g = ctx.guest
    if g.state != VIR_DOMAIN_PAUSED or g.state_reason != VIR_DOMAIN_PAUSED_IOERROR or ctx.flags.offline:
        return []
    if not ctx.flags.abort_on_error:
        return [Hit(message="the guest is paused on an I/O error; it will arrive paused with the same error pending",
                    evidence=[f"{ctx.source.spec}: state paused, reason ioerror"],
                    fix="fix the storage error (virsh domblkerror) and resume the guest first",
                    severity=Severity.WARN)]
    return [Hit(message="the guest is paused on an I/O error and --abort-on-error is set: libvirt refuses "
                        "'cannot migrate domain with I/O error'",
                evidence=[f"{ctx.source.spec}: state paused, reason ioerror"],
                fix="fix the storage error (virsh domblkerror), resume the guest, then migrate")]


def _target_emulator_guest(ctx: CheckContext):
    dom = ctx.domain
    caps = ctx.need(ctx.target.caps, "capabilities", ctx.target)
    arch_guests = [g for g in caps.guests if g.arch == dom.arch and g.os_type == dom.os_type]
    return dom, caps, arch_guests


@check("platform.arch-or-virt-type-unsupported", Severity.BLOCK,
       "the target cannot run the guest's architecture or virt type")
def arch_or_virt_type(ctx: CheckContext):
    dom, caps, arch_guests = _target_emulator_guest(ctx)
    if not arch_guests:
        return [Hit(message=f"the target offers no {dom.os_type} guests of arch {dom.arch}",
                    evidence=[f"{ctx.target.spec}: guest arches " + ", ".join(sorted({g.arch for g in caps.guests}))],
                    fix=f"install the QEMU system emulator for {dom.arch} on the target")]
    types = sorted({t for g in arch_guests for t in g.domain_types})
    if dom.virt_type not in types:
        return [Hit(message=f"the target cannot run domain type '{dom.virt_type}' for {dom.arch} (offers: "
                            f"{', '.join(types) or 'none'})",
                    evidence=[f"{ctx.target.spec}: capabilities guest {dom.arch} domain types {types}"],
                    fix="enable KVM on the target (is /dev/kvm there and usable by QEMU?)" if dom.virt_type == "kvm"
                    else "change the guest's domain type")]
    return []


@check("platform.emulator-missing", Severity.BLOCK, "the guest's <emulator> binary is missing on the target")
def emulator_missing(ctx: CheckContext):
    dom, caps, arch_guests = _target_emulator_guest(ctx)
    if not dom.emulator:
        raise NotApplicable
    stat = ctx.target.raw.paths.get(dom.emulator)
    emulators = sorted({e for g in arch_guests for e in g.emulators})
    if stat is not None:
        if stat.exists:
            return []
    elif dom.emulator in emulators:
        return []
    elif not arch_guests:
        raise NotApplicable  # reported by platform.arch-or-virt-type-unsupported
    else:
        return [Hit(message=f"could not tell whether {dom.emulator} exists on the target",
                    evidence=[f"target capabilities list {emulators}"], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    return [Hit(message=f"the emulator {dom.emulator} does not exist on the target",
                evidence=[f"{ctx.target.spec}: {dom.emulator} not found",
                          f"target capabilities list {', '.join(emulators) or 'no emulator'}"],
                fix=f"install QEMU at {dom.emulator} on the target, or change <emulator> (virsh edit) to one of "
                    f"{', '.join(emulators) or 'the target emulators'}")]


@check("platform.machine-type-unknown", Severity.BLOCK, "the target's QEMU does not know the guest's machine type",
       proven_by_lab=True)
def machine_type_unknown(ctx: CheckContext):
    """Typical after upgrading the source first: pc-q35-10.0 cannot run on QEMU 7.2."""
    dom, caps, arch_guests = _target_emulator_guest(ctx)
    if not dom.machine or not arch_guests:
        raise NotApplicable
    machines = {m for g in arch_guests for m in g.machines}
    if dom.machine in machines:
        return []
    similar = sorted((m for m in machines if m.split("-")[:2] == dom.machine.split("-")[:2]),
                     key=machine_version)[-3:]
    return [Hit(
        message=f"the target's QEMU does not support machine type '{dom.machine}': libvirt fails with "
                f"\"Emulator '{dom.emulator}' does not support machine type '{dom.machine}'\"",
        evidence=[f"{ctx.target.spec}: QEMU {ctx.target.qemu_version.text if ctx.target.qemu_version else '?'} "
                  f"knows {len(machines)} machine types" + (f", newest alike: {', '.join(similar)}" if similar else "")],
        fix="upgrade QEMU on the target, or migrate to a host whose QEMU is at least as new as the source's; "
            "a guest's machine type can only change with a cold boot",
    )]


def machine_version(name: str) -> tuple[int, ...]:
    """pc-q35-10.0 -> (10, 0): machine types in QEMU's order (9.2 before 10.0); () without a version."""
    last = name.rsplit("-", 1)[-1]
    return tuple(int(p) for p in last.split(".")) if all(p.isdigit() for p in last.split(".")) else ()


@check("platform.target-older", Severity.WARN, "the target's libvirt or QEMU is older than the source's",
       proven_by_lab=True)
def target_older(ctx: CheckContext):
    """Older targets are the classic source of machine-type and CPU-feature failures; not a failure by itself."""
    out = []
    for what, s, t in (("libvirt", ctx.source.libvirt_version, ctx.target.libvirt_version),
                       ("QEMU", ctx.source.qemu_version, ctx.target.qemu_version)):
        if s is None or t is None:
            continue
        if t.number < s.number:
            out.append(f"{what} {t.text} on the target, {s.text} on the source")
    if not out:
        return []
    return [Hit(message="the target runs older software than the source: " + "; ".join(out),
                evidence=out, fix="upgrade the target first (migrate from old to new, not new to old)")]


@check("platform.name-collision", Severity.BLOCK, "a domain of the same name or UUID exists on the target",
       proven_by_lab=True, also=(Severity.WARN,))
def name_collision(ctx: CheckContext):
    """The target's libvirt adds the incoming guest (name: --dname or its own; its own UUID) to its domains.

    Proven in the lab (libvirt 9.0), live and --offline --persistent alike:
    - same name, other UUID, running or only defined: fails with
      "operation failed: domain 'NAME' already exists with uuid OTHER-UUID";
    - same UUID, other name (e.g. a renamed copy, or --dname), running or only defined: fails with
      "operation failed: domain 'OTHER-NAME' is already defined with uuid UUID";
    - same name and UUID, running: "Requested operation is not valid: domain 'NAME' is already active";
    - same name and UUID, defined but shut off (a copy left by an earlier --persistent migration):
      the migration works, and the guest becomes that persistent domain. Without --persistent the
      target keeps its old stored definition as the guest's next-boot configuration (seen: <memory>
      of the target's old definition, not the source's); with --persistent it is replaced.
      A warning without --persistent, nothing with it.
    """
    g = ctx.guest
    name = ctx.flags.dname or g.name
    if "peers" in ctx.target.errors:
        raise FactMissing(f"domain list of {ctx.target.spec}: {ctx.target.errors['peers']}")
    out = []
    for peer in ctx.target.raw.peers:
        same_name, same_uuid = peer.name == name, bool(g.uuid) and peer.uuid == g.uuid
        state = "running" if peer.active else "defined, shut off"
        evidence = [f"{ctx.target.spec}: {peer.name} {state}, uuid {peer.uuid}",
                    f"{ctx.source.spec}: {g.name} uuid {g.uuid}" + (f", --dname {name}" if ctx.flags.dname else "")]
        if same_name and not same_uuid:
            out.append(Hit(message=f"a different domain named '{name}' is {state} on the target: \"operation failed: "
                                   f"domain '{name}' already exists with uuid {peer.uuid}\"",
                           evidence=evidence,
                           fix="undefine or rename the target's domain, or migrate with --dname NEWNAME"))
        elif same_uuid and not same_name:
            out.append(Hit(message=f"the target has the guest's UUID as domain '{peer.name}' ({state}): "
                                   f"\"operation failed: domain '{peer.name}' is already defined with uuid "
                                   f"{peer.uuid}\"",
                           evidence=evidence,
                           fix=f"undefine '{peer.name}' on the target (virsh undefine {peer.name}) if it is a stale "
                               f"copy of this guest, or migrate under that name (--dname {peer.name})"))
        elif same_name and same_uuid and peer.active:
            out.append(Hit(message=f"the guest '{name}' is already running on the target: \"Requested operation is "
                                   f"not valid: domain '{name}' is already active\"",
                           evidence=evidence,
                           fix="the guest runs on both hosts: find out which copy is current before anything else; "
                               "destroy the stale one"))
        elif same_name and same_uuid and not ctx.flags.persistent:
            out.append(Hit(message=f"the target already has '{name}' defined (same UUID, shut off): the migration "
                                   "works, but the guest keeps the target's stored definition as its next-boot "
                                   "configuration, not the source's",
                           evidence=evidence,
                           fix="add --persistent to replace the target's stored definition with the source's",
                           severity=Severity.WARN))
    return out


VIR_DOMAIN_JOB_NONE = 0


@check("state.job-active", Severity.BLOCK, "another job (migration, save, dump, backup) is running on the guest",
       proven_by_lab=True)
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


@check("state.block-job", Severity.BLOCK, "the guest has an active block job (copy, commit, pull)")
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
       "a paused guest whose QEMU a dump left in 'postmigrate': QEMU refuses to migrate it", proven_by_lab=True, also=(Severity.RISK,))
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


QEMU_CONF = "/etc/libvirt/qemu.conf"


@check("flags.tls-required", Severity.BLOCK, "the target's libvirt forces TLS migration and --tls is missing",
       proven_by_lab=True)
def tls_required(ctx: CheckContext):
    from migcheck.facts.procfs import parse_conf_value

    if ctx.flags.tls or ctx.flags.offline or ctx.flags.tunnelled:
        return []  # libvirt exempts tunnelled migration (proven in the lab: --p2p --tunnelled migrates)
    out = []
    for host in (ctx.source, ctx.target):
        text = host.raw.files.get(QEMU_CONF)
        if text and parse_conf_value(text, "migrate_tls_force") == "1":
            out.append(Hit(message=f"{host.spec} sets migrate_tls_force = 1: 'this libvirtd instance allows "
                                   "migration only with VIR_MIGRATE_TLS flag'",
                           evidence=[f"{host.spec}: {QEMU_CONF}: migrate_tls_force = 1"],
                           fix="add --tls (both hosts need the migration TLS certificates)"))
    return out


TLS_DIR = "/etc/pki/qemu"  # libvirt's default_tls_x509_cert_dir
MIGRATE_TLS_DIR = "/etc/pki/libvirt-migrate"  # used for migration instead, when it exists
TLS_CLIENT_NAMES = ("ca-cert.pem", "client-cert.pem", "client-key.pem")
TLS_SERVER_NAMES = ("ca-cert.pem", "server-cert.pem", "server-key.pem")
TLS_SOURCE_FILES = tuple(f"{TLS_DIR}/{n}" for n in TLS_CLIENT_NAMES)
TLS_TARGET_FILES = tuple(f"{TLS_DIR}/{n}" for n in TLS_SERVER_NAMES)


def _tls_dir_candidates(conf: str | None) -> list[str]:
    from migcheck.facts.procfs import parse_conf_value

    conf = conf or ""
    configured = parse_conf_value(conf, "migrate_tls_x509_cert_dir")
    if configured:
        return [configured]
    return [MIGRATE_TLS_DIR, parse_conf_value(conf, "default_tls_x509_cert_dir") or TLS_DIR]


def tls_paths(conf: str | None, role: str) -> list[str]:
    """What the probe stats for --tls on a host: the candidate certificate dirs and their files.

    role: "source" (the QEMU TLS client) or "target" (the server)."""
    names = TLS_CLIENT_NAMES if role == "source" else TLS_SERVER_NAMES
    dirs = _tls_dir_candidates(conf)
    return list(dict.fromkeys([MIGRATE_TLS_DIR] + [f"{d.rstrip('/')}/{n}" for d in dirs for n in names]))


def migrate_tls_dir(host) -> tuple[str | None, str]:
    """The directory libvirt on host takes the migration certificates from, and why (None: cannot tell).

    libvirt: migrate_tls_x509_cert_dir from qemu.conf; else /etc/pki/libvirt-migrate if it exists; else
    default_tls_x509_cert_dir; else /etc/pki/qemu."""
    if "host_files" in host.errors or f"file:{QEMU_CONF}" in host.errors:
        return None, host.errors.get("host_files") or host.errors.get(f"file:{QEMU_CONF}", "")
    conf = host.raw.files.get(QEMU_CONF)
    from migcheck.facts.procfs import parse_conf_value

    configured = parse_conf_value(conf or "", "migrate_tls_x509_cert_dir")
    if configured:
        return configured.rstrip("/") or "/", f"migrate_tls_x509_cert_dir = \"{configured}\" in {QEMU_CONF}"
    stat = host.raw.paths.get(MIGRATE_TLS_DIR)
    if stat is None:
        return None, f"{MIGRATE_TLS_DIR} not checked"
    if stat.exists:
        return MIGRATE_TLS_DIR, f"{MIGRATE_TLS_DIR} exists (libvirt prefers it for migration)"
    default = parse_conf_value(conf or "", "default_tls_x509_cert_dir")
    if default:
        return default.rstrip("/") or "/", f"default_tls_x509_cert_dir = \"{default}\" in {QEMU_CONF}"
    return TLS_DIR, "libvirt's default (no *_tls_x509_cert_dir in qemu.conf)"


def _target_verifies_clients(target) -> bool:
    from migcheck.facts.procfs import parse_conf_value

    conf = target.raw.files.get(QEMU_CONF) or ""
    value = parse_conf_value(conf, "migrate_tls_x509_verify")
    if value is None:
        value = parse_conf_value(conf, "default_tls_x509_verify")
    return value != "0"


@check("flags.tls-certificates", Severity.BLOCK, "--tls without the migration certificates on both hosts",
       proven_by_lab=True)
def tls_certificates(ctx: CheckContext):
    """The target QEMU (TLS server) needs ca-cert, server-cert and server-key; the source QEMU (client) needs
    ca-cert, and client-cert/client-key unless the target sets migrate_tls_x509_verify = 0. Files are looked
    for in the directory each host's libvirt uses (see migrate_tls_dir). Proven in the lab: without them
    QEMU fails with "Unable to access credentials /etc/pki/qemu/ca-cert.pem: No such file or directory";
    with them in a migrate_tls_x509_cert_dir of qemu.conf, --tls migrates."""
    if not ctx.flags.tls:
        raise NotApplicable
    out = []
    client_names = TLS_CLIENT_NAMES if _target_verifies_clients(ctx.target) else ("ca-cert.pem",)
    for host, names in ((ctx.source, client_names), (ctx.target, TLS_SERVER_NAMES)):
        directory, why = migrate_tls_dir(host)
        if directory is None:
            out.append(Hit(message=f"could not tell where {host.spec} keeps its migration TLS certificates",
                           evidence=[why], fix="allow SSH access", severity=Severity.UNKNOWN))
            continue
        for name in names:
            path = f"{directory}/{name}"
            stat = host.raw.paths.get(path)
            if stat is None:
                out.append(Hit(message=f"could not check {path} on {host.spec}", evidence=[why],
                               fix="allow SSH access", severity=Severity.UNKNOWN))
            elif not stat.exists:
                out.append(Hit(message=f"--tls needs {path} on {host.spec}, and it is missing: QEMU fails with "
                                       f"'Unable to access credentials {path}: No such file or directory'",
                               evidence=[f"{host.spec}: {path} not found", f"certificate dir: {why}"],
                               fix="create the migration TLS certificates (see libvirt's 'Migration: TLS' docs), "
                                   "or point migrate_tls_x509_cert_dir in qemu.conf at them"))
    return out


@check("flags.qemu-feature", Severity.BLOCK, "a migration feature the flags need is missing in QEMU on either side")
def qemu_feature(ctx: CheckContext):
    """multifd (--parallel) needs QEMU >= 4.0, post-copy QEMU >= 2.6."""
    needs = []
    if ctx.flags.parallel:
        needs.append(("--parallel (multifd)", 4_000_000))
    if ctx.flags.postcopy:
        needs.append(("--postcopy", 2_006_000))
    if not needs:
        raise NotApplicable
    out = []
    for host in (ctx.source, ctx.target):
        ver = ctx.need(host.qemu_version, "qemu_version", host)
        for what, minimum in needs:
            if ver.number < minimum:
                out.append(Hit(message=f"{what} needs QEMU >= {minimum // 1_000_000}.{minimum // 1000 % 1000}; "
                                       f"{host.spec} runs {ver.text}: \"Migration option ... is not supported by "
                                       "QEMU binary\"",
                               evidence=[f"{host.spec}: QEMU {ver.text}"], fix=f"drop {what} or upgrade QEMU"))
    return out


def _machine_aliases(caps_xml: str | None) -> dict[str, str]:
    """alias -> canonical machine ('q35' -> 'pc-q35-7.2') from a host's capabilities XML."""
    from migcheck.xmlsafe import parse_xml

    if not caps_xml:
        return {}
    out = {}
    for m in parse_xml(caps_xml, "capabilities XML").iter("machine"):
        if m.get("canonical") and m.text:
            out[m.text.strip()] = m.get("canonical")
    return out


@check("flags.destination-xml", Severity.BLOCK,
       "--xml / --persistent-xml: a file that cannot be read or parsed, or an --xml whose ABI differs from the "
       "running guest's", proven_by_lab=True)
def destination_xml(ctx: CheckContext):
    """With --xml the target runs the given definition, not the source's: the other checks judge that one
    (bridges, networks, paths, pinning named there). libvirt's Begin phase parses it and refuses it unless its
    ABI equals the running guest's (virDomainDefCheckABIStability): 'Target domain vCPU count 2 does not match
    source 1', '... machine type ...'. --persistent-xml is parsed too and becomes the target's inactive
    definition. A file virsh cannot read fails the migration before anything moves."""
    from migcheck.destxml import abi_differences
    from migcheck.xmlsafe import parse_xml

    mx = ctx.migration_xml
    if mx is None:
        raise NotApplicable
    out = []
    for f in (mx.xml, mx.persistent):
        if f is not None and f.error:
            out.append(Hit(message=f"{f.flag} {f.path} cannot be used: {f.error}",
                           evidence=[f"{f.flag} {f.path}"],
                           fix=f"give {f.flag} a domain XML file readable here (virsh dumpxml --migratable VM, "
                               "then edit the host-side parts only)"))
    if mx.xml is not None and mx.xml.root is not None:
        rd = ctx.need(ctx.source.raw.domain, "domain_xml", ctx.source)
        live = ctx.need(rd.live_xml, "domain_xml", ctx.source)
        running = parse_xml(live, "live domain XML")
        try:
            aliases = _machine_aliases(ctx.source.raw.capabilities_xml)
        except ValueError:
            aliases = {}
        diffs = abi_differences(running, mx.xml.root, machine_aliases=aliases, dname=ctx.flags.dname)
        if diffs:
            out.append(Hit(message=f"the --xml definition does not keep the running guest's ABI: libvirt refuses it "
                                   f"with 'unsupported configuration: {diffs[0]}'",
                           evidence=[f"--xml {mx.xml.path}"] + diffs,
                           fix="change only what the target host provides (interface sources, disk paths, "
                               "listen addresses, pinning) in the --xml file; keep machine type, vCPUs, memory, "
                               "devices and MAC addresses as the running guest has them (start from virsh "
                               "dumpxml --migratable)"))
    return out
