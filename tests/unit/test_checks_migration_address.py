"""Pass and fail fixtures for the address the source connects to (network.migration-address,
network.migration-listen-address) and platform.target-hostname-localhost with migration_host.

The target of the factories has the address 10.0.0.2 and the hostname dst.example, which the
source resolves to 10.0.0.2; each case takes one thing away. The lab pairs the same cases with
real migrations (tests/lab/test_catalogue_migration_address.py).
"""

from __future__ import annotations

import pytest

from migcheck.facts.hostfiles import parse_host_files
from migcheck.facts.migration_address import (incoming_address, names_to_resolve,
                                              parse_getent_ahosts, parse_migrate_uri, valid_host_name)
from migcheck.probe.raw import NameAnswer
from migcheck.report.model import Severity
from tests.unit.factories import argv, guest_xml, host_files, rules_of, run, source, target, unknown_checks

ADDR, LISTEN, LOCAL = "network.migration-address", "network.migration-listen-address", \
    "platform.target-hostname-localhost"
QEMU_CONF = "/etc/libvirt/qemu.conf"
IF_INET6 = "fd000000000000000000000000000002 02 40 00 80 eth0\n"


def src(resolved: dict[str, list[str] | None] | None = None, errors: dict[str, str] | None = None):
    """A source whose resolver answers `resolved` (name -> addresses; None: not found)."""
    s = source(guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>"), argv("host,migratable=on"))
    if resolved is not None:
        s.resolved = {n: NameAnswer(name=n, addresses=a or [], found=a is not None) for n, a in resolved.items()}
    s.errors.update(errors or {})
    return s


def dst(hostname: str = "dst.example", conf: str = "", **files):
    d = target(files=host_files() | {QEMU_CONF: conf, "/proc/net/if_inet6": IF_INET6} | files)
    d.hostname = hostname
    return d


def severity(report, rule):
    found = [f.severity for f in report.findings if f.rule == rule]
    return found[0] if found else None


# ----------------------------------------------------------------- the target's hostname

def test_resolvable_hostname_of_the_target_is_ok():
    r = run(src(), dst())
    assert ADDR not in rules_of(r) and LISTEN not in rules_of(r)


def test_commented_out_qemu_conf_keys_are_not_settings():
    """Debian's qemu.conf names every key in comments ('#migration_host = ...'): none of them is set."""
    conf = '#migration_host = "host.example.com"\n#migration_address = "0.0.0.0"\n'
    r = run(src(), dst(conf=conf))
    assert not rules_of(r) & {ADDR, LISTEN, LOCAL}, r.findings
    assert severity(run(src({"dst.example": None}), dst(conf=conf)), ADDR) == Severity.BLOCK


def test_hostname_the_source_cannot_resolve_blocks():
    r = run(src({"dst-nodns": None}), dst("dst-nodns"))
    f = next(f for f in r.findings if f.rule == ADDR)
    assert f.severity == Severity.BLOCK and "cannot resolve 'dst-nodns'" in f.message
    assert "Unable to resolve address 'dst-nodns'" in f.message


def test_hostname_resolving_elsewhere_blocks():
    assert severity(run(src({"dst.example": ["10.0.0.99"]}), dst()), ADDR) == Severity.BLOCK


def test_hostname_resolving_to_loopback_on_the_source_blocks():
    r = run(src({"dst.example": ["127.0.1.1"]}), dst())
    assert severity(r, ADDR) == Severity.BLOCK
    assert "loopback" in next(f.message for f in r.findings if f.rule == ADDR)


def test_one_of_several_addresses_being_the_targets_is_ok():
    assert ADDR not in rules_of(run(src({"dst.example": ["10.0.0.99", "fd00::2"]}), dst()))


def test_not_asked_or_failed_resolution_is_unknown_never_ok():
    assert severity(run(src(errors={"resolve:dst.example": "getent ahosts exited 127"}), dst()), ADDR) == \
        Severity.UNKNOWN
    s = src()
    s.resolved = None  # a probe saved before this fact existed, or the audit
    assert severity(run(s, dst()), ADDR) == Severity.UNKNOWN


def test_target_addresses_unread_is_unknown():
    d = dst()
    del d.files["/proc/net/fib_trie"]
    assert severity(run(src(), d), ADDR) == Severity.UNKNOWN


def test_tunnelled_and_offline_need_no_address():
    s = src({"dst-nodns": None})
    assert ADDR not in rules_of(run(s, dst("dst-nodns"), "--live --p2p --tunnelled"))
    assert ADDR not in rules_of(run(s, dst("dst-nodns"), "--offline --persistent"))


# ----------------------------------------------------------------- --migrateuri

def test_migrateuri_with_the_targets_address_is_ok_even_if_its_name_does_not_resolve():
    r = run(src({"dst-nodns": None}), dst("dst-nodns"), "--live --migrateuri tcp://10.0.0.2")
    assert ADDR not in rules_of(r)


@pytest.mark.parametrize("uri", ["tcp://10.0.0.99", "tcp:10.0.0.99:49160", "tcp://127.0.0.1:49152"])
def test_migrateuri_with_an_address_not_the_targets_blocks(uri):
    assert severity(run(src(), dst(), f"--live --migrateuri {uri}"), ADDR) == Severity.BLOCK


def test_migrateuri_with_a_name_the_source_cannot_resolve_blocks():
    r = run(src({"dst-nodns": None}), dst(), "--live --migrateuri tcp://dst-nodns:49160")
    assert severity(r, ADDR) == Severity.BLOCK


def test_migrateuri_ipv6_literal_of_the_target_is_ok():
    assert ADDR not in rules_of(run(src(), dst(), "--live --migrateuri tcp://[fd00::2]:49160"))


def test_migrateuri_libvirt_refuses_blocks():
    assert severity(run(src(), dst(), "--live --migrateuri 10.0.0.2"), ADDR) == Severity.BLOCK


# ----------------------------------------------------------------- qemu.conf migration_host

def test_migration_host_address_of_the_target_is_ok_though_the_hostname_does_not_resolve():
    r = run(src({"dst-nodns": None}), dst("dst-nodns", 'migration_host = "10.0.0.2"\n'))
    assert ADDR not in rules_of(r)


def test_migration_host_name_the_source_cannot_resolve_blocks():
    r = run(src({"mig.example": None}), dst(conf='migration_host = "mig.example"\n'))
    assert severity(r, ADDR) == Severity.BLOCK


@pytest.mark.parametrize("name,conf,fires", [
    ("localhost.localdomain", 'migration_host = "10.0.0.2"\n', False),  # libvirt takes migration_host instead
    # libvirtd refuses to start with this one (lab): a running target cannot have it in effect
    ("dst.example", 'migration_host = "localhost.lab"\n', False),
    ("localhost.localdomain", "", True),
    ("dst.example", "", False),
])
def test_localhost_check_reads_migration_host(name, conf, fires):
    assert (LOCAL in rules_of(run(src(), dst(name, conf)), "block")) == fires


def test_target_qemu_conf_unreadable_is_unknown():
    d = dst()
    del d.files[QEMU_CONF]
    d.errors[f"file:{QEMU_CONF}"] = "PermissionError: denied"
    report = run(src(), d)
    assert ADDR in unknown_checks(report) and report.verdict.value == "unknown"  # alone, or merged with the others


# ----------------------------------------------------------------- --listen-address, migration_address

@pytest.mark.parametrize("flags,conf,expected", [
    ("--live --listen-address 10.0.0.99", "", Severity.BLOCK),  # Failed to bind socket
    ("--live --listen-address 10.0.0.2", "", None),
    ("--live --listen-address 0.0.0.0", "", None),
    ("--live --listen-address ::", "", None),
    ("--live --listen-address [::]", "", None),
    ("--live --listen-address 127.0.0.1", "", Severity.BLOCK),  # the target's, but not where the source goes
    ("--live --listen-address fd00::2", "", Severity.BLOCK),  # the name resolves to 10.0.0.2 only
    ("--live --listen-address fd00::2 --migrateuri tcp://[fd00::2]", "", None),
    ("--live", 'migration_address = "10.0.0.99"\n', Severity.BLOCK),
    ("--live", 'migration_address = "10.0.0.2"\n', None),
    ("--live --listen-address 0.0.0.0", 'migration_address = "10.0.0.99"\n', None),  # the flag wins
    ("--live --p2p --tunnelled --listen-address 10.0.0.99", "", None),
])
def test_listen_address(flags, conf, expected):
    assert severity(run(src(), dst(conf=conf), flags), LISTEN) == expected


def test_listen_address_name_is_unknown():
    assert severity(run(src(), dst(), "--live --listen-address dst.example"), LISTEN) == Severity.UNKNOWN


# ----------------------------------------------------------------- the pure parts

@pytest.mark.parametrize("uri,expected", [
    ("tcp://10.0.0.2", ("tcp", "10.0.0.2", None)),
    ("tcp://10.0.0.2:49160", ("tcp", "10.0.0.2", 49160)),
    ("tcp:kvm2:49160", ("tcp", "kvm2", 49160)),
    ("tcp://[fd00::2]:49160", ("tcp", "fd00::2", 49160)),
    ("rdma://kvm2", ("rdma", "kvm2", None)),
    ("unix:///run/mig.sock", ("unix", None, None)),
])
def test_parse_migrate_uri(uri, expected):
    assert parse_migrate_uri(uri) == expected


@pytest.mark.parametrize("uri", ["10.0.0.2", "tcp://", "tcp://[fd00::2", "tcp://h:0", "tcp://h:x"])
def test_parse_migrate_uri_refuses(uri):
    with pytest.raises(ValueError):
        parse_migrate_uri(uri)


def test_names_to_resolve_follow_libvirts_choice():
    assert names_to_resolve("kvm2", "", None) == ["kvm2"]
    assert names_to_resolve("kvm2", 'migration_host = "mig2"\n', None) == ["mig2"]
    assert names_to_resolve("kvm2", 'migration_host = "10.0.0.2"\n', None) == []
    assert names_to_resolve("kvm2", 'migration_host = "mig2"\n', "tcp://other:49160") == ["other"]
    assert names_to_resolve("kvm2", "", "tcp://10.0.0.9") == []
    assert names_to_resolve(None, "", None) == []
    assert incoming_address(None, "", None) is None


@pytest.mark.parametrize("name,ok", [("kvm2", True), ("kvm2.example.net", True), ("under_score", True),
                                     ("-n", False), ("a b", False), ("a;b", False), ("$(x)", False), ("", False),
                                     ("a..b", False), ("x" * 254, False)])
def test_only_plain_host_names_reach_a_resolver(name, ok):
    assert valid_host_name(name) == ok


def test_parse_getent_ahosts():
    text = ("10.251.77.12    STREAM mc-b\n10.251.77.12    DGRAM  \n10.251.77.12    RAW    \n"
            "fd00::2         STREAM \n")
    assert parse_getent_ahosts(text) == ["10.251.77.12", "fd00::2"]
    assert parse_getent_ahosts("") == []


def test_own_addresses_reads_both_tables():
    assert parse_host_files(host_files() | {"/proc/net/if_inet6": IF_INET6}, {}).addresses.all() == \
        {"10.0.0.2", "fd00::2", "127.0.0.1"}
    assert parse_host_files({}, {}).addresses is None


def test_listen_address_not_on_the_target_names_the_bind_failure():
    r = run(src(), dst(), "--live --listen-address 10.0.0.99")
    f = next(f for f in r.findings if f.rule == LISTEN)
    assert "Cannot assign requested address" in f.message and "10.0.0.2" in " ".join(f.evidence)
    r = run(src(), dst(), "--live --listen-address 127.0.0.1")
    assert "Connection refused" in next(f.message for f in r.findings if f.rule == LISTEN)
