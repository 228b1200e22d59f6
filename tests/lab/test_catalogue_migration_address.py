"""The address the source connects to (network.migration-address, network.migration-listen-address,
platform.target-hostname-localhost with migration_host), judged by real migrations.

Two lab hosts of their own (prefix mcadr): adr-a is the source, adr-b the target. Name
resolution is changed per scenario and undone after it: the target's UTS hostname
(`hostname` inside its namespace; libvirt reads it at every Prepare), a private /etc/hosts
bind-mounted over the lab's on the source only, and lines appended to the target's qemu.conf
(libvirtd restarted). NOWHERE is an address of this lab's subnet that no host holds.

What the real migrations said (libvirt 9.0, QEMU 7.2), as the assertions pin it:

| scenario | flags | migcheck | virsh migrate |
|---|---|---|---|
| target's hostname resolvable on the source | --live | ok | migrates |
| target's hostname in no hosts file (adr-b-nodns) | --live | blocked | Unable to resolve address 'adr-b-nodns' service '49152': Temporary failure in name resolution |
| the same, --migrateuri with the target's address | --live --migrateuri tcp://IP | ok | migrates |
| the same, --migrateuri with that name | --live --migrateuri tcp://adr-b-nodns:49160 | blocked | Unable to resolve address 'adr-b-nodns' service '49160': ... |
| target's hostname localhost.lab | --live | blocked | internal error: hostname on destination resolved to localhost, but migration requires an FQDN |
| the same, --migrateuri with the target's address | --live --migrateuri tcp://IP | ok | migrates |
| the source maps the target's name to NOWHERE | --live | blocked | unable to connect to server at 'adr-b:49152': No route to host |
| the source maps the target's name to 127.0.1.1 | --live | blocked | unable to connect to server at 'adr-b:49152': Connection refused |
| --migrateuri with NOWHERE | --live --migrateuri tcp://NOWHERE | blocked | unable to connect to server at 'NOWHERE:49152': No route to host |
| --listen-address NOWHERE | --live --listen-address | blocked | internal error: unable to execute QEMU command 'migrate-incoming': Failed to bind socket: Cannot assign requested address |
| --listen-address the target's address / 0.0.0.0 | --live --listen-address | ok | migrates |
| --listen-address 127.0.0.1 | --live --listen-address | blocked | unable to connect to server at 'adr-b:49152': Connection refused |
| qemu.conf migration_host = target's address, hostname in no hosts file | --live | ok | migrates |
| qemu.conf migration_address = NOWHERE | --live | blocked | ... 'migrate-incoming': Failed to bind socket: Cannot assign requested address |

Not a migration: with `migration_host = "localhost.lab"` (or a localhost `migration_address`)
libvirtd 9.0 does not start at all ("configuration file syntax error: migration_host must not be
the address of the local machine: localhost.lab", seen while building this module).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.lab import HostSpec, Lab
from tests.lab.fixtures import require_lab
from tests.lab.host import LabHost
from tests.lab.pairing import guest, pair
from tests.lab.test_catalogue_storage_devices import qemu_conf

pytestmark = pytest.mark.lab

PREFIX, SUBNET = "mcadr", "10.251.77.160/27"
STATE_DIR = Path("/var/tmp/migcheck-lab-mcadr")
NOWHERE = "10.251.77.190"  # in the subnet, held by no host: no ARP answer
NODNS = "adr-b-nodns"  # a hostname in no hosts file
UNRESOLVABLE = "Unable to resolve address '{name}' service '{port}'"
NO_ROUTE = "unable to connect to server at '{host}:49152': No route to host"
REFUSED = "unable to connect to server at '{host}:49152': Connection refused"
BIND = "Failed to bind socket: Cannot assign requested address"
ADDR, LISTEN, LOCAL = "network.migration-address", "network.migration-listen-address", \
    "platform.target-hostname-localhost"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()
    seed = Path("/var/tmp/migcheck-lab/cache")
    if seed.is_dir() and not (STATE_DIR / "cache").exists():
        shutil.copytree(seed, STATE_DIR / "cache")  # the QEMU capabilities probe: a warm bring-up
    lab = Lab([HostSpec("adr-a"), HostSpec("adr-b")], prefix=PREFIX, subnet=SUBNET, state_dir=STATE_DIR)
    with lab:
        inodes = lab.netns_inodes()
        yield lab
    for xml in Path("/tmp").glob("adr-*.xml"):  # pairing.guest() leaves each guest's XML in the shared /tmp
        xml.unlink(missing_ok=True)
    assert not lab.leftovers(inodes), lab.leftovers(inodes)


@contextlib.contextmanager
def hostname(host: LabHost, name: str) -> Iterator[None]:
    """The host's UTS hostname (what virGetHostname starts from) for a while."""
    old = host.run(["hostname"], check=True).stdout.strip()
    host.run(["hostname", name], check=True)
    try:
        yield
    finally:
        host.run(["hostname", old], check=True)


