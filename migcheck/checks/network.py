"""Network checks: what the guest's interfaces need on the target."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check, condition, path_not_checked
from migcheck.probe.plan import TARGET_PATHS, Question
from migcheck.report.model import Severity


def netdev_path(name: str) -> str:
    return f"/sys/class/net/{name}"


MACVTAP_MODES = ("bridge", "private", "vepa", "passthrough")


def _handed_out(net) -> tuple[str | None, list[str]]:
    """What a target network plugs a guest into: a host bridge of its own naming (forward mode 'bridge' with
    <bridge name>), or one of its NICs as a macvtap lower device (forward mode bridge/private/vepa/passthrough
    with <interface dev>). libvirt creates the bridge of a nat/route/isolated network itself when it starts it."""
    if net is None or not net.active or net.forward_mode not in MACVTAP_MODES:
        return None, []
    if net.forward_mode == "bridge" and net.bridge:
        return net.bridge, []
    return None, list(net.forward_devs)


def network_host_devices(dom, networks) -> list[str]:
    """Host network devices of the target that its networks would give this guest's interfaces."""
    by_name = {n.name: n for n in networks}
    out: list[str] = []
    for i in dom.interfaces:
        if i.type == "network" and i.network:
            bridge, devs = _handed_out(by_name.get(i.network))
            out += ([bridge] if bridge else []) + devs
    return list(dict.fromkeys(out))


def _live_only(ctx: CheckContext) -> None:
    if ctx.flags.offline:
        raise NotApplicable  # the target only stores the XML; the guest starts later


def _netdev_hits(ctx: CheckContext, ifaces, attr: str, what: str, fix: str, exact_error: str):
    out = []
    for i in ifaces:
        name = getattr(i, attr)
        if not name:
            continue
        stat = ctx.target.paths.get(netdev_path(name))
        if stat is None:
            out.append(path_not_checked(ctx, f"could not check {what} '{name}' on the target"))
        elif not stat.exists:
            out.append(Hit(message=f"{what} '{name}' does not exist on the target: {exact_error.format(name=name)}",
                           evidence=[f"interface {i.mac or ''} type={i.type} {attr}={name}",
                                     f"{ctx.target.spec}: no {netdev_path(name)}"],
                           fix=fix.format(name=name)))
    return out


@check("network.bridge-missing", Severity.BLOCK, "the guest's bridge does not exist on the target", proven_by=(
           "tests/lab/test_audit.py::test_audit_matrix_equals_every_pair",
           "tests/lab/test_audit.py::test_second_run_shows_what_changed",
           "tests/lab/test_catalogue_network_state.py::test_bridge_on_both_hosts_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_bridge_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_xml_naming_the_targets_bridge_is_ok_and_migrates",
           "tests/lab/test_catalogue_network_state.py::test_xml_still_naming_the_missing_bridge_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_xml_changing_the_abi_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_bridge_network_with_another_bridge_on_target_is_ok_and_migrates",
           "tests/lab/test_fleet.py::test_fleet_matrix_equals_every_pair",
       ),
       explains={250: r"Cannot get interface MTU"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [netdev_path(i.bridge) for i in dom.interfaces
                                                      if i.type == "bridge" and i.bridge]),),
       reads=("paths",))
def bridge_missing(ctx: CheckContext):
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.type == "bridge"]
    return _netdev_hits(ctx, ifaces, "bridge", "bridge",
                        "create bridge {name} on the target (same name, same L2 network) before migrating",
                        "libvirt fails with \"Cannot get interface MTU on '{name}': No such device\"")


@check("network.direct-device-missing", Severity.BLOCK, "a macvtap (type='direct') source device missing on the target",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_macvtap_device_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_macvtap_network_with_another_nic_on_target_is_ok_and_migrates",
       ),
       explains={270: r"Unable to get index for interface"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [netdev_path(i.dev) for i in dom.interfaces
                                                      if i.type == "direct" and i.dev]),),
       reads=("paths",))
def direct_device_missing(ctx: CheckContext):
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.type == "direct"]
    return _netdev_hits(ctx, ifaces, "dev", "macvtap source device",
                        "use the same NIC name on the target (udev/systemd-networkd link rename), or a libvirt "
                        "network of forward mode 'bridge'/'passthrough' named the same on both hosts",
                        "the target cannot create the macvtap: 'Unable to get index for interface {name}: "
                        "No such device'")


