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
    device: str = ""  # major:minor of the filesystem (the superblock), as mountinfo's third field says
    root: str = "/"  # the directory of that filesystem mounted here (a bind mount's subdirectory)


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
                            source=_unescape(rest[1]) if len(rest) > 1 else "", device=fields[2],
                            root=_unescape(fields[3])))
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


class IdSet:
    """A set of CPU or NUMA node ids kept as sorted, disjoint ranges.

    A guest's XML may say cpuset='0-99999999999': as a Python set that is 24 GB, as
    ranges it is one pair. Only what the checks need: size, difference, overlap, and
    the first few members (for a message).
    """

    def __init__(self, ranges=()) -> None:
        merged: list[tuple[int, int]] = []  # inclusive (lo, hi)
        for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self.ranges = tuple(merged)

    @classmethod
    def of(cls, ids) -> "IdSet":
        return cls((i, i) for i in ids)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __eq__(self, other) -> bool:
        other = other if isinstance(other, IdSet) else IdSet.of(other)
        return self.ranges == other.ranges

    def __sub__(self, other) -> "IdSet":
        other = other if isinstance(other, IdSet) else IdSet.of(other)
        out, cuts = [], list(other.ranges)
        for lo, hi in self.ranges:
            for clo, chi in cuts:
                if chi < lo or clo > hi:
                    continue
                if clo > lo:
                    out.append((lo, clo - 1))
                lo = chi + 1
                if lo > hi:
                    break
            if lo <= hi:
                out.append((lo, hi))
        return IdSet(out)

    def __and__(self, other) -> "IdSet":
        other = other if isinstance(other, IdSet) else IdSet.of(other)
        return self - (self - other)

    def first(self, n: int) -> list[int]:
        """The n smallest members."""
        out: list[int] = []
        for lo, hi in self.ranges:
            out += range(lo, min(hi, lo + n - len(out) - 1) + 1)
            if len(out) >= n:
                break
        return out

    def __str__(self) -> str:
        """The kernel's list form: '0-3,8'."""
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)

    def __repr__(self) -> str:
        return f"IdSet({str(self)!r})"


def parse_id_list(text: str) -> IdSet:
    """A kernel/libvirt list like '0-3,8,10-11' (libvirt also allows '^N' exclusions); ValueError if malformed."""
    ranges: list[tuple[int, int]] = []
    excluded: list[tuple[int, int]] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        target = ranges
        if part.startswith("^"):
            target, part = excluded, part[1:]
        lo, dash, hi = part.partition("-")
        target.append((int(lo), int(hi) if dash else int(lo)))
    return IdSet(ranges) - IdSet(excluded)


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


def parse_conf_list(text: str, key: str) -> list[str] | None:
    """The strings of ``key = [ "a", "b" ]`` in a libvirt .conf file (may span lines); None when not set."""
    import re

    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    body = "\n".join(lines)
    value = None
    for m in re.finditer(rf"(?m)^\s*{re.escape(key)}\s*=\s*\[([^\]]*)\]", body):
        value = re.findall(r'"([^"]*)"', m.group(1))
    return value


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
