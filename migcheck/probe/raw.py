"""What a probe brings back from one host, kept raw.

Raw answers (XML text, command lines, file contents) are what a snapshot
stores; :mod:`migcheck.facts.host` parses them into typed facts.  Keeping the
raw form means a saved probe can be replayed by a newer migcheck.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class CpuCompareAnswer(BaseModel):
    """The target's own answer to virConnectCompareHypervisorCPU."""

    result: int  # libvirt.VIR_CPU_COMPARE_*: -1 error, 0 incompatible, 1 identical, 2 superset
    message: str = ""  # the error text libvirt gave when incompatible (lists the features)
    # Feature names the host's libvirt refused as unknown; the answer above is for
    # the definition without them (see probe.gather.compare_cpu).
    unknown_features: list[str] = Field(default_factory=list)


class PathStat(BaseModel):
    path: str
    exists: bool
    is_dir: bool = False
    is_block: bool = False  # a block device (size: its capacity in bytes, from /sys/class/block, when known)
    size: int | None = None
    mtime: float | None = None
    fs_type: str | None = None


class RawDomain(BaseModel):
    name: str
    uuid: str | None = None
    state: int | None = None  # libvirt.VIR_DOMAIN_* state
    state_reason: int | None = None
    persistent: bool | None = None
    live_xml: str | None = None
    inactive_xml: str | None = None
    status_xml: str | None = None  # /run/libvirt/qemu/NAME.xml
    cmdline: list[str] | None = None  # /proc/PID/cmdline
    exe_link: str | None = None  # readlink /proc/PID/exe
    log_head: str | None = None  # first lines of /var/log/libvirt/qemu/NAME.log
    job_type: int | None = None
    block_jobs: list[str] = Field(default_factory=list)
    snapshot_count: int | None = None
    qmp_blocked_reasons: list[str] | None = None  # QEMU's query-migrate answer, only with --qmp
    # virDomainGetJobStats(COMPLETED | KEEP_COMPLETED) of a paused guest: the last job that finished
    completed_job: dict[str, int | float | str] | None = None
    qmp_status: str | None = None  # QEMU's runstate (query-status) of a paused guest, only with --qmp


class UsbDevice(BaseModel):
    """A USB device a host has (/sys/bus/usb/devices/N-M): what libvirt matches a <hostdev type='usb'> with."""

    vendor: str  # idVendor, lowercase hex
    product: str
    bus: int
    device: int


class PeerDomain(BaseModel):
    """A domain of the same name or UUID found on the target."""

    name: str
    uuid: str | None = None
    active: bool = False
    persistent: bool = False


class NetworkInfo(BaseModel):
    name: str
    active: bool
    portgroups: list[str] = Field(default_factory=list)
    bridge: str | None = None
    forward_mode: str | None = None  # <forward mode=...>: nat | route | bridge | private | vepa | passthrough | ...
    forward_devs: list[str] = Field(default_factory=list)  # <forward><interface dev=...>: a macvtap network's NICs


class PoolInfo(BaseModel):
    name: str
    active: bool
    type: str | None = None
    target_path: str | None = None
    available: int | None = None  # bytes


class SecretInfo(BaseModel):
    uuid: str
    usage_type: str | None = None
    usage_id: str | None = None


class NameAnswer(BaseModel):
    """What a host's own resolver says about one name (``getent ahosts NAME`` run there)."""

    name: str
    addresses: list[str] = Field(default_factory=list)  # in the resolver's order, each once
    found: bool = False  # False with no error: the resolver says the name does not exist (getent exit 2)


class RawHost(BaseModel):
    spec: str  # the host argument as the user gave it
    uri: str
    hostname: str | None = None
    libvirt_version: int | None = None  # of the daemon
    qemu_version: int | None = None  # of the hypervisor (virConnectGetVersion)
    capabilities_xml: str | None = None
    domcaps_xml: dict[str, str] = Field(default_factory=dict)  # key: emulator|arch|machine|virttype
    cpu_compare: dict[str, CpuCompareAnswer] = Field(default_factory=dict)  # key: sha256 of CPU XML
    # on a source: the CPU definitions a target compares, with every feature of their model written out by
    # this host's libvirt (for a target whose libvirt does not know the model); key: cpu_key of the definition
    cpu_expanded: dict[str, str] = Field(default_factory=dict)
    domain: RawDomain | None = None  # the guest, on the source
    peers: list[PeerDomain] = Field(default_factory=list)  # same name/uuid, on the target
    paths: dict[str, PathStat] = Field(default_factory=dict)
    image_headers: dict[str, str] = Field(default_factory=dict)  # disk image path -> its first bytes, hex
    files: dict[str, str] = Field(default_factory=dict)  # small host files (meminfo, mountinfo, ...)
    networks: list[NetworkInfo] | None = None  # None: not gathered
    nwfilters: list[str] | None = None
    secrets: list[SecretInfo] | None = None
    pools: list[PoolInfo] | None = None
    free_memory: int | None = None  # bytes, virNodeGetFreeMemory
    usb_devices: list[UsbDevice] | None = None  # read on a target only for a guest with USB host devices
    # On a source: the names the source's QEMU/libvirt will connect to for the migration (the target's
    # hostname, its qemu.conf migration_host, the --migrateuri host), as the source resolves them.
    # None: not asked (a probe saved before this fact existed, or the audit).
    resolved: dict[str, NameAnswer] | None = None
    errors: dict[str, str] = Field(default_factory=dict)  # fact -> why it could not be gathered


def domcaps_key(emulator: str | None, arch: str | None, machine: str | None, virttype: str | None) -> str:
    return "|".join(x or "" for x in (emulator, arch, machine, virttype))


def cpu_key(cpu_xml: str) -> str:
    import hashlib

    return hashlib.sha256(cpu_xml.encode()).hexdigest()[:16]
