"""A running guest's live XML names a network's bridge or NIC; migcheck judges the network the migration sends.

The interface XML below is what libvirt 9.0 printed for running lab guests
(tests/lab/test_catalogue_network_state.py, "networks seen as their bridge").
"""

from __future__ import annotations

from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.checks.registry import probe_plan
from migcheck.probe.raw import NetworkInfo
from tests.unit.factories import guest_xml
from tests.unit.test_checks_catalogue import LIVE_FWD, LIVE_MACVTAP, LIVE_NAT

PLAIN_BRIDGE = "<interface type='bridge'><source bridge='br-prod'/><model type='virtio'/></interface>"


def _iface(xml: str):
    (i,) = parse_domain_xml(guest_xml(devices=xml)).interfaces
    return i


def test_a_forward_bridge_interface_is_the_network_the_migration_sends():
    i = _iface(LIVE_FWD)
    assert (i.type, i.network, i.bridge) == ("network", "fwd", None)
    assert (i.actual_type, i.actual_bridge) == ("bridge", "br-prod")


def test_a_macvtap_network_interface_is_the_network_the_migration_sends():
    i = _iface(LIVE_MACVTAP)
    assert (i.type, i.network, i.dev) == ("network", "mvnet", None)
    assert (i.actual_type, i.actual_dev) == ("direct", "eth1x")


def test_a_nat_network_interface_keeps_no_bridge_requirement():
    i = _iface(LIVE_NAT)
    assert (i.type, i.network, i.bridge, i.actual_bridge) == ("network", "natnet", None, "virbr-n1")


def test_a_plain_bridge_stays_a_bridge():
    i = _iface(PLAIN_BRIDGE)
    assert (i.type, i.bridge, i.network, i.actual_type) == ("bridge", "br-prod", None, None)


def test_the_target_stats_the_bridge_and_nics_its_own_networks_hand_out():
    dom = parse_domain_xml(guest_xml(devices=LIVE_FWD + LIVE_MACVTAP + LIVE_NAT))
    nets = [NetworkInfo(name="fwd", active=True, bridge="br-other", forward_mode="bridge"),
            NetworkInfo(name="mvnet", active=True, forward_mode="vepa", forward_devs=["eth2x", "eth3x"]),
            NetworkInfo(name="natnet", active=True, bridge="virbr-n2", forward_mode="nat")]
    paths = probe_plan().target_paths(dom, None, nets)
    assert {"/sys/class/net/br-other", "/sys/class/net/eth2x", "/sys/class/net/eth3x"} <= set(paths)
    assert not {"/sys/class/net/br-prod", "/sys/class/net/eth1x", "/sys/class/net/virbr-n1",
                "/sys/class/net/virbr-n2"} & set(paths)


def test_the_drift_summary_does_not_see_a_running_network_interface_as_changed():
    """Inactive XML: type='network'; live XML: type='bridge' with the network's name. Both parse alike."""
    inactive = _iface("<interface type='network'><source network='fwd'/><model type='virtio'/></interface>")
    live = _iface(LIVE_FWD)
    assert (inactive.type, inactive.network) == (live.type, live.network)
