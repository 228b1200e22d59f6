"""Where the source's QEMU will send the guest's memory, as libvirt 9.0 decides it.

In a native migration (neither --tunnelled nor --offline) the target's libvirtd
picks the incoming URI in its Prepare phase (qemuMigrationDstPrepareDirect):

- with --migrateuri, the host and port given there (a port of libvirt's
  migration range when none is given);
- otherwise ``tcp://HOST:PORT`` with HOST the target's qemu.conf
  ``migration_host``, or else the target's own hostname (virGetHostname: the
  canonical name the target resolves its hostname to, which is also what
  virConnectGetHostname answers), and PORT the first free one of
  ``migration_port_min``..``migration_port_max`` (49152-49215);
- its QEMU listens on --listen-address, else qemu.conf ``migration_address``,
  else on every address.

The source then connects to HOST:PORT, resolving HOST with its own resolver.
Pure functions: the probe asks the source's resolver about :func:`names_to_resolve`,
the checks judge the answers.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORT_MIN, DEFAULT_PORT_MAX = 49152, 49215
# A name the probe may hand to the source's resolver: letters, digits, '-', '_', '.', not
# starting with '-' (it then cannot pass for an option), at most 253 characters.
_HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")


@dataclass(frozen=True)
class IncomingAddress:
    host: str  # a name or an address literal (IPv6 without brackets)
    port: int | None  # None: one of the target's migration port range
    origin: str  # what chose it, for the evidence


def is_address(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


def valid_host_name(name: str) -> bool:
    return bool(_HOST_NAME.match(name)) and ".." not in name


def parse_migrate_uri(uri: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of a --migrateuri as libvirt reads it; ValueError when libvirt would refuse it.

    libvirt accepts 'tcp://HOST[:PORT]', 'rdma://HOST[:PORT]' and the old 'tcp:HOST:PORT' form; an IPv6
    host is written in brackets. Other schemes (unix://) carry no host: host None.
    """
    text = uri.strip()
    if "://" not in text:
        scheme, colon, rest = text.partition(":")
        if not colon:
            raise ValueError(f"missing scheme in migration URI: {uri}")
        text = f"{scheme}://{rest}"
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme not in ("tcp", "rdma"):
        return scheme, None, None
    hostport = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"unable to parse URI: {uri}")
        port_text = after[1:] if after.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError(f"missing host in migration URI: {uri}")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"unable to parse URI: {uri}")
        port = int(port_text)
    return scheme, host, port


def conf_value(qemu_conf: str | None, key: str) -> str | None:
    from migcheck.facts.procfs import parse_conf_value

    value = parse_conf_value(qemu_conf or "", key)
    return value or None


def port_range(qemu_conf: str | None) -> tuple[int, int]:
    """The target's migration port range (qemu.conf migration_port_min/max, libvirt's defaults)."""
    lo, hi = conf_value(qemu_conf, "migration_port_min"), conf_value(qemu_conf, "migration_port_max")
    return (int(lo) if lo and lo.isdigit() else DEFAULT_PORT_MIN, int(hi) if hi and hi.isdigit() else DEFAULT_PORT_MAX)


def incoming_address(target_hostname: str | None, target_qemu_conf: str | None,
                     migrateuri: str | None) -> IncomingAddress | None:
    """The host (and port) the source will connect to; None when the target's hostname is needed and unknown.

    Raises ValueError for a --migrateuri libvirt would refuse.
    """
    if migrateuri:
        scheme, host, port = parse_migrate_uri(migrateuri)
        if host is None:
            raise LookupError(scheme)
        return IncomingAddress(host=host, port=port, origin=f"--migrateuri {migrateuri}")
    migration_host = conf_value(target_qemu_conf, "migration_host")
    if migration_host:
        host = migration_host[1:-1] if migration_host.startswith("[") and migration_host.endswith("]") else migration_host
        return IncomingAddress(host=host, port=None, origin=f'the target\'s qemu.conf migration_host = "{migration_host}"')
    if not target_hostname:
        return None
    return IncomingAddress(host=target_hostname, port=None,
                           origin=f"the target's hostname '{target_hostname}' (virConnectGetHostname)")


def names_to_resolve(target_hostname: str | None, target_qemu_conf: str | None, migrateuri: str | None) -> list[str]:
    """The names the source must resolve for this migration (address literals need no resolver)."""
    try:
        addr = incoming_address(target_hostname, target_qemu_conf, migrateuri)
    except (ValueError, LookupError):
        return []
    if addr is None or is_address(addr.host):
        return []
    return [addr.host]


def parse_getent_ahosts(text: str) -> list[str]:
    """The addresses of ``getent ahosts NAME`` ('ADDR  STREAM NAME' lines), each once, in order."""
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words and is_address(words[0]) and words[0] not in out:
            out.append(words[0])
    return out


def is_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_wildcard(addr: str) -> bool:
    text = addr.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).is_unspecified
    except ValueError:
        return False


def normalized(addr: str) -> str:
    """An address in its canonical text form (IPv4-mapped IPv6 as IPv4)."""
    ip = ipaddress.ip_address(addr.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)
