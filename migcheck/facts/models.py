"""Typed facts about hosts and guests, parsed from what the probe gathered.

Facts are plain data: parsers build them from raw XML / command lines
(``migcheck.facts.parse_*``), checks read them. Nothing here does I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field


class Version(BaseModel):
    """A libvirt-style version number (major * 1_000_000 + minor * 1000 + micro)."""

    number: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        n = self.number
        return f"{n // 1_000_000}.{(n // 1000) % 1000}.{n % 1000}"

    @classmethod
    def parse(cls, text: str) -> "Version":
        parts = [int(p) for p in text.strip().split(".")[:3] if p.isdigit()]
        parts += [0] * (3 - len(parts))
        return cls(number=parts[0] * 1_000_000 + parts[1] * 1000 + parts[2])

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.text


# --------------------------------------------------------------------------- CPU


class GuestCpu(BaseModel):
    """The guest's ``<cpu>`` element."""

    mode: str = "custom"  # host-passthrough | host-model | custom | maximum
    migratable: bool | None = None  # None: attribute absent
    match: str | None = None
    check: str | None = None
    model: str | None = None
    fallback: str | None = None
    vendor: str | None = None
    features: dict[str, str] = Field(default_factory=dict)  # name -> policy
    xml: str = ""  # the <cpu> element as text, for compareHypervisorCPU

    def exposes(self, feature: str) -> bool:
        return self.features.get(feature) in ("require", "force")


class TscTimer(BaseModel):
    frequency: int | None = None
    mode: str | None = None


class QemuCpuArg(BaseModel):
    """The ``-cpu`` option of a QEMU command line, split into model and properties."""

    model: str
    props: dict[str, str] = Field(default_factory=dict)  # name -> "on"/"off"/value

    def flag(self, name: str) -> bool | None:
        """True/False for ``name=on|off`` or ``+name``/``-name``; None when absent."""
        value = self.props.get(name)
        if value is None:
            return None
        return value.lower() in ("on", "true", "yes", "")

    @property
    def migratable(self) -> bool | None:
        return self.flag("migratable")

    @property
    def tsc_frequency(self) -> int | None:
        value = self.props.get("tsc-frequency") or self.props.get("tsc_freq")
        if not (value and value.isascii() and value.isdigit()):
            return None
        try:
            return int(value)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            return None


class QemuCommandLine(BaseModel):
    """What the running (or generated) QEMU command line says."""

    argv: list[str] = Field(default_factory=list)
    binary: str | None = None
    cpu: QemuCpuArg | None = None
    machine: str | None = None  # the machine type (first field of -machine)
    accel: str | None = None  # kvm | tcg | ...

    def invtsc_exposed(self) -> bool:
        """invtsc reaches the guest: ``host,migratable=off`` or an explicit +invtsc."""
        if self.cpu is None:
            return False
        explicit = self.cpu.flag("invtsc")
        if explicit is not None:
            return explicit
        return self.cpu.model in ("host", "max") and self.cpu.migratable is False


# ------------------------------------------------------------------------ domain


class Disk(BaseModel):
    device: str = "disk"  # disk | cdrom | floppy | lun
    type: str = "file"  # file | block | network | volume | dir | nvme | vhostuser
    target: str = ""
    bus: str | None = None
    source: str | None = None  # path, or "protocol:name" for network disks
    protocol: str | None = None
    pool: str | None = None
    volume: str | None = None
    driver_type: str | None = None  # raw | qcow2 | ...
    cache: str | None = None
    readonly: bool = False
    shareable: bool = False
    transient: bool = False
    secret_uuid: str | None = None
    secret_usage: str | None = None
    # <source startupPolicy=...>: optional | requisite | mandatory (None: libvirt's default, mandatory)
    startup_policy: str | None = None


