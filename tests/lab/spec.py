"""What a lab host should look like."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .vroot import VersionedRoot

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")


@dataclass
class HostSpec:
    """One lab host.

    name: hostname, ssh alias and libvirt URI host (lowercase, digits, '-').
    bridges: empty bridge devices to create inside the host (e.g. "br-prod").
    dirs: directories that exist on this host only (see README: "private dirs").
    hugetlbfs: mount hugetlbfs at /dev/hugepages inside and reserve 2M pages.
    setup: argv commands run inside the host once it is ready.
    ssh_host_key_registered: False leaves the host's key out of known_hosts.
    start_libvirtd / start_sshd: start those daemons (virtlogd goes with libvirtd).
    root: run the host from its own root filesystem with other libvirt/QEMU
        versions (e.g. vroot.BACKPORTS: libvirt 11.3, QEMU 10.0), built once
        and cached (see vroot.py); None runs this machine's own packages.
    """

    name: str
    bridges: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    hugetlbfs: bool = False
    setup: list[list[str]] = field(default_factory=list)
    ssh_host_key_registered: bool = True
    start_libvirtd: bool = True
    start_sshd: bool = True
    root: VersionedRoot | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"host name {self.name!r}: use 2-32 chars of a-z, 0-9 and '-'")
        for br in self.bridges:
            if not _IFNAME.match(br) or br == "eth0":
                raise ValueError(f"{self.name}: bad bridge name {br!r}")
        for d in self.dirs:
            if not d.startswith("/") or "\n" in d:
                raise ValueError(f"{self.name}: dirs must be absolute paths, got {d!r}")
        if self.root is not None and not isinstance(self.root, VersionedRoot):
            raise ValueError(f"{self.name}: root must be a VersionedRoot, got {self.root!r}")
        for cmd in self.setup:
            if isinstance(cmd, str) or not cmd:
                raise ValueError(f"{self.name}: setup commands are argv lists, got {cmd!r}")
