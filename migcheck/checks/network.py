"""Network checks: what the guest's interfaces need on the target."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.report.model import Severity


def netdev_path(name: str) -> str:
    return f"/sys/class/net/{name}"


def _live_only(ctx: CheckContext) -> None:
    if ctx.flags.offline:
        raise NotApplicable  # the target only stores the XML; the guest starts later


def _netdev_hits(ctx: CheckContext, ifaces, attr: str, what: str, fix: str, exact_error: str):
    out = []
    for i in ifaces:
        name = getattr(i, attr)
        if not name:
            continue
        stat = ctx.target.raw.paths.get(netdev_path(name))
        if stat is None:
            out.append(Hit(message=f"could not check {what} '{name}' on the target",
                           evidence=[ctx.target.errors.get("paths", "")], fix="allow SSH access to the target",
                           severity=Severity.UNKNOWN))
        elif not stat.exists:
            out.append(Hit(message=f"{what} '{name}' does not exist on the target: {exact_error.format(name=name)}",
                           evidence=[f"interface {i.mac or ''} type={i.type} {attr}={name}",
                                     f"{ctx.target.spec}: no {netdev_path(name)}"],
                           fix=fix.format(name=name)))
    return out


@check("network.bridge-missing", Severity.BLOCK, "the guest's bridge does not exist on the target", proven_by_lab=True)
def bridge_missing(ctx: CheckContext):
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.type == "bridge"]
    return _netdev_hits(ctx, ifaces, "bridge", "bridge",
                        "create bridge {name} on the target (same name, same L2 network) before migrating",
                        "libvirt fails with \"Cannot get interface MTU on '{name}': No such device\"")


@check("network.direct-device-missing", Severity.BLOCK, "a macvtap (type='direct') source device missing on the target",
       proven_by_lab=True)
def direct_device_missing(ctx: CheckContext):
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.type == "direct"]
    return _netdev_hits(ctx, ifaces, "dev", "macvtap source device",
                        "use the same NIC name on the target (udev/systemd-networkd link rename), or a libvirt "
                        "network of forward mode 'bridge'/'passthrough' named the same on both hosts",
                        "the target cannot create the macvtap: 'Unable to get index for interface {name}: "
                        "No such device'")


@check("network.libvirt-network", Severity.BLOCK, "a libvirt network missing or inactive on the target",
       proven_by_lab=True, also=(Severity.WARN,))
def libvirt_network(ctx: CheckContext):
    """The target's libvirt plugs the incoming guest into its network of the same name.

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
    nets = {n.name: n for n in ctx.need(ctx.target.raw.networks, "networks", ctx.target)}
    out = []
    for i in ifaces:
        net = nets.get(i.network)
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


@check("network.nwfilter-missing", Severity.BLOCK, "an nwfilter the interface references is not defined on the target",
       proven_by_lab=True)
def nwfilter_missing(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0): the target instantiates the filter when it plugs the interface in,
    and a filter defined only on the source fails the migration with
    "internal error: referenced filter 'NAME' is missing"."""
    _live_only(ctx)
    ifaces = [i for i in ctx.domain.interfaces if i.filterref]
    if not ifaces:
        raise NotApplicable
    filters = set(ctx.need(ctx.target.raw.nwfilters, "nwfilters", ctx.target))
    return [Hit(message=f"nwfilter '{i.filterref}' is not defined on the target: \"internal error: referenced "
                        f"filter '{i.filterref}' is missing\"",
                evidence=[f"interface {i.mac}: <filterref filter='{i.filterref}'/>",
                          f"{ctx.target.spec}: {len(filters)} filter(s) defined"],
                fix=f"copy the filter: virsh nwfilter-dumpxml {i.filterref} on the source, nwfilter-define on the target")
            for i in ifaces if i.filterref not in filters]
