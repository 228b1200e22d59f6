"""``virsh migrate --xml FILE`` and ``--persistent-xml FILE``: the definitions the target will receive.

virsh reads both files on the machine it runs on (as migcheck does: same machine, same paths) and
hands them to libvirt. The source's libvirt parses the --xml one in its Begin phase and refuses it
unless its ABI equals the running guest's (virDomainDefCheckABIStability, src/conf/domain_conf.c);
the target then starts the guest from it. --persistent-xml is only parsed and defined on the
target (with --persistent) as the guest's inactive configuration.

Reading is bounded (a file larger than any domain XML is refused unread) and the text is parsed
with defusedxml (migcheck.xmlsafe), like every XML migcheck reads from a host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from migcheck.facts.models import Domain
from migcheck.flags import MigrationFlags
from migcheck.xmlsafe import MAX_XML_BYTES, parse_xml


@dataclass
class XmlFile:
    """One XML file named on the command line: its text and parsed forms, or why there are none."""

    flag: str  # "--xml" or "--persistent-xml"
    path: str
    text: str | None = None
    root: Element | None = None
    domain: Domain | None = None
    error: str | None = None


@dataclass
class MigrationXml:
    xml: XmlFile | None = None
    persistent: XmlFile | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def domain(self) -> Domain | None:
        """The parsed --xml definition (what the target runs), or None."""
        return self.xml.domain if self.xml is not None else None


def read_xml_file(flag: str, path: str) -> XmlFile:
    """Read and parse one file; a missing, oversized or unparsable file is an XmlFile with an error."""
    from migcheck.facts.domain_xml import parse_domain_xml

    out = XmlFile(flag=flag, path=path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        out.error = f"Failed to open file '{path}': {exc.strerror or exc}"
        return out
    if len(data) > MAX_XML_BYTES:
        out.error = f"{path} is larger than {MAX_XML_BYTES} bytes: no domain XML is"
        return out
    out.text = data.decode("utf-8", "replace")
    try:
        out.root = parse_xml(out.text, f"{flag} {path}")
        if out.root.tag != "domain":
            raise ValueError(f"expected <domain>, got <{out.root.tag}>")
        out.domain = parse_domain_xml(out.text)
    except Exception as exc:  # noqa: BLE001 - any refusal of the document is the finding
        out.error = f"{path}: {exc}"
        out.domain = None
    return out


def load_migration_xml(flags: MigrationFlags) -> MigrationXml | None:
    """The files --xml and --persistent-xml name, read from this machine; None when neither is given."""
    if not flags.xml and not flags.persistent_xml:
        return None
    mx = MigrationXml()
    if flags.xml:
        mx.xml = read_xml_file("--xml", flags.xml)
    if flags.persistent_xml:
        mx.persistent = read_xml_file("--persistent-xml", flags.persistent_xml)
    return mx


# ------------------------------------------------------------------ ABI stability, as libvirt judges it


def _text(root: Element, path: str) -> str | None:
    el = root.find(path)
    return el.text.strip() if el is not None and el.text else None


def _kib(root: Element, path: str) -> int | None:
    """A size element in KiB (libvirt's live XML always writes KiB; a user's XML may use another unit)."""
    from migcheck.facts.domain_xml import to_kib

    el = root.find(path)
    if el is None or not el.text:
        return None
    return to_kib(el.text.strip(), el.get("unit"), where=f"<{path}>")


def _vcpus(root: Element) -> tuple[int | None, int | None]:
    el = root.find("vcpu")
    if el is None or not el.text or not el.text.strip().isdigit():
        return None, None
    top = int(el.text.strip())
    current = el.get("current")
    return top, int(current) if current and current.isdigit() else top


def _machine(root: Element, aliases: dict[str, str]) -> str | None:
    el = root.find("os/type")
    machine = el.get("machine") if el is not None else None
    return aliases.get(machine, machine) if machine else None


def abi_differences(running: Element, dest: Element, *, machine_aliases: dict[str, str] | None = None,
                    dname: str | None = None) -> list[str]:
    """What virDomainDefCheckABIStability would say of dest against the running guest, in libvirt's words
    (libvirt 9.0's texts, without the "unsupported configuration: " prefix), first difference first.

    Only what both documents state is compared: a user's XML without <address> elements gets them assigned
    as the running guest's were, a machine alias ('q35') expands to the source's canonical machine."""
    aliases = machine_aliases or {}
    out: list[str] = []

    def differ(what: str, a, b, quote: bool = False) -> None:
        if a is not None and b is not None and a != b:
            q = "'" if quote else ""
            out.append(f"Target {what} {q}{b}{q} does not match source {q}{a}{q}")

    differ("domain virt type", running.get("type"), dest.get("type"))
    differ("domain uuid", _text(running, "uuid"), _text(dest, "uuid"))
    if not dname:
        differ("domain name", _text(running, "name"), _text(dest, "name"), quote=True)
    differ("domain max memory", _kib(running, "memory"), _kib(dest, "memory"))
    r_max, r_cur = _vcpus(running)
    d_max, d_cur = _vcpus(dest)
    differ("domain vCPU max", r_max, d_max)
    if r_max == d_max:
        differ("domain vCPU count", r_cur, d_cur)
    differ("domain OS type", _text(running, "os/type"), _text(dest, "os/type"))
    r_os, d_os = running.find("os/type"), dest.find("os/type")
    if r_os is not None and d_os is not None:
        differ("domain architecture", r_os.get("arch"), d_os.get("arch"))
    differ("domain machine type", _machine(running, aliases), _machine(dest, aliases))
    r_disks, d_disks = running.findall("devices/disk"), dest.findall("devices/disk")
    if len(r_disks) != len(d_disks):
        out.append(f"Target domain disk count {len(d_disks)} does not match source {len(r_disks)}")
    else:
        for rd, dd in zip(r_disks, d_disks):
            differ("disk device", rd.get("device", "disk"), dd.get("device", "disk"))
            rt, dt = rd.find("target"), dd.find("target")
            if rt is not None and dt is not None:
                differ("disk bus", rt.get("bus"), dt.get("bus"))
                differ("disk", rt.get("dev"), dt.get("dev"))
    r_nics, d_nics = running.findall("devices/interface"), dest.findall("devices/interface")
    if len(r_nics) != len(d_nics):
        out.append(f"Target domain net card count {len(d_nics)} does not match source {len(r_nics)}")
    else:
        for rn, dn in zip(r_nics, d_nics):
            rm, dm = rn.find("mac"), dn.find("mac")
            if rm is not None and dm is not None:
                differ("network card mac", (rm.get("address") or "").lower(), (dm.get("address") or "").lower())
            rmod, dmod = rn.find("model"), dn.find("model")
            if rmod is not None and dmod is not None:
                differ("network card model", rmod.get("type"), dmod.get("type"))
    return out
