"""Domain XML -> :class:`~migcheck.facts.models.Domain`."""

from __future__ import annotations

from fractions import Fraction
from xml.etree.ElementTree import Element

from migcheck.facts.models import (
    CharDev,
    Disk,
    Domain,
    GuestCpu,
    Graphics,
    HostDev,
    Interface,
    MemoryDevice,
    TpmDevice,
    TscTimer,
)
from migcheck.xmlsafe import parse_xml, to_text, xml_number

# KiB per unit, as exact fractions: float factors overflow on huge values
_UNIT_TO_KIB = {
    "b": Fraction(1, 1024), "bytes": Fraction(1, 1024),
    "k": 1, "kib": 1, "kb": Fraction(1000, 1024),
    "m": 1024, "mib": 1024, "mb": Fraction(1000**2, 1024),
    "g": 1024**2, "gib": 1024**2, "gb": Fraction(1000**3, 1024),
    "t": 1024**3, "tib": 1024**3, "tb": Fraction(1000**4, 1024),
}


def to_kib(value: str | None, unit: str | None, default_unit: str = "KiB", *, where: str = "a size") -> int:
    if not value:
        return 0
    factor = _UNIT_TO_KIB.get((unit or default_unit).lower(), 1)
    return int(xml_number(value, where) * factor)


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _yes(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.lower() in ("on", "yes")


def parse_cpu(elem: Element | None) -> GuestCpu:
    """Parse a ``<cpu>`` element (domain, or host-model of domain capabilities)."""
    if elem is None:
        return GuestCpu()
    model = elem.find("model")
    vendor = elem.find("vendor")
    features = {}
    for feat in elem.findall("feature"):
        name = feat.get("name")
        if name:
            features[name] = feat.get("policy", "require")
    return GuestCpu(
        mode=elem.get("mode", "custom"),
        migratable=_yes(elem.get("migratable")),
        match=elem.get("match"),
        check=elem.get("check"),
        model=(model.text or "").strip() or None if model is not None else None,
        fallback=model.get("fallback") if model is not None else None,
        vendor=(vendor.text or "").strip() or None if vendor is not None else None,
        features=features,
        xml=to_text(elem),
    )


def _disk(elem: Element) -> Disk:
    src = elem.find("source")
    driver = elem.find("driver")
    auth = elem.find("auth")
    secret = auth.find("secret") if auth is not None else None
    target = elem.find("target")
    dtype = elem.get("type", "file")
    source = protocol = pool = volume = None
    if src is not None:
        if dtype == "network":
            protocol = src.get("protocol")
            source = f"{protocol}:{src.get('name', '')}"
            if secret is None:  # newer XML puts <auth> inside <source>
                auth = src.find("auth")
                secret = auth.find("secret") if auth is not None else None
        elif dtype == "volume":
            pool, volume = src.get("pool"), src.get("volume")
            source = f"{pool}/{volume}"
        else:
            source = src.get("file") or src.get("dev") or src.get("dir") or src.get("path")
    return Disk(
        device=elem.get("device", "disk"),
        type=dtype,
        target=target.get("dev", "") if target is not None else "",
        bus=target.get("bus") if target is not None else None,
        source=source,
        protocol=protocol,
        pool=pool,
        volume=volume,
        driver_type=driver.get("type") if driver is not None else None,
        cache=driver.get("cache") if driver is not None else None,
        readonly=elem.find("readonly") is not None,
        shareable=elem.find("shareable") is not None,
        transient=elem.find("transient") is not None,
        secret_uuid=secret.get("uuid") if secret is not None else None,
        secret_usage=secret.get("usage") if secret is not None else None,
        startup_policy=src.get("startupPolicy") if src is not None else None,
    )


def _interface(elem: Element) -> Interface:
    src = elem.find("source")
    get = (lambda k: src.get(k)) if src is not None else (lambda k: None)
    mac = elem.find("mac")
    model = elem.find("model")
    target = elem.find("target")
    fref = elem.find("filterref")
    teaming = elem.find("teaming")
    itype = elem.get("type", "")
    network = get("network")
    on_network = bool(network) and itype in ("network", "bridge", "direct")  # see Interface: what migration sends
    return Interface(
        type="network" if on_network else itype,
        mac=mac.get("address") if mac is not None else None,
        bridge=None if on_network else get("bridge"),
        network=network if on_network else None,
        actual_type=itype if on_network else None,
        actual_bridge=get("bridge") if on_network else None,
        actual_dev=get("dev") if on_network else None,
        portgroup=get("portgroup"),
        dev=None if on_network else get("dev"),
        socket=get("path") if elem.get("type") == "vhostuser" else None,
        socket_mode=get("mode") if elem.get("type") == "vhostuser" else None,
        teaming=teaming.get("type") if teaming is not None else None,
        filterref=fref.get("filter") if fref is not None else None,
        model=model.get("type") if model is not None else None,
        target_dev=target.get("dev") if target is not None else None,
    )


def _hostdev(elem: Element) -> HostDev:
    src = elem.find("source")
    summary = ""
    if src is not None:
        addr = src.find("address")
        if addr is not None:
            summary = " ".join(f"{k}={v}" for k, v in sorted(addr.attrib.items()))
        elif src.find("adapter") is not None:
            summary = f"adapter={src.find('adapter').get('name')}"
    teaming = elem.find("teaming")
    usb: dict = {}
    if src is not None and elem.get("type") == "usb":
        for tag in ("vendor", "product"):
            e = src.find(tag)
            if e is not None and e.get("id"):
                usb[f"usb_{tag}"] = e.get("id").lower().removeprefix("0x").zfill(4)
        addr = src.find("address")
        for attr in ("bus", "device"):
            value = addr.get(attr, "") if addr is not None else ""
            if value.isascii() and value.isdigit():
                usb[f"usb_{attr}"] = xml_number(value, f"a USB host device's address {attr}")
        if not summary and usb.get("usb_vendor"):
            summary = f"{usb['usb_vendor']}:{usb.get('usb_product', '?')}"
        usb["startup_policy"] = src.get("startupPolicy")
    return HostDev(mode=elem.get("mode", "subsystem"), type=elem.get("type", ""), summary=summary,
                   teaming=teaming.get("type") if teaming is not None else None, **usb)


def _chardev(elem: Element) -> CharDev:
    src = elem.find("source")
    path = mode = host = service = None
    reconnect = False
    if src is not None:
        path = src.get("path")
        mode = src.get("mode")
        host, service = src.get("host"), src.get("service")
        rc = src.find("reconnect")
        reconnect = rc is not None and rc.get("enabled") == "yes"
    return CharDev(kind=elem.tag, type=elem.get("type", "pty"), path=path, mode=mode, reconnect=reconnect,
                   host=host, service=service)


def _fixed_graphics_ports(g: Element) -> list[int]:
    """Ports the graphics server binds as given: port/tlsPort unless autoport='yes', and a websocket > 0."""
    names = ["websocket"] + ([] if g.get("autoport") == "yes" else ["port", "tlsPort"])
    out = []
    for name in names:
        value = g.get(name, "")
        if value.isascii() and value.isdigit() and len(value) <= 5 and 0 < int(value) < 65536:
            out.append(int(value))
    return out


def _cpuset_list(root: Element, xpath: str) -> list[str]:
    return [e.get("cpuset") for e in root.findall(xpath) if e.get("cpuset")]


def parse_domain_xml(text: str | bytes) -> Domain:
    root = parse_xml(text, "domain XML")
    if root.tag != "domain":
        raise ValueError(f"expected <domain>, got <{root.tag}>")
    os_type = root.find("os/type")
    devices = root.find("devices")
    if devices is None:
        devices = Element("devices")
    vcpu = root.find("vcpu")
    tsc = None
    for timer in root.findall("clock/timer"):
        if timer.get("name") == "tsc":
            tsc = TscTimer(frequency=_int(timer.get("frequency")), mode=timer.get("mode"))
    memory = root.find("memory")
    current = root.find("currentMemory")
    hugepages = []
    for page in root.findall("memoryBacking/hugepages/page"):
        hugepages.append(to_kib(page.get("size"), page.get("unit"), where="<memoryBacking><hugepages><page size>"))
    if root.find("memoryBacking/hugepages") is not None and not hugepages:
        hugepages.append(0)
    backing_src = root.find("memoryBacking/source")
    numa_mem = root.find("numatune/memory")
    emulatorpin = root.find("cputune/emulatorpin")
    features = root.find("features")
    hyperv = root.find("features/hyperv")
    memdevs = []
    for mem in devices.findall("memory"):
        addr = mem.find("address")
        memdevs.append(
            MemoryDevice(
                model=mem.get("model", ""),
                slot=addr.get("slot") if addr is not None else None,
                base=addr.get("base") if addr is not None else None,
            )
        )
    shmems = []
    for shm in devices.findall("shmem"):
        role = shm.get("role")
        model = shm.find("model")
        shmems.append(
            {"name": shm.get("name", ""), "role": role or "", "model": model.get("type", "") if model is not None else ""}
        )
    filesystems = []
    for fs in devices.findall("filesystem"):
        drv = fs.find("driver")
        src = fs.find("source")
        tgt = fs.find("target")
        filesystems.append(
            {
                "type": fs.get("type", "mount"),
                "driver": (drv.get("type") if drv is not None else None) or "path",
                "source": (src.get("dir") or src.get("name") or src.get("socket") or "") if src is not None else "",
                "target": tgt.get("dir", "") if tgt is not None else "",
            }
        )
    tpms, tpm_devices = [], []
    for tpm in devices.findall("tpm"):
        backend = tpm.find("backend")
        tpms.append(backend.get("type", "") if backend is not None else "")
        tpm_devices.append(TpmDevice(model=tpm.get("model", ""), backend=tpms[-1],
                                     version=backend.get("version") if backend is not None else None))
    kernel = root.find("os/kernel")
    initrd = root.find("os/initrd")
    loader = root.find("os/loader")
    nvram = root.find("os/nvram")
    return Domain(
        name=(root.findtext("name") or "").strip(),
        uuid=(root.findtext("uuid") or "").strip() or None,
        id=_int(root.get("id")),
        virt_type=root.get("type", "kvm"),
        arch=os_type.get("arch") if os_type is not None else None,
        machine=os_type.get("machine") if os_type is not None else None,
        os_type=(os_type.text or "hvm").strip() if os_type is not None else "hvm",
        emulator=(devices.findtext("emulator") or "").strip() or None,
        memory_kib=to_kib(memory.text if memory is not None else None, memory.get("unit") if memory is not None else None,
                          where="<memory>"),
        current_memory_kib=to_kib(current.text if current is not None else None,
                                  current.get("unit") if current is not None else None, where="<currentMemory>"),
        vcpus=_int(vcpu.text.strip() if vcpu is not None and vcpu.text else None, 1) or 1,
        vcpu_cpuset=vcpu.get("cpuset") if vcpu is not None else None,
        cpu=parse_cpu(root.find("cpu")),
        tsc=tsc,
        hugepages=hugepages,
        memory_backing_source=backing_src.get("type") if backing_src is not None else None,
        vcpupin_cpusets=_cpuset_list(root, "cputune/vcpupin"),
        emulatorpin_cpuset=emulatorpin.get("cpuset") if emulatorpin is not None else None,
        numatune_nodeset=numa_mem.get("nodeset") if numa_mem is not None else None,
        numatune_mode=numa_mem.get("mode") if numa_mem is not None else None,
        disks=[_disk(d) for d in devices.findall("disk")],
        interfaces=[_interface(i) for i in devices.findall("interface")],
        hostdevs=[_hostdev(h) for h in devices.findall("hostdev")],
        chardevs=[_chardev(c) for tag in ("serial", "console", "channel", "parallel") for c in devices.findall(tag)],
        graphics=[
            Graphics(
                type=g.get("type", ""),
                listen=(g.find("listen").get("address") if g.find("listen") is not None else g.get("listen")),
                socket=(g.find("listen").get("socket") if g.find("listen") is not None else None),
                fixed_ports=_fixed_graphics_ports(g),
                listen_network=(g.find("listen").get("network") if g.find("listen") is not None
                                and g.find("listen").get("type") == "network" else None),
            )
            for g in devices.findall("graphics")
        ],
        sound_models=[snd.get("model", "") for snd in devices.findall("sound")],
        memory_devices=memdevs,
        shmems=shmems,
        filesystems=filesystems,
        tpms=tpms,
        tpm_devices=tpm_devices,
        kernel=(kernel.text or "").strip() or None if kernel is not None else None,
        initrd=(initrd.text or "").strip() or None if initrd is not None else None,
        loader=(loader.text or "").strip() or None if loader is not None else None,
        nvram=(nvram.text or "").strip() or None if nvram is not None else None,
        loader_type=(loader.get("type") or None) if loader is not None else None,
        nvram_template=(nvram.get("template") or None) if nvram is not None else None,
        firmware=(root.find("os").get("firmware") or None) if root.find("os") is not None else None,
        features=[f.tag for f in features] if features is not None else [],
        hyperv_passthrough=hyperv is not None and hyperv.get("mode") == "passthrough",
    )
