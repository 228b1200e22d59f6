"""Host-local paths: files and directories the guest's XML names, which must exist on the target too."""

from __future__ import annotations

import posixpath

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check, condition, path_not_checked
from migcheck.facts.hostfiles import PROC_NET_UNIX, QemuConf
from migcheck.facts.models import CharDev, Domain
from migcheck.probe.plan import SOURCE_PATHS, TARGET_PATHS, Question
from migcheck.report.model import Severity

CHANNEL_TARGET_DIR = "/var/lib/libvirt/qemu/channel/target"  # qemu.conf channel_target_dir default


@condition("unix-connect")
def _unix_connect(dom, flags, target=None) -> bool:
    """A unix chardev QEMU connects to (paths.chardev-directory asks whether something listens there)."""
    return not flags.offline and any(c.type == "unix" and c.mode != "bind" for c in dom.chardevs)


def chardev_needs(dom: Domain, channel_target_dir: str = CHANNEL_TARGET_DIR) -> list[tuple[CharDev, str, str]]:
    """(chardev, how, path that must exist on the target) for each file/unix chardev; how is
    'file', 'bind' or 'connect'.

    file, and unix mode='bind': QEMU creates the file or socket, so its directory must exist.
    unix mode='connect': QEMU connects to a socket someone else created, so the socket itself must exist.
    A virtio channel whose socket libvirt generated under channel_target_dir (the guest agent's
    ``domain-ID-NAME/org.qemu.guest_agent.0``) is left out: libvirt drops that path from the
    migratable XML and generates a new one on the target.
    """
    out, seen = [], set()
    auto_prefix = channel_target_dir.rstrip("/") + "/"
    for c in dom.chardevs:
        if c.type not in ("file", "unix") or not c.path or (c.type, c.path) in seen:
            continue  # <console> often repeats the first <serial>
        seen.add((c.type, c.path))
        if c.kind == "channel" and c.type == "unix" and c.path.startswith(auto_prefix):
            continue
        if c.type == "unix" and c.mode != "bind":
            out.append((c, "connect", c.path))
        else:
            out.append((c, "file" if c.type == "file" else "bind", posixpath.dirname(c.path)))
    return out


def chardev_dirs(dom: Domain, channel_target_dir: str = CHANNEL_TARGET_DIR) -> list[tuple[str, str]]:
    """(what, path) for each path the chardevs need on the target (see chardev_needs)."""
    return [(f"{c.kind} ({c.type}{', connect' if how == 'connect' else ''}) {c.path}", path)
            for c, how, path in chardev_needs(dom, channel_target_dir)]


def boot_files(dom: Domain) -> list[tuple[str, str]]:
    return [(what, p) for what, p in (("kernel", dom.kernel), ("initrd", dom.initrd), ("loader", dom.loader)) if p]


_CHARDEV_ERRORS = {
    "file": "Unable to open file: {path}: No such file or directory",
    "bind": "Unable to bind to UNIX socket path '{path}': No such file or directory",
    "connect": "unable to stat: {path}: No such file or directory",
}


@check("paths.chardev-directory", Severity.BLOCK, "a serial/console/channel file or socket directory missing on the target",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_serial_file_in_a_directory_only_on_the_source_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_unix_bind_socket_in_a_directory_only_on_the_source_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_guest_agent_channel_with_generated_socket_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_unix_connect_socket_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_unix_connect_to_a_stale_socket_on_target_is_blocked_and_fails",
       ),
       explains={390: r"Unable to open file: .*No such file|Unable to bind to UNIX socket path|unable to stat: .*No such file|"
                      r"Failed to connect to '"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [p for _, p in chardev_dirs(dom)]),),
       reads=("paths", "unix_sockets?unix-connect"))
