"""Small /proc and /sys files -> facts (mounts, memory, huge pages, CPU and node lists)."""

from __future__ import annotations

import posixpath

from pydantic import BaseModel

# virFileIsSharedFS / virFileIsClusterFS (libvirt src/util/virfile.c)
SHARED_FS = {"nfs", "nfs4", "gfs2", "gfs", "ocfs2", "afs", "smb3", "smbfs", "cifs", "ceph", "gpfs",
             "fuse.glusterfs", "fuse.quobyte", "beegfs", "fuse.ceph", "fuse.ceph-fuse"}
CLUSTER_FS = {"gfs2", "gfs", "ocfs2"}
HUGEPAGE_SIZES_KIB = (2048, 1048576)
HUGEPAGE_FILES = {size: f"/sys/kernel/mm/hugepages/hugepages-{size}kB/free_hugepages" for size in HUGEPAGE_SIZES_KIB}


class Mount(BaseModel):
    mount_point: str
    fs_type: str
    source: str = ""


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        rest = right.split()
        mounts.append(Mount(mount_point=_unescape(fields[4]), fs_type=rest[0] if rest else "",
                            source=_unescape(rest[1]) if len(rest) > 1 else ""))
    return mounts


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount a path lives on: the last-mounted, longest matching mount point."""
    path = posixpath.normpath(path)
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        if path == mp or path.startswith(mp + "/") or mp == "/":
            if best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/"):
                best = m
    return best


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {field: KiB (or a count for HugePages_*)}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def parse_id_list(text: str) -> set[int]:
    """A kernel/libvirt list like '0-3,8,10-11' (libvirt also allows '^N' exclusions)."""
    ids: set[int] = set()
    excluded: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        target = ids
        if part.startswith("^"):
            target, part = excluded, part[1:]
        if "-" in part:
            lo, hi = part.split("-", 1)
            target.update(range(int(lo), int(hi) + 1))
        else:
            target.add(int(part))
    return ids - excluded


def local_ipv4_addresses(fib_trie: str) -> set[str]:
    """The host's own IPv4 addresses, from /proc/net/fib_trie ('|-- ADDR' then '/32 host LOCAL')."""
    out, last = set(), None
    for line in fib_trie.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif "/32 host LOCAL" in stripped and last:
            out.add(last)
    return out


def parse_conf_value(text: str, key: str) -> str | None:
    """The value of ``key = value`` in a libvirt .conf file (the last uncommented assignment)."""
    value = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        name, eq, rest = line.partition("=")
        if eq and name.strip() == key:
            value = rest.strip().strip('"')
    return value


def tcp_listeners(proc_net_tcp: str, proc_net_tcp6: str = "") -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, from /proc/net/tcp and tcp6 (state 0A).

    Addresses come back in their usual text form: '0.0.0.0', '10.0.0.1', '::', 'fe80::1'.
    """
    import ipaddress
    import socket
    import struct

    out = set()
    for text, v6 in ((proc_net_tcp, False), (proc_net_tcp6, True)):
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A" or ":" not in fields[1]:
                continue
            hex_addr, _, hex_port = fields[1].partition(":")
            try:
                raw = bytes.fromhex(hex_addr)
                port = int(hex_port, 16)
                if v6 and len(raw) == 16:  # four host-order 32-bit words
                    addr = str(ipaddress.IPv6Address(b"".join(struct.pack("<I", w) for w in struct.unpack(">4I", raw))))
                elif not v6 and len(raw) == 4:
                    addr = socket.inet_ntoa(raw[::-1])
                else:
                    continue
            except (ValueError, struct.error, OSError):
                continue
            out.add((addr, port))
    return out


CPUINFO = "/proc/cpuinfo"


class CpuInfo(BaseModel):
    """The host's physical CPU as the kernel describes it (the first processor of /proc/cpuinfo).

    Independent of libvirt's version: two libvirts may give one CPU different
    model names and feature lists, the kernel does not.
    """

    vendor: str
    family: str
    model: str
    stepping: str
    model_name: str = ""
    microcode: str | None = None
    flags: frozenset[str] = frozenset()

    @property
    def signature(self) -> str:
        return f"{self.vendor} family {self.family} model {self.model} stepping {self.stepping}"


def parse_cpuinfo(text: str) -> CpuInfo | None:
    """The first processor's block of /proc/cpuinfo (x86 fields), or None when it has no vendor/family/model."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the end of the first processor's block
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    try:
        return CpuInfo(vendor=fields["vendor_id"], family=fields["cpu family"], model=fields["model"],
                       stepping=fields.get("stepping", ""), model_name=fields.get("model name", ""),
                       microcode=fields.get("microcode"), flags=frozenset(fields.get("flags", "").split()))
    except KeyError:
        return None
