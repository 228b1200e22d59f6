"""The small host files a probe reads (/proc, /sys, qemu.conf) -> typed facts of the host.

Each file's path is defined here once: the probe reads these paths, the facts are
built from them, and the checks read only the facts.  A file that was not read is
a fact of ``None``; a file whose content does not parse is ``None`` too, with the
reason under ``errors["file:PATH"]`` (the key the probe uses when it cannot read
the file), so a check that needs it says "unknown" and why.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Mapping

from pydantic import BaseModel, PlainSerializer, PlainValidator

from migcheck.facts.procfs import (CPUINFO, HUGEPAGE_FILES, CpuInfo, IdSet, Mount, local_ipv4_addresses,
                                   parse_conf_list, parse_conf_value, parse_cpuinfo, parse_id_list, parse_meminfo,
                                   parse_mountinfo, tcp_listeners)

MEMINFO = "/proc/meminfo"
MOUNTINFO = "/proc/self/mountinfo"
CPU_ONLINE = "/sys/devices/system/cpu/online"
NODE_ONLINE = "/sys/devices/system/node/online"
FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"
PROC_NET_UNIX = "/proc/net/unix"
QEMU_CONF = "/etc/libvirt/qemu.conf"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # equal on two hosts: one kernel, so one local file is the same file
PROC_NET_TCP = "/proc/net/tcp"
PROC_NET_TCP6 = "/proc/net/tcp6"

# what every probe reads of every host (the TCP tables only where a guest binds fixed ports: TCP_FILES)
HOST_FILES = (MEMINFO, MOUNTINFO, CPU_ONLINE, NODE_ONLINE, FIB_TRIE, IF_INET6, PROC_NET_UNIX, QEMU_CONF, CPUINFO,
              BOOT_ID) + tuple(HUGEPAGE_FILES.values())
TCP_FILES = (PROC_NET_TCP, PROC_NET_TCP6)
# the probe reads at most this much of /proc/net/unix: a table this long may have lost its tail
UNIX_TABLE_LIMIT = 1024 * 1024 - 4096

_SO_ACCEPTCON = 0x10000  # __SO_ACCEPTCON in /proc/net/unix Flags: a listening socket


def _id_set(value: Any) -> IdSet:
    return value if isinstance(value, IdSet) else parse_id_list(str(value))


# a CPU or node list as a typed field: kept as ranges, written as the kernel writes it ('0-3,8')
IdList = Annotated[IdSet, PlainValidator(_id_set), PlainSerializer(str, return_type=str)]


class Memory(BaseModel):
    """/proc/meminfo, in KiB."""

    total_kib: int | None = None
    available_kib: int | None = None  # MemAvailable (MemFree on kernels before 3.14)
    hugepage_size_kib: int | None = None  # the default huge page size


class QemuConf(BaseModel):
    """The host's /etc/libvirt/qemu.conf ('' when the host has none: every key at its default)."""

    text: str = ""

    def value(self, key: str) -> str | None:
        """The last uncommented ``key = value``, without quotes; None when not set."""
        return parse_conf_value(self.text, key)

    def list(self, key: str) -> list[str] | None:
        """The strings of ``key = [ "a", "b" ]``; None when not set."""
        return parse_conf_list(self.text, key)


class HostAddresses(BaseModel):
    """The host's own addresses: IPv4 from /proc/net/fib_trie, IPv6 from /proc/net/if_inet6."""

    ipv4: frozenset[str] = frozenset()  # the LOCAL /32 entries (loopback's 127.0.0.1 among them only if listed)
    ipv6: frozenset[str] = frozenset()  # canonical (compressed) form

    def has_ipv6(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return ip.version == 6 and str(ip) in self.ipv6

    def all(self) -> set[str]:
        """Every address, with 127.0.0.1 (loopback is always there)."""
        return set(self.ipv4) | {"127.0.0.1"} | set(self.ipv6)


class UnixSockets(BaseModel):
    """The listening Unix sockets of /proc/net/unix."""

    listening: frozenset[str] = frozenset()
    truncated: bool = False  # the table filled the probe's read limit: a listener may be missing from it


def parse_if_inet6(text: str) -> frozenset[str]:
    out = set()
    for line in text.splitlines():
        words = line.split()
        if words and len(words[0]) == 32:
            try:
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(words[0]))))
            except ValueError:
                continue
    return frozenset(out)