class Interface(BaseModel):
    """One <interface>, as the migration sends it.

    A running guest's live XML shows an interface on a libvirt network as what the network gave it on the
    source: <interface type='bridge'> (forward mode 'bridge') or type='direct' (macvtap), with
    <source network='NET' bridge='br0'/> (or dev=). The migration XML (VIR_DOMAIN_XML_MIGRATABLE) sends
    <interface type='network'><source network='NET'/> instead, and the target resolves NET itself (seen in the
    lab, libvirt 9.0). So such an interface is parsed as type 'network'; the source's own bridge or device
    stays in actual_type / actual_bridge / actual_dev, and bridge / dev stay None: the target need not have them.
    """

    type: str  # bridge | network | direct | hostdev | vdpa | vhostuser | user | ...
    mac: str | None = None
    bridge: str | None = None
    network: str | None = None
    actual_type: str | None = None  # network interfaces: what the live XML shows on the source (bridge, direct, ...)
    actual_bridge: str | None = None  # network interfaces: the source's bridge (live XML <source bridge=>)
    actual_dev: str | None = None  # network interfaces: the source's macvtap device (live XML <source dev=>)
    portgroup: str | None = None
    dev: str | None = None  # direct: source dev
    socket: str | None = None  # vhostuser socket path
    socket_mode: str | None = None  # vhostuser: server (QEMU creates the socket) | client
    teaming: str | None = None  # <teaming type='persistent'|'transient'>: failover pairs
    filterref: str | None = None
    model: str | None = None
    target_dev: str | None = None


class HostDev(BaseModel):
    mode: str = "subsystem"
    type: str = "pci"  # pci | usb | scsi | scsi_host | mdev
    summary: str = ""
    teaming: str | None = None  # <teaming type='transient'>: the VF of a failover pair, unplugged to migrate
    # type='usb': <vendor id>/<product id> (lowercase hex, no 0x) and/or <address bus device>
    usb_vendor: str | None = None
    usb_product: str | None = None
    usb_bus: int | None = None
    usb_device: int | None = None
    startup_policy: str | None = None  # <source startupPolicy='optional'>: libvirt drops a missing device


class CharDev(BaseModel):
    kind: str  # serial | console | channel | parallel
    type: str  # pty | file | unix | tcp | ...
    path: str | None = None
    mode: str | None = None  # unix, tcp: bind (QEMU listens) | connect (QEMU connects to a listener)
    reconnect: bool = False  # <source><reconnect enabled='yes'/>: QEMU starts without its peer
    host: str | None = None  # tcp: the address QEMU binds to or connects to
    service: str | None = None  # tcp: the port


class Graphics(BaseModel):
    type: str
    listen: str | None = None
    socket: str | None = None
    fixed_ports: list[int] = Field(default_factory=list)  # port/tlsPort with autoport='no', a fixed websocket
    listen_network: str | None = None  # <listen type='network' network=NAME>: resolved again on the target


class MemoryDevice(BaseModel):
    model: str
    slot: str | None = None
    base: str | None = None


class TpmDevice(BaseModel):
    model: str = ""  # tpm-tis, tpm-crb, ...
    backend: str = ""  # emulator, passthrough, external
    version: str | None = None  # backend version ('2.0', '1.2'); libvirt fills it in the live XML


class Domain(BaseModel):
    """A guest, parsed from its domain XML."""

    name: str
    uuid: str | None = None
    id: int | None = None  # set in live XML only
    virt_type: str = "kvm"  # kvm | qemu | ...
    arch: str | None = None
    machine: str | None = None
    os_type: str = "hvm"
    emulator: str | None = None
    memory_kib: int = 0
    current_memory_kib: int = 0
    vcpus: int = 1
    vcpu_cpuset: str | None = None
    cpu: GuestCpu = Field(default_factory=GuestCpu)
    tsc: TscTimer | None = None
    hugepages: list[int] = Field(default_factory=list)  # page sizes in KiB (0: default)
    memory_backing_source: str | None = None
    vcpupin_cpusets: list[str] = Field(default_factory=list)
    emulatorpin_cpuset: str | None = None
    numatune_nodeset: str | None = None
    numatune_mode: str | None = None
    disks: list[Disk] = Field(default_factory=list)
    interfaces: list[Interface] = Field(default_factory=list)
    hostdevs: list[HostDev] = Field(default_factory=list)
    chardevs: list[CharDev] = Field(default_factory=list)
    graphics: list[Graphics] = Field(default_factory=list)
    sound_models: list[str] = Field(default_factory=list)  # <sound model=...>, in document order
    memory_devices: list[MemoryDevice] = Field(default_factory=list)
    shmems: list[dict[str, str]] = Field(default_factory=list)  # name, role, model
    filesystems: list[dict[str, str]] = Field(default_factory=list)  # driver, source, target
    tpms: list[str] = Field(default_factory=list)  # backend types
    tpm_devices: list[TpmDevice] = Field(default_factory=list)
    kernel: str | None = None
    initrd: str | None = None
    loader: str | None = None
    loader_type: str | None = None  # <loader type='pflash'|'rom'>
    nvram: str | None = None
    nvram_template: str | None = None  # <nvram template='...'>: what libvirt copies when the NVRAM file is missing
    firmware: str | None = None  # <os firmware='efi'>: libvirt picked the loader from firmware descriptors
    features: list[str] = Field(default_factory=list)  # <features> children names
    hyperv_passthrough: bool = False