@contextlib.contextmanager
def etc_hosts(host: LabHost, lines: list[str]) -> Iterator[None]:
    """A private /etc/hosts for this host only (bind-mounted over the lab's shared one), for a while."""
    path = host.dir / "hosts.private"
    path.write_text("\n".join(["127.0.0.1\tlocalhost", *lines]) + "\n")
    host.run(["mount", "--bind", str(path), "/etc/hosts"], check=True)
    try:
        yield
    finally:
        host.run(["umount", "/etc/hosts"], check=True)
        path.unlink(missing_ok=True)


def _pair(lab: Lab, name: str, flags: list[str], **expect):
    a, b = lab.hosts
    with guest(lab, a, name, lab.guest_xml(name)):
        return pair(lab, a, b, name, flags, **expect)


# ------------------------------------------------------------------ the target's hostname

def test_target_hostname_resolvable_is_ok_and_migrates(lab):
    out = _pair(lab, "adr-plain", ["--live"], expect="ok")
    assert not out.rules() & {ADDR, LISTEN}


def test_target_hostname_the_source_cannot_resolve(lab):
    """The lab's known false ok: now blocked, and the real migration fails; --migrateuri with the target's
    address is ok and migrates, the name still unresolvable."""
    _, b = lab.hosts
    with hostname(b, NODNS):
        _pair(lab, "adr-nodns", ["--live"], expect="blocked", expect_rule=ADDR,
              expect_error=UNRESOLVABLE.format(name=NODNS, port=49152))
        _pair(lab, "adr-nodns-uri-ip", ["--live", "--migrateuri", f"tcp://{b.ip}"], expect="ok")
        _pair(lab, "adr-nodns-uri-name", ["--live", "--migrateuri", f"tcp://{NODNS}:49160"], expect="blocked",
              expect_rule=ADDR, expect_error=UNRESOLVABLE.format(name=NODNS, port=49160))


def test_target_hostname_localhost(lab):
    """libvirt refuses a hostname starting with 'localhost' in Prepare; --migrateuri avoids the hostname."""
    _, b = lab.hosts
    with hostname(b, "localhost.lab"):
        _pair(lab, "adr-localhost", ["--live"], expect="blocked", expect_rule=LOCAL,
              expect_error="hostname on destination resolved to localhost, but migration requires an FQDN")
        _pair(lab, "adr-localhost-uri", ["--live", "--migrateuri", f"tcp://{b.ip}"], expect="ok")


def test_target_hostname_resolving_elsewhere_on_the_source(lab):
    a, b = lab.hosts
    with etc_hosts(a, [f"{a.ip}\tadr-a", f"{NOWHERE}\tadr-b"]):
        _pair(lab, "adr-stale", ["--live"], expect="blocked", expect_rule=ADDR,
              expect_error=NO_ROUTE.format(host=b.name))
    with etc_hosts(a, [f"{a.ip}\tadr-a", "127.0.1.1\tadr-b"]):
        _pair(lab, "adr-loop", ["--live"], expect="blocked", expect_rule=ADDR,
              expect_error=REFUSED.format(host=b.name))


def test_migrateuri_with_an_address_the_target_does_not_have(lab):
    _pair(lab, "adr-uri-nowhere", ["--live", "--migrateuri", f"tcp://{NOWHERE}"], expect="blocked",
          expect_rule=ADDR, expect_error=NO_ROUTE.format(host=NOWHERE))


# ------------------------------------------------------------------ --listen-address

def test_listen_address(lab):
    _, b = lab.hosts
    _pair(lab, "adr-listen-bad", ["--live", "--listen-address", NOWHERE], expect="blocked", expect_rule=LISTEN,
          expect_error=BIND)
    _pair(lab, "adr-listen-ok", ["--live", "--listen-address", b.ip], expect="ok")
    _pair(lab, "adr-listen-any", ["--live", "--listen-address", "0.0.0.0"], expect="ok")
    _pair(lab, "adr-listen-lo", ["--live", "--listen-address", "127.0.0.1"], expect="blocked", expect_rule=LISTEN,
          expect_error=REFUSED.format(host=b.name))


# ------------------------------------------------------------------ the target's qemu.conf

def test_migration_host_address_works_although_the_hostname_does_not_resolve(lab):
    _, b = lab.hosts
    with qemu_conf(lab, {b.name: f'migration_host = "{b.ip}"\n'}), hostname(b, NODNS):
        out = _pair(lab, "adr-mhost", ["--live"], expect="ok")
        assert not out.rules() & {ADDR, LOCAL}


def test_migration_address_the_target_does_not_have(lab):
    _, b = lab.hosts
    with qemu_conf(lab, {b.name: f'migration_address = "{NOWHERE}"\n'}):
        _pair(lab, "adr-maddr", ["--live"], expect="blocked", expect_rule=LISTEN, expect_error=BIND)
        # --listen-address wins over migration_address
        _pair(lab, "adr-maddr-flag", ["--live", "--listen-address", "0.0.0.0"], expect="ok")