@check("network.libvirt-network", Severity.BLOCK,
       "a libvirt network missing or inactive on the target, or the bridge or NIC it hands out missing there",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_network_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_network_inactive_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_portgroup_missing_on_target_migrates_with_a_warning",
           "tests/lab/test_catalogue_network_state.py::test_bridge_network_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_bridge_network_inactive_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_bridge_network_whose_bridge_is_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_macvtap_network_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_macvtap_network_whose_nic_is_missing_on_target_is_blocked_and_fails",
       ), also=(Severity.RISK, Severity.WARN),
       explains={260: r"Cannot get interface MTU",  # a target network's own bridge missing
                 280: r"Unable to get index for interface",  # a target network's own NIC missing
                 290: r"Network not found|network '.*' is not active"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [netdev_path(n) for n in
                                                      network_host_devices(dom, host.networks or [])]),),
       reads=("networks", "paths"))
def libvirt_network(ctx: CheckContext):
    """The target's libvirt plugs the incoming guest into its network of the same name.

    This holds also for a running guest whose live XML shows the network's bridge or NIC instead
    (<interface type='bridge'><source network='NET' bridge='br0'/>, forward mode 'bridge'; type='direct'
    for macvtap networks): the migration XML names the network, and the target resolves it itself (lab).

    Proven in the lab (libvirt 9.0): a network not defined on the target fails the migration with
    "Network not found: no network with matching name 'NET'"; defined but inactive with
    "Requested operation is not valid: network 'NET' is not active". A portgroup the target's
    network lacks does NOT fail it (lab): libvirt looks the portgroup up by name, finds none and
    plugs the guest in without that portgroup's settings (by libvirt's code, virPortGroupFindByName,
    not the default portgroup's either; not lab-checked), so the guest silently loses the VLAN,
    bandwidth or virtualport the source's portgroup gave it: a warning.
    """
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.type == "network" and i.network]
    if not ifaces:
        raise NotApplicable
    nets = {n.name: n for n in ctx.need(ctx.target.networks, "networks", ctx.target)}
    out = []
    for i in ifaces:
        net = nets.get(i.network)
        out += _handed_out_missing(ctx, i, net)
        if net is None:
            out.append(Hit(message=f"network '{i.network}' is not defined on the target: \"Network not found: no "
                                   f"network with matching name '{i.network}'\"",
                           evidence=[f"{ctx.target.spec}: networks {', '.join(sorted(nets)) or 'none'}"],
                           fix=f"define and start network '{i.network}' on the target (virsh net-define; "
                               f"virsh net-start {i.network}; virsh net-autostart {i.network})"))
        elif not net.active:
            out.append(Hit(message=f"network '{i.network}' is defined but not active on the target: \"Requested "
                                   f"operation is not valid: network '{i.network}' is not active\"",
                           evidence=[f"{ctx.target.spec}: network {i.network} inactive"],
                           fix=f"virsh net-start {i.network} on the target (and net-autostart)"))
        elif i.portgroup and i.portgroup not in net.portgroups:
            out.append(Hit(message=f"network '{i.network}' on the target has no portgroup '{i.portgroup}': the "
                                   "migration works, but libvirt ignores the unknown portgroup and the guest gets none "
                                   "of its settings there (VLAN tag, bandwidth, virtualport)",
                           evidence=[f"interface {i.mac or ''}: <source network='{i.network}' portgroup='{i.portgroup}'/>",
                                     f"{ctx.target.spec}: portgroups {', '.join(net.portgroups) or 'none'}"],
                           fix=f"add portgroup '{i.portgroup}' to network '{i.network}' on the target (virsh "
                               f"net-update {i.network} add portgroup ... --live --config) before migrating",
                           severity=Severity.WARN))
    return out