def chardev_directory(ctx: CheckContext):
    """file and unix chardevs are opened by the target's libvirt/QEMU when the incoming guest starts.

    Proven in the lab (libvirt 9.0, QEMU 7.2), each failing the migration on the target:
    file in a missing directory: 'Unable to open file: PATH: No such file or directory';
    unix mode='bind' in a missing directory: "Unable to bind to UNIX socket path 'PATH': No such file
    or directory"; unix mode='connect' to a missing socket: 'unable to stat: PATH: No such file or
    directory' (with <reconnect> too); to a socket nobody listens on (a stale socket file):
    "Failed to connect to 'PATH': Connection refused" (with <reconnect enabled='yes'> it migrates).
    The guest agent's generated socket (under channel_target_dir) is regenerated on the target: no
    finding.
    """
    if ctx.flags.offline:
        raise NotApplicable
    conf = ctx.source.qemu_conf or QemuConf()
    channel_dir = conf.value("channel_target_dir") or CHANNEL_TARGET_DIR
    items = chardev_needs(ctx.domain, channel_dir)
    if not items:
        raise NotApplicable
    out = []
    for c, how, path in items:
        what = f"{c.kind} ({c.type}{', connect' if how == 'connect' else ''}) {c.path}"
        stat = ctx.target.paths.get(path)
        if stat is None:
            out.append(path_not_checked(ctx, f"could not check {path} on the target"))
        elif not stat.exists:
            out.append(Hit(message=f"{what}: {path} does not exist on the target: the target fails with "
                                   f"\"{_CHARDEV_ERRORS[how].format(path=c.path)}\"",
                           evidence=[f"{ctx.target.spec}: {path} not found"],
                           fix=(f"start the service that creates the socket {path} on the target first"
                                if how == "connect" else
                                f"create {path} on the target (mkdir -p), with the same owner and SELinux/"
                                "AppArmor labels as on the source")))
        elif how == "connect" and not c.reconnect:
            out.extend(_listener_hits(ctx, what, path))
    return out


def _listener_hits(ctx: CheckContext, what: str, path: str) -> list[Hit]:
    sockets = ctx.target.unix_sockets
    if sockets is None:
        return [Hit(message=f"{what}: could not tell whether anything listens on {path} on the target",
                    evidence=[f"{ctx.target.spec}: {PROC_NET_UNIX} not read"], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    if path in sockets.listening:
        return []
    truncated = sockets.truncated
    return [Hit(message=f"{what}: {path} exists on the target but nothing listens on it: the target fails with "
                        f"\"Failed to connect to '{path}': Connection refused\"",
                evidence=[f"{ctx.target.spec}: {path} is not a listening socket in {PROC_NET_UNIX}"],
                fix=f"start the service that listens on {path} on the target, or give the channel "
                    "<reconnect enabled='yes' timeout='5'/> so QEMU starts without it",
                severity=Severity.RISK if truncated else None)]


def _source_size(ctx: CheckContext, path: str) -> int | None:
    st = ctx.source.paths.get(path)
    return st.size if st is not None and st.exists and not st.is_dir else None


# When the target's QEMU refuses a flash of another size, virsh shows its text, or (the race lost) only the
# source's broken stream: both seen in the lab for the same scenario.
LENGTH_MISMATCH = "job 'migration out' failed: Unable to write to socket: ..."


def _size_mismatch(flash: int, src: int, dst: int) -> str:
    return (f"the target's QEMU fails with \"Size mismatch: system.flash{flash}: {src:#x} != {dst:#x}: Invalid "
            f"argument\" (or virsh says only \"{LENGTH_MISMATCH}\")")


@check("paths.boot-files", Severity.BLOCK, "kernel, initrd or firmware loader missing on the target, or a loader "
       "of another size", proven_by=(
           "tests/lab/test_catalogue_uefi_tpm.py::test_loader_missing_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_uefi_tpm.py::test_loader_of_another_build_on_the_target",
           "tests/lab/test_catalogue_uefi_tpm.py::test_uefi_onto_a_target_without_ovmf_is_blocked_and_fails",
       ),
       explains={350: r"libvirt-pflash\d-\w+.*Could not open '|Size mismatch: system\.flash0"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [p for _, p in boot_files(dom)]),
             Question(SOURCE_PATHS, lambda dom, host: [dom.loader])),
       reads=("paths",))
def boot_files_missing(ctx: CheckContext):
    """The target's QEMU opens <kernel>, <initrd> and the <loader> when the incoming guest starts.

    Lab (libvirt 9.0, QEMU 7.2): the loader missing on the target fails with "-blockdev
    {...libvirt-pflash0-storage...}: Could not open 'PATH': No such file or directory"; a loader of another
    size (OVMF_CODE.fd, 2 MiB, where the source has OVMF_CODE_4M.fd) starts, then refuses the flash's RAM
    block: "Size mismatch: system.flash0: 0x37c000 != 0x1e0000: Invalid argument" (or, in another run,
    only "operation failed: job 'migration out' failed: Unable to write to socket: Bad file descriptor" or
    "...: Connection reset by peer"); a loader of the same size with other content migrates (the guest runs the
    source's firmware, which travels in memory, until it reboots). <os firmware='efi'>: libvirt 9.0 has
    written the loader it chose into the live XML, and the target does not choose again."""
    if ctx.flags.offline:
        raise NotApplicable
    items = boot_files(ctx.domain)
    if not items:
        raise NotApplicable
    out = []
    for what, path in items:
        stat = ctx.target.paths.get(path)
        if stat is None:
            out.append(path_not_checked(ctx, f"could not check {path} on the target"))
        elif not stat.exists:
            quoted = f": the target's QEMU fails with \"Could not open '{path}': No such file or directory\"" \
                if what == "loader" else ""
            out.append(Hit(message=f"{what}: {path} does not exist on the target{quoted}",
                           evidence=[f"{ctx.target.spec}: {path} not found"],
                           fix=f"copy {path} to the target (same path), or install the same firmware package there"))
        elif what == "loader" and ctx.domain.loader_type == "pflash":
            mine = _source_size(ctx, path)
            if mine is not None and stat.size is not None and mine != stat.size:
                out.append(Hit(message=f"loader {path} is {stat.size} bytes on the target and {mine} on the source: "
                                       + _size_mismatch(0, mine, stat.size),
                               evidence=[f"{ctx.source.spec}: {path} {mine} bytes", f"{ctx.target.spec}: {stat.size} bytes"],
                               fix="install the same firmware build on the target (same package version), or put "
                                   "the source's file at that path there"))
    return out


@check("paths.nvram", Severity.BLOCK, "the guest's UEFI variable store: missing on the target with no template "
       "to create it from, or of another size", proven_by=(
           "tests/lab/test_catalogue_uefi_tpm.py::test_nvram_missing_on_the_target_is_ok_and_the_guests_variables_arrive",
           "tests/lab/test_catalogue_uefi_tpm.py::test_nvram_and_its_template_missing_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_uefi_tpm.py::test_nvram_present_on_the_target_without_the_template_is_ok_and_migrates",
           "tests/lab/test_catalogue_uefi_tpm.py::test_nvram_of_another_size_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_uefi_tpm.py::test_uefi_onto_a_target_without_ovmf_is_blocked_and_fails",
       ), also=(Severity.RISK,),
       explains={360: r"Size mismatch: system\.flash1|Failed to open file '.*': No such file or directory"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [dom.nvram, dom.nvram_template]),
             Question(SOURCE_PATHS, lambda dom, host: [dom.nvram])),
       reads=("paths",))
