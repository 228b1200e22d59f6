"""Checks of the migration flags: combinations libvirt refuses, TLS (forced, certificates), QEMU features
the flags need, and the --xml / --persistent-xml files."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check, condition
from migcheck.facts.hostfiles import QEMU_CONF, QemuConf
from migcheck.flags import rejected_combinations
from migcheck.probe.plan import SOURCE_PATHS, TARGET_PATHS, Question
from migcheck.report.model import Severity


@check("flags.rejected-combination", Severity.BLOCK, "libvirt rejects this combination of migration flags",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_migrate_disks_naming_an_unknown_disk_with_storage_copy_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_rejected_flag_combination_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_tunnelled_storage_copy_of_a_guest_with_a_disk_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_tls_with_certificates_and_forced_tls",
       ),
       explains={340: r"mutually exclusive|without using peer2peer flag|post-copy (migration )?is not supported with|"
                      r"offline migration must be specified with the persistent flag|tunnelled offline migration does not make|"
                      r"offline migration cannot handle non-shared storage|argument key 'host' must not have null value|"
                      r"disk target .* not found"})
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


@check("flags.tls-required", Severity.BLOCK, "the target's libvirt forces TLS migration and --tls is missing",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_tls_with_certificates_and_forced_tls",
       ),
       explains={320: r"VIR_MIGRATE_TLS"},
       reads=("qemu_conf",))
def tls_required(ctx: CheckContext):
    if ctx.flags.tls or ctx.flags.offline or ctx.flags.tunnelled:
        return []  # libvirt exempts tunnelled migration (proven in the lab: --p2p --tunnelled migrates)
    out = []
    for host in (ctx.source, ctx.target):
        conf = host.qemu_conf
        if conf is not None and conf.value("migrate_tls_force") == "1":
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
    conf = host.qemu_conf
    if conf is None:
        return None, host.errors.get("host_files") or host.errors.get(f"file:{QEMU_CONF}", "")
    configured = conf.value("migrate_tls_x509_cert_dir")
    if configured:
        return configured.rstrip("/") or "/", f"migrate_tls_x509_cert_dir = \"{configured}\" in {QEMU_CONF}"
    stat = host.paths.get(MIGRATE_TLS_DIR)
    if stat is None:
        return None, f"{MIGRATE_TLS_DIR} not checked"
    if stat.exists:
        return MIGRATE_TLS_DIR, f"{MIGRATE_TLS_DIR} exists (libvirt prefers it for migration)"
    default = conf.value("default_tls_x509_cert_dir")
    if default:
        return default.rstrip("/") or "/", f"default_tls_x509_cert_dir = \"{default}\" in {QEMU_CONF}"
    return TLS_DIR, "libvirt's default (no *_tls_x509_cert_dir in qemu.conf)"


def _target_verifies_clients(target) -> bool:
    conf = target.qemu_conf or QemuConf()
    value = conf.value("migrate_tls_x509_verify")
    if value is None:
        value = conf.value("default_tls_x509_verify")
    return value != "0"


@condition("tls")
def _tls(dom, flags, target=None) -> bool:
    return flags.tls


@check("flags.tls-certificates", Severity.BLOCK, "--tls without the migration certificates on both hosts",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_tls_without_certificates_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_tls_with_certificates_and_forced_tls",
       ),
       explains={330: r"Unable to access credentials"},
       asks=(Question(TARGET_PATHS, lambda dom, host: tls_paths(host.qemu_conf, "target")),
             Question(SOURCE_PATHS, lambda dom, host: tls_paths(host.qemu_conf, "source"))),
       reads=("paths?tls", "qemu_conf?tls"))
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
            stat = host.paths.get(path)
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


@check("flags.qemu-feature", Severity.BLOCK, "a migration feature the flags need is missing in QEMU on either side",
       reads=("qemu_version",))
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


@check("flags.destination-xml", Severity.BLOCK,
       "--xml / --persistent-xml: a file that cannot be read or parsed, or an --xml whose ABI differs from the "
       "running guest's", proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_xml_naming_the_targets_bridge_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_xml_changing_the_abi_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_xml_file_missing_is_blocked_and_fails",
       ),
       explains={230: r"Target .* does not match source|Failed to open file '|XML error|\(domain_definition\):\d+:"})
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
        live = ctx.need(ctx.guest.live_xml, "domain_xml", ctx.source)
        running = parse_xml(live, "live domain XML")
        aliases = ctx.source.caps.machine_aliases if ctx.source.caps is not None else {}
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