def _handed_out_missing(ctx: CheckContext, i, net) -> list[Hit]:
    """The target network exists and is active, but the host bridge or NICs it hands out are not there.

    Lab (libvirt 9.0): a network of forward mode 'bridge' whose <bridge name> is missing on the target is
    active there all the same, and the migration fails with "Cannot get interface MTU on 'BR': No such device";
    its bridge named differently from the source's migrates (the target uses its own). A macvtap network
    whose only NIC is missing on the target fails with "Unable to get index for interface NIC: No such device"
    (lab); with several NICs, some missing, libvirt may or may not pick a missing one: a risk (not lab-run)."""
    bridge, devs = _handed_out(net)
    seen = f"(on the source the interface is on {i.actual_type} {i.actual_bridge or i.actual_dev})" \
        if i.actual_type and i.actual_type != "network" else ""
    out = []
    if bridge:
        stat = ctx.target.paths.get(netdev_path(bridge))
        if stat is None:
            out.append(path_not_checked(ctx, f"could not check bridge '{bridge}' of network '{i.network}' on the target"))
        elif not stat.exists:
            out.append(Hit(message=f"network '{i.network}' on the target hands out bridge '{bridge}', which does not "
                                   f"exist there: \"Cannot get interface MTU on '{bridge}': No such device\"",
                           evidence=[f"{ctx.target.spec}: network {i.network} <forward mode='bridge'/> "
                                     f"<bridge name='{bridge}'/>", f"{ctx.target.spec}: no {netdev_path(bridge)}"]
                           + ([seen] if seen else []),
                           fix=f"create bridge {bridge} on the target, or point the target's network "
                               f"'{i.network}' at the bridge it has (virsh net-edit {i.network})"))
    elif devs:
        stats = [(d, ctx.target.paths.get(netdev_path(d))) for d in devs]
        if any(st is None for _, st in stats):
            out.append(path_not_checked(ctx, f"could not check the NICs of network '{i.network}' on the target"))
            return out
        gone = [d for d, st in stats if not st.exists]
        if gone:
            every = len(gone) == len(devs)
            out.append(Hit(message=f"network '{i.network}' on the target hands out NIC(s) {', '.join(gone)} for "
                                   "macvtap, which do not exist there"
                                   + (f": the target cannot create the macvtap, \"Unable to get index for interface "
                                      f"{gone[0]}: No such device\"" if every else
                                      ": libvirt may pick one of them for this guest"),
                           evidence=[f"{ctx.target.spec}: network {i.network} <forward mode='{net.forward_mode}'> "
                                     f"devs {', '.join(devs)}", f"{ctx.target.spec}: no {', '.join(gone)}"],
                           fix=f"fix the <forward><interface dev> list of network '{i.network}' on the target "
                               "(virsh net-edit) to name NICs it has",
                           severity=Severity.BLOCK if every else Severity.RISK))
    return out


@check("network.nwfilter-missing", Severity.BLOCK, "an nwfilter the interface references is not defined on the target",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_nwfilter_missing_on_target_is_blocked_and_fails",
       ),
       explains={300: r"nwfilter|filter '.*' not found|referenced filter '.*' is missing"},
       reads=("nwfilters?filterref",))
def nwfilter_missing(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0): the target instantiates the filter when it plugs the interface in,
    and a filter defined only on the source fails the migration with
    "internal error: referenced filter 'NAME' is missing"."""
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.filterref]
    if not ifaces:
        raise NotApplicable
    filters = set(ctx.need(ctx.target.nwfilters, "nwfilters", ctx.target))
    return [Hit(message=f"nwfilter '{i.filterref}' is not defined on the target: \"internal error: referenced "
                        f"filter '{i.filterref}' is missing\"",
                evidence=[f"interface {i.mac}: <filterref filter='{i.filterref}'/>",
                          f"{ctx.target.spec}: {len(filters)} filter(s) defined"],
                fix=f"copy the filter: virsh nwfilter-dumpxml {i.filterref} on the source, nwfilter-define on the target")
            for i in ifaces if i.filterref not in filters]


# ------------------------------------------------------------------ the address the source connects to

def _native(ctx: CheckContext) -> None:
    """Only a native migration sends QEMU's stream over a connection of its own (see facts/migration_address)."""
    if ctx.flags.offline or ctx.flags.tunnelled:
        raise NotApplicable  # offline moves only the XML; tunnelled carries the stream over libvirt's connection


def _target_conf(ctx: CheckContext) -> str | None:
    """The target's qemu.conf text ('' when it has none); FactMissing when it could not be read."""
    return ctx.qemu_conf(ctx.target).text


def _incoming(ctx: CheckContext):
    """The address the source will connect to, or a Hit when libvirt refuses the --migrateuri itself."""
    from migcheck.facts.migration_address import incoming_address

    conf = None if ctx.flags.migrateuri else _target_conf(ctx)
    hostname = None if ctx.flags.migrateuri else ctx.target.hostname
    try:
        addr = incoming_address(hostname, conf, ctx.flags.migrateuri)
    except LookupError:
        raise NotApplicable from None  # unix:// and other schemes without a host
    except ValueError as exc:
        return Hit(message=f"libvirt refuses this --migrateuri: '{exc}'", evidence=[f"--migrateuri {ctx.flags.migrateuri}"],
                   fix="write it as tcp://HOST:PORT (an IPv6 address in brackets), HOST an address of the target")
    if addr is None:
        ctx.need(None, "hostname", ctx.target)
    return addr