def listening_unix_sockets(proc_net_unix: str) -> set[str]:
    """Paths of the listening Unix sockets in /proc/net/unix (Num RefCount Protocol Flags Type St Inode Path)."""
    out = set()
    for line in proc_net_unix.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) < 8:
            continue
        try:
            flags = int(fields[3], 16)
        except ValueError:
            continue
        if flags & _SO_ACCEPTCON:
            out.add(fields[7])
    return out


class HostFileFacts(BaseModel):
    """What the checks know of a host from its small files (each None when its file was not read)."""

    memory: Memory | None = None
    hugepages_free: dict[int, int] = {}  # page size KiB -> free pages, for the sizes the host offers
    mounts: list[Mount] | None = None
    cpus_online: IdList | None = None
    nodes_online: IdList | None = None
    addresses: HostAddresses | None = None
    unix_sockets: UnixSockets | None = None
    tcp_listeners: frozenset[tuple[str, int]] | None = None
    qemu_conf: QemuConf | None = None  # None: not read (no SSH); QemuConf('') when the host has none
    cpuinfo: CpuInfo | None = None
    boot_id: str | None = None


def parse_host_files(files: Mapping[str, str], errors: dict[str, str]) -> HostFileFacts:
    """Typed facts from the files a probe read; a file that does not parse goes to errors["file:PATH"]."""
    out = HostFileFacts()
    if (text := files.get(MEMINFO)) is not None:
        info = parse_meminfo(text)
        out.memory = Memory(total_kib=info.get("MemTotal"), available_kib=info.get("MemAvailable", info.get("MemFree")),
                            hugepage_size_kib=info.get("Hugepagesize"))
    for size, path in HUGEPAGE_FILES.items():
        if (text := files.get(path)) is not None:
            try:
                out.hugepages_free[size] = int(text.strip() or 0)
            except ValueError:
                errors[f"file:{path}"] = f"{path} holds {text.strip()[:40]!r}, which is not a number"
    if (text := files.get(MOUNTINFO)) is not None:
        out.mounts = parse_mountinfo(text)
    for field, path in (("cpus_online", CPU_ONLINE), ("nodes_online", NODE_ONLINE)):
        if (text := files.get(path)) is not None:
            try:
                setattr(out, field, parse_id_list(text))
            except ValueError as exc:
                errors[f"file:{path}"] = f"{path} holds {text.strip()[:40]!r}, which is not a list of ids: {exc}"
    if (text := files.get(FIB_TRIE)) is not None:
        out.addresses = HostAddresses(ipv4=frozenset(local_ipv4_addresses(text)),
                                      ipv6=parse_if_inet6(files.get(IF_INET6, "")))
    if (text := files.get(PROC_NET_UNIX)) is not None:
        out.unix_sockets = UnixSockets(listening=frozenset(listening_unix_sockets(text)),
                                       truncated=len(text.encode()) >= UNIX_TABLE_LIMIT)
    if (text := files.get(PROC_NET_TCP)) is not None:
        out.tcp_listeners = frozenset(tcp_listeners(text, files.get(PROC_NET_TCP6, "")))
    if QEMU_CONF in files:
        out.qemu_conf = QemuConf(text=files[QEMU_CONF])
    elif not any(k in errors for k in ("host_files", f"file:{QEMU_CONF}")):
        out.qemu_conf = QemuConf()  # read the host's files, and it has none: libvirt's defaults
    if (text := files.get(CPUINFO)):
        out.cpuinfo = parse_cpuinfo(text)
    if (text := files.get(BOOT_ID)) is not None:
        out.boot_id = text.strip() or None
    return out