# -------------------------------------------------------------------------- host


class HostCpu(BaseModel):
    arch: str | None = None
    model: str | None = None
    vendor: str | None = None
    # CPUID family, model, stepping (<signature>, in newer libvirts' capabilities): the physical
    # CPU, whatever name a libvirt version gives it
    signature: tuple[int, int, int] | None = None
    microcode: str | None = None
    features: list[str] = Field(default_factory=list)
    tsc_frequency: int | None = None
    tsc_scaling: bool | None = None


class GuestSupport(BaseModel):
    """One ``<guest>`` of the host capabilities: an arch and what can run it."""

    os_type: str = "hvm"
    arch: str
    emulator: str | None = None
    emulators: list[str] = Field(default_factory=list)  # the arch's and any per-domain-type emulator
    machines: list[str] = Field(default_factory=list)  # names and canonical aliases
    domain_types: list[str] = Field(default_factory=list)


class HostCapabilities(BaseModel):
    uuid: str | None = None
    cpu: HostCpu = Field(default_factory=HostCpu)
    guests: list[GuestSupport] = Field(default_factory=list)
    numa_cells: dict[int, list[int]] = Field(default_factory=dict)  # cell -> cpu ids
    migration_transports: list[str] = Field(default_factory=list)
    machine_aliases: dict[str, str] = Field(default_factory=dict)  # 'q35' -> 'pc-q35-7.2' (<machine canonical=>)


class CpuModelSupport(BaseModel):
    name: str
    usable: str = "unknown"  # yes | no | unknown
    blockers: list[str] = Field(default_factory=list)


class TpmSupport(BaseModel):
    """<devices><tpm> of the domain capabilities: what this libvirt and QEMU can give a guest now.

    libvirt lists the backend model 'emulator' (and the backendVersion values) only when it finds a
    working swtpm (and swtpm_setup) on its PATH: these are the truth, not the presence of a file."""
    supported: bool = False
    models: list[str] = Field(default_factory=list)
    backend_models: list[str] = Field(default_factory=list)
    backend_versions: list[str] | None = None  # None: no backendVersion enum (older libvirt, or no swtpm)

    def emulator_refusal(self, model: str, version: str | None) -> str | None:
        """Why this libvirt cannot start an emulated TPM of this model and version, or None when it can.

        Lab (libvirt 9.0): with swtpm gone, backendModel lists only 'passthrough', the backendVersion
        enum disappears, and an incoming TPM 2.0 guest fails with "unsupported configuration: TPM
        version '2.0' is not supported"."""
        shown = version or "2.0"
        if not self.supported:
            return "the domain capabilities say <tpm supported='no'>"
        if self.models and model and model not in self.models:
            return f"TPM model '{model}' is not offered (models: {', '.join(self.models)})"
        if "emulator" not in self.backend_models:
            return (f"no TPM emulator is offered (backend models: {', '.join(self.backend_models) or 'none'}): "
                    f"libvirt finds no usable swtpm; it fails with \"TPM version '{shown}' is not supported\"")
        if version and self.backend_versions is not None and version not in self.backend_versions:
            return (f"TPM version '{version}' is not offered (versions: {', '.join(self.backend_versions) or 'none'}): "
                    f"\"TPM version '{version}' is not supported\"")
        return None


class DomainCapabilities(BaseModel):
    path: str | None = None  # emulator
    domain_type: str | None = None
    machine: str | None = None
    arch: str | None = None
    host_passthrough: bool = False
    host_passthrough_migratable: bool = False
    host_model: GuestCpu | None = None
    custom_models: list[CpuModelSupport] = Field(default_factory=list)
    max_vcpus: int | None = None
    firmware_values: list[str] | None = None  # <os><enum name='firmware'>; None: not in these domcaps
    loader_values: list[str] = Field(default_factory=list)  # <os><loader><value>: firmware descriptors' code files
    tpm: TpmSupport | None = None  # None: these domcaps say nothing about TPMs (libvirt < 7.1)