def _source_addresses(ctx: CheckContext, name: str):
    """The source resolver's answer for name (FactMissing when it was not asked or could not answer)."""
    from migcheck.checks.registry import FactMissing

    s = ctx.source
    resolved = s.resolved
    why = s.errors.get(f"resolve:{name}") or s.errors.get("resolve")
    if why or resolved is None or name not in resolved:
        raise FactMissing(f"how {s.spec} resolves '{name}': "
                          + (why or "not asked (a probe saved by an older migcheck, or the audit)"))
    return resolved[name]


@check("network.migration-address", Severity.BLOCK,
       "the source cannot resolve or reach the address the migration stream goes to", proven_by=(
           "tests/lab/test_catalogue_migration_address.py::test_target_hostname_resolvable_is_ok_and_migrates",
           "tests/lab/test_catalogue_migration_address.py::test_target_hostname_the_source_cannot_resolve",
           "tests/lab/test_catalogue_migration_address.py::test_target_hostname_resolving_elsewhere_on_the_source",
           "tests/lab/test_catalogue_migration_address.py::test_migrateuri_with_an_address_the_target_does_not_have",
           "tests/lab/test_catalogue_migration_address.py::test_migration_host_address_works_although_the_hostname_does_not_resolve",
       ),
       explains={70: r"Unable to resolve address '|address resolution failed for|unable to connect to server at '[^']*:\d+'|"
                     r"Failed to connect to '[^']*:\d+'"},
       reads=("addresses", "hostname", "qemu_conf"))
def migration_address(ctx: CheckContext):
    """The target's libvirt names the address (--migrateuri, else qemu.conf migration_host, else its own
    hostname); the source resolves it with its own resolver and connects there. A name the source cannot
    resolve, one that resolves to loopback or to addresses the target does not have, and an address literal
    that is not the target's all fail the migration after the target has started its QEMU."""
    from migcheck.facts.migration_address import is_address, is_loopback, normalized

    _native(ctx)
    addr = _incoming(ctx)
    if isinstance(addr, Hit):
        return [addr]
    if addr.host.startswith("localhost") and not ctx.flags.migrateuri:
        return []  # the target's libvirt refuses first: platform.target-hostname-localhost
    own = ctx.target.addresses.all() if ctx.target.addresses is not None else None
    where = f"{addr.host}:{addr.port}" if addr.port else f"{addr.host}:PORT"
    evidence = [f"the source connects to {where}, from {addr.origin}"]
    fix_name = ("pass --migrateuri tcp://ADDRESS with an address of the target, set migration_host in the target's "
                "qemu.conf to a name or address the source resolves to the target, or make the source resolve the "
                "name (DNS, /etc/hosts)")
    if is_address(addr.host):
        resolved = [normalized(addr.host)]
    else:
        answer = _source_addresses(ctx, addr.host)
        if not answer.found or not answer.addresses:
            return [Hit(message=f"the source cannot resolve '{addr.host}', the name the migration stream goes to: "
                                f"libvirt fails with \"Unable to resolve address '{addr.host}' service '...': Name or "
                                "service not known\" (or \"Temporary failure in name resolution\")",
                        evidence=evidence + [f"{ctx.source.spec}: getent ahosts {addr.host}: not found"], fix=fix_name)]
        resolved = [normalized(a) for a in answer.addresses]
        evidence.append(f"{ctx.source.spec}: getent ahosts {addr.host}: {', '.join(resolved)}")
    if all(is_loopback(a) for a in resolved):
        return [Hit(message=f"'{addr.host}' is a loopback address on the source: the source's QEMU would connect to "
                            "the source itself, and the migration fails (\"Connection refused\")",
                    evidence=evidence, fix=fix_name)]
    if own is None:
        ctx.need(None, "file:/proc/net/fib_trie", ctx.target)
    if not any(a in own for a in resolved):
        return [Hit(message=f"{', '.join(resolved)} is not an address of the target: the migration stream would go "
                            "to another machine, or nowhere (\"Connection refused\", \"No route to host\", or a "
                            "timeout)",
                    evidence=evidence + [f"{ctx.target.spec}: addresses " + ", ".join(sorted(own))],
                    fix=fix_name + "; behind NAT, where the target does not own the address it is reached by, this "
                                   "finding is wrong: pass --migrateuri with that address")]
    return []