def nvram(ctx: CheckContext):
    """The variables travel in the migration stream: QEMU migrates the NVRAM flash's contents.

    Lab (libvirt 9.0, QEMU 7.2): NVRAM missing on the target, template there: libvirt creates the file from
    the template, the guest migrates, and the file holds the source's variables once the guest runs on
    the target (a paused guest writes them when resumed): no finding beyond info. Template missing too:
    "Failed to open file 'TEMPLATE': No such file or directory" (so also a secure-boot guest whose OVMF
    package is missing on the target). A target NVRAM of another size (a 2 MiB-build store for a 4 MiB
    build): refused the same way ("Size mismatch: system.flash1: ..." or the broken stream)."""
    if ctx.flags.offline or not ctx.domain.nvram:
        raise NotApplicable
    path, template = ctx.domain.nvram, ctx.domain.nvram_template
    stat = ctx.target.paths.get(path)
    if stat is None:
        return [Hit(message=f"could not check {path} on the target", evidence=[], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    if stat.exists:
        mine = _source_size(ctx, path)
        if mine is not None and stat.size is not None and mine != stat.size:
            return [Hit(message=f"NVRAM {path} is {stat.size} bytes on the target and {mine} on the source: "
                                + _size_mismatch(1, mine, stat.size),
                        evidence=[f"{ctx.source.spec}: {path} {mine} bytes", f"{ctx.target.spec}: {stat.size} bytes"],
                        fix=f"remove the stale {path} on the target (libvirt creates it from the template), or copy "
                            "the source's file there")]
        return []
    if not template:
        return [Hit(message=f"NVRAM {path} does not exist on the target and the guest's XML names no template: the "
                            "target's libvirt must find one for the loader in its firmware descriptors",
                    evidence=[f"{ctx.target.spec}: {path} not found", "<nvram> without template="],
                    fix=f"copy {path} to the target before migrating", severity=Severity.RISK)]
    tstat = ctx.target.paths.get(template)
    if tstat is None:
        return [Hit(message=f"could not check the NVRAM template {template} on the target", evidence=[],
                    fix="allow SSH access to the target", severity=Severity.UNKNOWN)]
    if not tstat.exists:
        return [Hit(message=f"NVRAM {path} and its template {template} do not exist on the target: libvirt fails with "
                            f"\"Failed to open file '{template}': No such file or directory\"",
                    evidence=[f"{ctx.target.spec}: {path} not found", f"{ctx.target.spec}: {template} not found"],
                    fix=f"install the same firmware package on the target (it ships {template}), or copy {path} there")]
    return [Hit(message=f"NVRAM {path} does not exist on the target: libvirt creates it from {template}, and QEMU "
                        "writes the guest's variables from the migration stream into it once the guest runs there",
                evidence=[f"{ctx.target.spec}: {path} not found", f"{ctx.target.spec}: {template} present"],
                fix="nothing to do", severity=Severity.INFO)]


LOCAL_ADDRS = {"0.0.0.0", "::", "127.0.0.1", "::1", "localhost", None, ""}
_WILDCARDS = {"0.0.0.0", "::", None, ""}


@condition("graphics-listen")
def _graphics_bound(dom, flags, target=None) -> bool:
    """VNC/SPICE on an address of its own, or on fixed ports: what paths.graphics-listen judges by the target's
    addresses and listening ports."""
    return not flags.offline and any(
        g.type in ("vnc", "spice") and ((g.listen not in LOCAL_ADDRS and not g.listen_network) or g.fixed_ports)
        for g in dom.graphics)


@condition("tcp-bind")
def _tcp_bind(dom, flags, target=None) -> bool:
    return not flags.offline and any(c.type == "tcp" and c.mode == "bind" for c in dom.chardevs)


@check("paths.graphics-listen", Severity.BLOCK,
       "a VNC/SPICE listen address the target does not have, or a fixed port already taken there",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_vnc_on_the_sources_own_address_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_vnc_listening_on_a_network_with_another_address_on_the_target_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_vnc_listening_on_a_network_missing_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_vnc_on_a_fixed_port_taken_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_vnc_on_an_address_both_hosts_have_is_ok_and_migrates",
       ), also=(Severity.RISK,),
       explains={410: r"Failed to bind socket: Cannot assign requested address|Failed to find an available port|"
                      r"no network with matching name"},
       reads=("addresses?graphics-listen", "networks", "tcp_listeners?graphics-listen"))
def graphics_listen(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0, QEMU 7.2): VNC listening on the source's own address fails on the
    target with "qemu-system-x86_64: -vnc ADDR:0,...: Failed to bind socket: Cannot assign requested
    address"; an address both hosts have migrates. A fixed port (autoport='no') something on the target
    already listens on fails with "Failed to find an available port: Address already in use"."""
    if ctx.flags.offline:
        raise NotApplicable
    graphics = [g for g in ctx.domain.graphics if g.type in ("vnc", "spice")]
    # <listen type='network'>: the live XML shows the address it resolved to here; the target resolves the
    # network again (lab: a network named the same with another address there migrates)
    items = [g for g in graphics if g.listen not in LOCAL_ADDRS and not g.listen_network]
    fixed = [g for g in graphics if g.fixed_ports]
    by_network = [g for g in graphics if g.listen_network]
    if not items and not fixed and not by_network:
        raise NotApplicable
    out = _listen_networks(ctx, by_network)
    if not items and not fixed:
        return out
    addresses, listening = ctx.target.addresses, ctx.target.tcp_listeners
    if addresses is None or (fixed and listening is None):
        return out + [Hit(message="could not read the target's addresses and listening ports", evidence=[],
                          fix="allow SSH access to the target", severity=Severity.UNKNOWN)]
    for g in items:
        if g.listen in addresses.ipv4 or addresses.has_ipv6(g.listen or ""):
            continue
        out.append(Hit(message=f"{g.type} listens on {g.listen}, an address the target does not have: the target's "
                               "QEMU fails with 'Failed to bind socket: Cannot assign requested address'",
                       evidence=[f"<graphics type='{g.type}' listen='{g.listen}'>"],
                       fix="listen on 0.0.0.0 or a libvirt <listen type='network'>, or migrate with --xml giving the "
                           "target's address"))
    if fixed:
        for g in fixed:
            host = "127.0.0.1" if g.listen == "localhost" else g.listen
            for port in g.fixed_ports:
                taken = _taken(listening, host, port)
                if taken:
                    out.append(Hit(message=f"{g.type} uses the fixed port {port}, which a process on the target "
                                           f"already listens on ({', '.join(taken)}): the target's QEMU fails with "
                                           "'... Address already in use'",
                                   evidence=[f"<graphics type='{g.type}' port='{port}' autoport='no'>",
                                             f"{ctx.target.spec}: listening on "
                                             + ", ".join(f"{a}:{port}" for a in taken)],
                                   fix="use autoport='yes' (libvirt picks a free port on each host), or a port free on "
                                       "the target"))
    return out


@check("paths.chardev-tcp-bind", Severity.BLOCK,
       "a TCP serial/console/channel in bind mode: its address is not the target's, or its port is taken there",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_tcp_serial_bound_to_the_sources_own_address_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_tcp_serial_whose_port_is_taken_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_tcp_serial_on_a_free_port_is_ok_and_migrates",
       ), also=(Severity.RISK,),
       explains={430: r"Failed to bind socket|Address already in use"},
       reads=("addresses?tcp-bind", "tcp_listeners?tcp-bind"))
def chardev_tcp_bind(ctx: CheckContext):
    """QEMU on the target binds each `<serial type='tcp'><source mode='bind' host= service=>` when it starts.

    Proven in the lab (libvirt 9.0, QEMU 7.2): the source's own address fails with "-chardev socket,...:
    Failed to bind socket: Cannot assign requested address"; 0.0.0.0 with a port something on the target
    already listens on fails with "Failed to find an available port: Address already in use"; 0.0.0.0 with
    a free port migrates."""
    if ctx.flags.offline:
        raise NotApplicable
    items = [c for c in ctx.domain.chardevs if c.type == "tcp" and c.mode == "bind"]
    if not items:
        raise NotApplicable
    addresses, listening = ctx.target.addresses, ctx.target.tcp_listeners
    if addresses is None or listening is None:
        return [Hit(message="could not read the target's addresses and listening ports", evidence=[],
                    fix="allow SSH access to the target", severity=Severity.UNKNOWN)]
    local = addresses.ipv4 | {"127.0.0.1"}
    out = []
    for c in items:
        tag = f"<{c.kind} type='tcp'><source mode='bind' host='{c.host or ''}' service='{c.service or ''}'/>"
        host = "127.0.0.1" if c.host == "localhost" else c.host
        if host not in _WILDCARDS and host not in local and not addresses.has_ipv6(host or ""):
            if _is_address(host):
                out.append(Hit(message=f"{c.kind} listens on {c.host}:{c.service}, an address the target does not have: "
                                       "the target's QEMU fails with 'Failed to bind socket: Cannot assign requested "
                                       "address'",
                               evidence=[tag], fix="bind to 0.0.0.0, or to an address both hosts have"))
            continue  # a host name: resolved by the target's QEMU, not judged here
        port = int(c.service) if c.service and c.service.isdigit() else None
        if port is None:
            continue
        taken = _taken(listening, host, port)
        if taken:
            out.append(Hit(message=f"{c.kind} listens on port {port}, which a process on the target already listens on "
                                   f"({', '.join(taken)}): the target's QEMU fails with '... Address already in use'",
                           evidence=[tag, f"{ctx.target.spec}: listening on " + ", ".join(f"{a}:{port}" for a in taken)],
                           fix="give the guest a port that is free on the target (another guest there may use the "
                               "same one), or free that port"))
    return out


def _listen_networks(ctx: CheckContext, graphics: list) -> list[Hit]:
    """A graphics listen on a libvirt network needs that network, active, on the target."""
    if not graphics:
        return []
    networks = ctx.target.networks
    if networks is None:
        return [Hit(message="could not list the target's libvirt networks", evidence=[ctx.target.errors.get("networks", "")],
                    fix="check the target's libvirt", severity=Severity.UNKNOWN)]
    out = []
    for g in graphics:
        net = next((n for n in networks if n.name == g.listen_network), None)
        if net is not None and net.active:
            continue
        what = ("is not active on the target" if net is not None else "does not exist on the target: \"Network "
                f"not found: no network with matching name '{g.listen_network}'\"")
        out.append(Hit(message=f"{g.type} listens on the libvirt network '{g.listen_network}', which {what}",
                       evidence=[f"<listen type='network' network='{g.listen_network}'>",
                                 f"{ctx.target.spec}: networks " + (", ".join(n.name for n in networks) or "none")],
                       fix=f"define and start the network '{g.listen_network}' on the target (virsh net-define, "
                           "net-start), or listen on 0.0.0.0"))
    return out


def _taken(listening: set[tuple[str, int]], host: str | None, port: int) -> list[str]:
    """The addresses on which something listens on port and would stop a bind of host:port (wildcards clash)."""
    return sorted(a for a, p in listening if p == port and (host in _WILDCARDS or a in _WILDCARDS or a == host))


def _is_address(text: str | None) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True
