"""Platform checks: same host, versions, machine type, emulator, arch, guest state, name collisions."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check
from migcheck.probe.plan import TARGET_PATHS, Question
from migcheck.report.model import Severity

# libvirt.VIR_DOMAIN_* states
_STATE_NAMES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down",
                5: "shut off", 6: "crashed", 7: "pm-suspended"}
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_PAUSED_IOERROR = 5


@check("platform.same-host", Severity.BLOCK, "source and target are the same host (equal host UUIDs)",
       explains={50: r"Attempt to migrate guest to the same host"},
       reads=("caps", "caps.uuid~source"))
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
       "the target's hostname resolves to localhost", proven_by=(
           "tests/lab/test_catalogue_migration_address.py::test_target_hostname_localhost",
           "tests/lab/test_catalogue_migration_address.py::test_migration_host_address_works_although_the_hostname_does_not_resolve",
       ),
       explains={60: r"resolved to localhost"},
       reads=("hostname~localhost", "qemu_conf"))
def target_hostname_localhost(ctx: CheckContext):
    """Without --migrateuri libvirt builds the incoming URI from the target's hostname (qemuMigrationDstPrepare:
    a hostname starting with 'localhost' is refused), unless the target's qemu.conf sets migration_host.
    Tunnelled migration carries the data over the libvirt connection and needs no incoming URI.
    Proven in the lab (libvirt 9.0): a target whose hostname is 'localhost.lab' fails with "internal error:
    hostname on destination resolved to localhost, but migration requires an FQDN"; with --migrateuri
    tcp://ADDRESS it migrates."""
    if ctx.flags.migrateuri or ctx.flags.offline or ctx.flags.tunnelled:
        raise NotApplicable
    name = ctx.need(ctx.target.hostname, "hostname", ctx.target)
    conf = ctx.target.qemu_conf
    if conf is not None and conf.value("migration_host"):
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
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_shut_off_guest_live_is_blocked_and_fails",
       ),
       explains={80: r"domain is not running"})
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


@check("platform.paused-on-io-error", Severity.BLOCK, "the guest is paused on an I/O error", also=(Severity.WARN,),
       explains={90: r"cannot migrate domain with I/O error"})
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
       "the target cannot run the guest's architecture or virt type",
       reads=("caps",))
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


@check("platform.emulator-missing", Severity.BLOCK, "the guest's <emulator> binary is missing on the target",
       asks=(Question(TARGET_PATHS, lambda dom, host: [dom.emulator]),),
       reads=("caps", "paths"))
def emulator_missing(ctx: CheckContext):
    dom, caps, arch_guests = _target_emulator_guest(ctx)
    if not dom.emulator:
        raise NotApplicable
    stat = ctx.target.paths.get(dom.emulator)
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
       proven_by=(
           "tests/lab/test_version_skew.py::test_newest_machine_type_new_to_old_is_blocked_and_fails",
           "tests/lab/test_version_skew.py::test_machine_type_newer_qemu_dropped_is_blocked_old_to_new",
       ),
       explains={40: r"does not support machine type|unsupported machine type"},
       reads=("caps", "qemu_version"))
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
       proven_by=(
           "tests/lab/test_version_skew.py::test_old_machine_type_old_to_new_is_ok_and_migrates",
           "tests/lab/test_version_skew.py::test_newest_machine_type_new_to_old_is_blocked_and_fails",
           "tests/lab/test_version_skew.py::test_old_newest_machine_type_new_to_old_is_ok_with_warning_and_migrates",
           "tests/lab/test_version_skew.py::test_machine_type_newer_qemu_dropped_is_blocked_old_to_new",
           "tests/lab/test_version_skew.py::test_named_model_both_know_migrates_both_ways",
           "tests/lab/test_version_skew.py::test_host_passthrough_new_to_old_loses_features_but_migrates",
       ),
       reads=("libvirt_version", "qemu_version"))
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
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_same_name_other_uuid_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_same_name_other_uuid_with_dname_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_same_uuid_other_name_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_same_guest_running_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_same_guest_defined_on_target_migrates_and_keeps_the_targets_definition",
           "tests/lab/test_catalogue_network_state.py::test_same_guest_defined_on_target_with_persistent_replaces_the_definition",
       ), also=(Severity.WARN,),
       explains={440: r"already exists with uuid|is already active|already defined with uuid"},
       reads=("peers~guest",))
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
    for peer in ctx.target.peers:
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


LOCK_MANAGER_DEFAULT = "nop"  # qemu.conf lock_manager unset: libvirt's "nop" plugin
SANLOCK = "sanlock"  # the lock manager that carries state in the migration cookie


def _lock_manager(ctx: CheckContext, host) -> str:
    return ctx.qemu_conf(host).value("lock_manager") or LOCK_MANAGER_DEFAULT


@check("platform.lock-manager", Severity.BLOCK,
       "sanlock on one host and another lock manager on the other (qemu.conf lock_manager)", also=(Severity.RISK,),
       explains={445: r"Source host lock driver \S+ different from target|Missing \S+ lock state for migration cookie"},
       reads=("qemu_conf",))
def lock_manager(ctx: CheckContext):
    """The source's migration cookie carries its lock state and lock manager's name when it holds state; the
    target's Prepare refuses a name that is not its own, and a manager that needs state (sanlock) refuses a
    cookie without it (qemuMigrationCookieXMLParse). nop and lockd send no state (lab, libvirt 9.0: lockd to
    nop and nop to lockd migrate, live and offline), so only sanlock on one side fails."""
    src, dst = _lock_manager(ctx, ctx.source), _lock_manager(ctx, ctx.target)
    if src == dst or SANLOCK not in (src, dst):
        return []
    evidence = [f"{ctx.source.spec}: qemu.conf lock_manager = {src}{' (unset)' if src == LOCK_MANAGER_DEFAULT else ''}",
                f"{ctx.target.spec}: qemu.conf lock_manager = {dst}{' (unset)' if dst == LOCK_MANAGER_DEFAULT else ''}"]
    fix = ("use sanlock on every host guests move between (or on none), restart libvirtd there, or choose a target "
           "with the source's lock manager")
    if dst == SANLOCK:
        return [Hit(message=f"the target's libvirt locks disks with sanlock, which needs the source's lock state, and "
                            f"the source's ({src}) sends none: the target refuses with 'Missing sanlock lock state "
                            "for migration cookie'", evidence=evidence, fix=fix)]
    return [Hit(message=f"the source's libvirt holds the guest's disk leases with sanlock, the target's uses {dst}: "
                        f"a guest with leases is refused with 'Source host lock driver sanlock different from target "
                        f"{dst}'", evidence=evidence, fix=fix, severity=Severity.RISK)]