@condition("filterref")
def _filtered(dom, flags, target=None) -> bool:
    return not flags.offline and any(i.filterref for i in dom.interfaces)


@condition("listen-address")
def _listens_on_one_address(dom, flags, target=None) -> bool:
    """A native migration whose incoming QEMU is told an address to listen on (--listen-address, or the
    target's qemu.conf migration_address): network.migration-listen-address then reads the target's
    addresses and hostname."""
    if flags.offline or flags.tunnelled:
        return False
    if flags.listen_address or target is None or target.qemu_conf is None:
        return True
    return bool(target.qemu_conf.value("migration_address"))


@check("network.migration-listen-address", Severity.BLOCK,
       "the target's QEMU is told to listen on an address it does not have (--listen-address, migration_address)",
       proven_by=(
           "tests/lab/test_catalogue_migration_address.py::test_target_hostname_resolvable_is_ok_and_migrates",
           "tests/lab/test_catalogue_migration_address.py::test_listen_address",
           "tests/lab/test_catalogue_migration_address.py::test_migration_address_the_target_does_not_have",
       ),
       explains={420: r"Failed to bind socket: Cannot assign requested address|"
                      r"unable to connect to server at '[^']*:\d+': Connection refused"},
       reads=("addresses?listen-address", "hostname?listen-address", "qemu_conf"))
def migration_listen_address(ctx: CheckContext):
    """The incoming QEMU binds --listen-address, else the target's qemu.conf migration_address, else every
    address. One the target does not have fails its QEMU: "Failed to bind socket: Cannot assign requested
    address"; one that is not where the source connects leaves the source "Connection refused"."""
    from migcheck.facts.migration_address import conf_value, incoming_address, is_address, is_wildcard, normalized

    _native(ctx)
    conf = _target_conf(ctx)
    if ctx.flags.listen_address:
        listen, origin = ctx.flags.listen_address, f"--listen-address {ctx.flags.listen_address}"
    else:
        listen = conf_value(conf, "migration_address")
        origin = f'the target\'s qemu.conf migration_address = "{listen}"'
    if not listen or is_wildcard(listen):
        raise NotApplicable
    bare = listen[1:-1] if listen.startswith("[") and listen.endswith("]") else listen
    if not is_address(bare):
        return [Hit(message=f"the target's QEMU listens on '{listen}', a name the target resolves itself: not judged",
                    evidence=[origin], fix="give an address of the target, or 0.0.0.0", severity=Severity.UNKNOWN)]
    own = ctx.target.addresses.all() if ctx.target.addresses is not None else None
    if own is None:
        ctx.need(None, "file:/proc/net/fib_trie", ctx.target)
    listen_n = normalized(bare)
    if listen_n not in own:
        return [Hit(message=f"the target does not have the address {listen}: its QEMU fails with 'Failed to bind "
                            "socket: Cannot assign requested address'",
                    evidence=[origin, f"{ctx.target.spec}: addresses " + ", ".join(sorted(own))],
                    fix="give --listen-address an address of the target (or 0.0.0.0), or fix migration_address in "
                        "the target's qemu.conf")]
    # bound to one address: the source must connect to exactly that one
    try:
        addr = incoming_address(ctx.target.hostname, conf, ctx.flags.migrateuri)
    except (ValueError, LookupError):
        return []  # reported by network.migration-address
    if addr is None:
        return []
    if is_address(addr.host):
        targets = {normalized(addr.host)}
    else:
        answer = (ctx.source.resolved or {}).get(addr.host)
        if answer is None or not answer.addresses:
            return []  # not known, or unresolvable: network.migration-address says so
        targets = {normalized(a) for a in answer.addresses}
    if listen_n in targets:
        return []
    return [Hit(message=f"the target's QEMU listens on {listen} only, but the source connects to "
                        f"{', '.join(sorted(targets))} ('{addr.host}'): \"Connection refused\"",
                evidence=[origin, f"the source connects to {addr.host}, from {addr.origin}"],
                fix=f"pass --migrateuri tcp://{listen} as well, or listen on 0.0.0.0")]
