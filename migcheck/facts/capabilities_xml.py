"""Host capabilities and domain capabilities XML -> facts."""

from __future__ import annotations

from migcheck.facts.domain_xml import parse_cpu
from migcheck.facts.models import (
    CpuModelSupport,
    DomainCapabilities,
    GuestSupport,
    HostCapabilities,
    HostCpu,
    TpmSupport,
)
from migcheck.xmlsafe import parse_xml, xml_number


def _parse_cpuset_ids(cell) -> list[int]:
    ids = []
    for cpu in cell.findall("cpus/cpu"):
        try:
            ids.append(int(cpu.get("id", "")))
        except ValueError:
            continue
    return ids


def _signature(el) -> tuple[int, int, int] | None:
    """<signature family='25' model='1' stepping='1'/>, or None when absent or not three small numbers."""
    if el is None:
        return None
    parts = [el.get(k) or "" for k in ("family", "model", "stepping")]
    if not all(p.isascii() and p.isdigit() and len(p) <= 6 for p in parts):
        return None
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def parse_capabilities_xml(text: str | bytes) -> HostCapabilities:
    root = parse_xml(text, "capabilities XML")
    if root.tag != "capabilities":
        raise ValueError(f"expected <capabilities>, got <{root.tag}>")
    host = root.find("host")
    cpu = HostCpu()
    uuid = None
    cells: dict[int, list[int]] = {}
    transports: list[str] = []
    if host is not None:
        uuid = (host.findtext("uuid") or "").strip() or None
        hc = host.find("cpu")
        if hc is not None:
            counter = next((c for c in hc.findall("counter") if c.get("name") == "tsc"), None)
            freq = counter.get("frequency") if counter is not None else None
            cpu = HostCpu(
                arch=(hc.findtext("arch") or "").strip() or None,
                model=(hc.findtext("model") or "").strip() or None,
                vendor=(hc.findtext("vendor") or "").strip() or None,
                signature=_signature(hc.find("signature")),
                microcode=(hc.find("microcode").get("version") if hc.find("microcode") is not None else None),
                features=[f.get("name") for f in hc.findall("feature") if f.get("name")],
                tsc_frequency=xml_number(freq, "the host CPU's TSC counter frequency")
                if freq and freq.isascii() and freq.isdigit() else None,
                tsc_scaling=(counter.get("scaling") == "yes") if counter is not None and counter.get("scaling") else None,
            )
        for cell in host.findall("topology/cells/cell"):
            try:
                cells[int(cell.get("id", ""))] = _parse_cpuset_ids(cell)
            except ValueError:
                continue
        transports = [(t.text or "").strip() for t in host.findall("migration_features/uri_transports/uri_transport")]
    aliases = {m.text.strip(): m.get("canonical") for m in root.iter("machine") if m.get("canonical") and m.text}
    guests = []
    for guest in root.findall("guest"):
        arch = guest.find("arch")
        if arch is None:
            continue
        machines: list[str] = []
        for m in arch.findall("machine"):
            if m.text:
                machines.append(m.text.strip())
            if m.get("canonical"):
                machines.append(m.get("canonical"))
        domain_types = []
        emulator = (arch.findtext("emulator") or "").strip() or None
        emulators = [emulator] if emulator else []
        for dom in arch.findall("domain"):
            if dom.get("type"):
                domain_types.append(dom.get("type"))
            dom_emulator = (dom.findtext("emulator") or "").strip()
            if dom_emulator and dom_emulator not in emulators:
                emulators.append(dom_emulator)
            for m in dom.findall("machine"):
                if m.text:
                    machines.append(m.text.strip())
        guests.append(
            GuestSupport(
                os_type=(guest.findtext("os_type") or "hvm").strip(),
                arch=arch.get("name", ""),
                emulator=emulator,
                emulators=emulators,
                machines=sorted(set(machines)),
                domain_types=domain_types,
            )
        )
    return HostCapabilities(uuid=uuid, cpu=cpu, guests=guests, numa_cells=cells, migration_transports=transports,
                            machine_aliases=aliases)


def _values(enum) -> list[str]:
    """The <value>s of a domain capabilities <enum> (none when the enum is absent)."""
    if enum is None:
        return []
    return [(v.text or "").strip() for v in enum.findall("value") if (v.text or "").strip()]


def parse_domain_capabilities_xml(text: str | bytes) -> DomainCapabilities:
    root = parse_xml(text, "domain capabilities XML")
    if root.tag != "domainCapabilities":
        raise ValueError(f"expected <domainCapabilities>, got <{root.tag}>")
    caps = DomainCapabilities(
        path=(root.findtext("path") or "").strip() or None,
        domain_type=(root.findtext("domain") or "").strip() or None,
        machine=(root.findtext("machine") or "").strip() or None,
        arch=(root.findtext("arch") or "").strip() or None,
    )
    vcpu = root.find("vcpu")
    vcpu_max = (vcpu.get("max") or "") if vcpu is not None else ""
    if vcpu_max.isascii() and vcpu_max.isdigit():
        caps.max_vcpus = xml_number(vcpu_max, "domain capabilities' <vcpu max>")
    os_el = root.find("os")
    if os_el is not None:
        fw = os_el.find("enum[@name='firmware']")
        caps.firmware_values = _values(fw) if fw is not None else None
        loader = os_el.find("loader")
        if loader is not None and loader.get("supported") == "yes":
            caps.loader_values = [(v.text or "").strip() for v in loader.findall("value") if (v.text or "").strip()]
    tpm = root.find("devices/tpm")
    if tpm is not None:
        versions = tpm.find("enum[@name='backendVersion']")
        caps.tpm = TpmSupport(supported=tpm.get("supported") == "yes",
                              models=_values(tpm.find("enum[@name='model']")),
                              backend_models=_values(tpm.find("enum[@name='backendModel']")),
                              backend_versions=_values(versions) if versions is not None else None)
    for mode in root.findall("cpu/mode"):
        supported = mode.get("supported") == "yes"
        name = mode.get("name")
        if name == "host-passthrough":
            caps.host_passthrough = supported
            values = [v.text for v in mode.findall("enum[@name='hostPassthroughMigratable']/value")]
            caps.host_passthrough_migratable = "on" in values
        elif name == "host-model" and supported:
            hm = parse_cpu(mode)
            caps.host_model = hm.model_copy(update={"mode": "host-model"})
        elif name == "custom" and supported:
            blockers = {
                b.get("model"): [f.get("name") for f in b.findall("feature") if f.get("name")]
                for b in mode.findall("blockers")
            }
            for model in mode.findall("model"):
                name_ = (model.text or "").strip()
                caps.custom_models.append(
                    CpuModelSupport(name=name_, usable=model.get("usable", "unknown"), blockers=blockers.get(name_, []))
                )
    return caps
