"""Gather raw facts from a host, each once, over its open connections (probe/session.py).

probe/pair.py runs these for a source and a target at once; probe_host below
for one host (``migcheck probe``).  A fact that cannot be gathered is
recorded in ``RawHost.errors`` (and the checks that need it say "unknown"); a
host that cannot be reached at all raises :class:`ProbeError` with one line
naming the host and what to do.
"""

from __future__ import annotations

import re
from typing import Callable

import libvirt

from migcheck.connectors.files import MAX_FILE_BYTES
from migcheck.connectors.hostspec import HostTarget, redact
from migcheck.connectors.libvirt_conn import LibvirtError, error_text
from migcheck.connectors.ssh import SshError
from migcheck.facts.capabilities_xml import parse_domain_capabilities_xml
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.facts.models import Domain
from migcheck.facts.qemu_cmdline import MAX_CMDLINE_BYTES, decode_proc_cmdline
from migcheck.facts.hostfiles import HOST_FILES
from migcheck.facts.procfs import CPUINFO
from migcheck.probe.answers import Answer, asked
from migcheck.probe.raw import (
    CpuCompareAnswer,
    NameAnswer,
    NetworkInfo,
    PathStat,
    PeerDomain,
    PoolInfo,
    RawDomain,
    RawHost,
    SecretInfo,
    UsbDevice,
    cpu_key,
    domcaps_key,
)
from migcheck.probe.session import (  # noqa: F401 - ProbeError, ProbeOptions, HostSession: imported from here too
    HostSession,
    HostWorker,
    ProbeError,
    ProbeOptions,
    deadline_join,
    raise_failure,
    scrubbed,
    stage,
)
from migcheck.xmlsafe import parse_xml

LOG_TAIL_BYTES = 256 * 1024
_LOG_START = re.compile(rb"^.*starting up libvirt version", re.M)


def _fact(raw: RawHost, name: str, fn: Callable[[], object]) -> object | None:
    """Run one fact-gathering call; on failure record why under ``name``."""
    answer = asked(name, fn)
    raw.errors.update(answer.errors)
    return answer.value


def gather_host(session: HostSession, raw: RawHost) -> None:
    conn = session.conn
    raw.hostname = _fact(raw, "hostname", conn.getHostname)
    raw.libvirt_version = _fact(raw, "libvirt_version", conn.getLibVersion)
    raw.qemu_version = _fact(raw, "qemu_version", conn.getVersion)
    raw.capabilities_xml = _fact(raw, "capabilities", conn.getCapabilities)
    if session.ssh_error:
        raw.errors["ssh"] = session.ssh_error


# Listening TCP sockets (TCP_FILES): read on a target only for a guest that binds fixed TCP ports (a TCP
# console, fixed VNC/SPICE ports), since a busy host's tables run to megabytes. The audit reads them once
# per host.
def needs_tcp_listeners(dom: Domain) -> bool:
    """Whether the target's listening sockets matter for this guest (paths.chardev-tcp-bind, graphics-listen)."""
    return (any(c.type == "tcp" and c.mode == "bind" for c in dom.chardevs)
            or any(g.fixed_ports for g in dom.graphics if g.type in ("vnc", "spice")))


def gather_host_files(session: HostSession, raw: RawHost, paths: tuple[str, ...] = HOST_FILES) -> None:
    """Small /proc, /sys and config files the checks read; absent ones are simply not recorded."""
    files = session.files
    if files is None:
        raw.errors["host_files"] = session.ssh_error or "no SSH access to the host"
        for name in ("meminfo", "mountinfo", "cpu_online"):
            raw.errors[name] = raw.errors["host_files"]
        return
    for path in paths:
        try:
            if path in FIRST_BLOCK_ONLY:
                _read_first_block(files, raw, path, FIRST_BLOCK_ONLY[path])
                continue
            data = files.read(path, limit=MAX_FILE_BYTES + 1)  # one byte more: a truncated copy is no fact
            if len(data) > MAX_FILE_BYTES:
                raw.errors[f"file:{path}"] = f"{path} is larger than {MAX_FILE_BYTES} bytes: not reading a part of it"
                continue
            raw.files[path] = data.decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            if getattr(exc, "errno", None) == 2:
                continue
            raw.errors[f"file:{path}"] = f"{type(exc).__name__}: {exc}"


# Files of which the checks read only the first block (up to the first empty line): /proc/cpuinfo's
# first processor. Reading no more keeps a host with hundreds of CPUs from generating all their blocks.
FIRST_BLOCK_ONLY = {CPUINFO: 32 * 1024}


def _read_first_block(files, raw: RawHost, path: str, limit: int) -> None:
    data = files.read(path, limit=limit).decode("utf-8", "replace")
    end = data.find("\n\n")
    if end < 0 and len(data) >= limit:
        raw.errors[f"file:{path}"] = f"{path}: no end of its first block in {limit} bytes"
        return
    raw.files[path] = data[:end + 1] if end >= 0 else data


USB_DEVICES = "/sys/bus/usb/devices"


def needs_usb_devices(dom: Domain) -> bool:
    """Whether the target's USB devices matter for this guest (devices.usb-device-missing)."""
    return any(h.mode == "subsystem" and h.type == "usb" for h in dom.hostdevs)


def gather_usb_devices(session: HostSession, raw: RawHost) -> None:
    """The host's USB devices (vendor, product, bus, device) from sysfs; none without a USB bus."""
    files = session.files
    if files is None:
        raw.errors["usb_devices"] = session.ssh_error or "no SSH access to the host"
        return

    def devices() -> list[UsbDevice]:
        try:
            names = files.listdir(USB_DEVICES)
        except FileNotFoundError:
            return []  # no USB bus at all
        out = []
        for name in sorted(names):
            if ":" in name:
                continue  # an interface (1-1:1.0), not a device
            values = []
            for attr in ("idVendor", "idProduct", "busnum", "devnum"):
                try:
                    values.append(files.read(f"{USB_DEVICES}/{name}/{attr}", 32).decode("ascii", "replace").strip())
                except FileNotFoundError:
                    break
            if len(values) == 4 and values[2].isdigit() and values[3].isdigit():
                out.append(UsbDevice(vendor=values[0].lower(), product=values[1].lower(), bus=int(values[2]),
                                     device=int(values[3])))
        return out

    raw.usb_devices = _fact(raw, "usb_devices", devices)


def gather_target_objects(session: HostSession, raw: RawHost) -> None:
    """libvirt objects a guest may reference: networks, nwfilters, secrets, storage pools; free memory."""
    conn = session.conn

    def networks() -> list[NetworkInfo]:
        out = []
        for net in conn.listAllNetworks(0):
            portgroups, bridge, mode, devs = [], None, None, []
            try:
                root = parse_xml(net.XMLDesc(0), "network XML")
                portgroups = [pg.get("name") for pg in root.findall("portgroup") if pg.get("name")]
                br = root.find("bridge")
                bridge = br.get("name") if br is not None else None
                fwd = root.find("forward")
                if fwd is not None:
                    mode = fwd.get("mode", "nat")
                    devs = [i.get("dev") for i in fwd.findall("interface") if i.get("dev")]
            except (libvirt.libvirtError, ValueError):
                pass
            out.append(NetworkInfo(name=net.name(), active=bool(net.isActive()), portgroups=portgroups, bridge=bridge,
                                   forward_mode=mode, forward_devs=devs))
        return out

    def pools() -> list[PoolInfo]:
        out = []
        for pool in conn.listAllStoragePools(0):
            active = bool(pool.isActive())
            ptype = path = None
            try:
                root = parse_xml(pool.XMLDesc(0), "pool XML")
                ptype = root.get("type")
                path = (root.findtext("target/path") or "").strip() or None
            except (libvirt.libvirtError, ValueError):
                pass
            available = pool.info()[3] if active else None
            out.append(PoolInfo(name=pool.name(), active=active, type=ptype, target_path=path, available=available))
        return out

    def secrets() -> list[SecretInfo]:
        return [SecretInfo(uuid=s.UUIDString(), usage_type=str(s.usageType()), usage_id=s.usageID())
                for s in conn.listAllSecrets(0)]

    raw.networks = _fact(raw, "networks", networks)
    raw.nwfilters = _fact(raw, "nwfilters", lambda: [f.name() for f in conn.listAllNWFilters(0)])
    raw.secrets = _fact(raw, "secrets", secrets)
    raw.pools = _fact(raw, "pools", pools)
    raw.free_memory = _fact(raw, "free_memory", conn.getFreeMemory)


def _tail_from_last_start(data: bytes) -> bytes:
    starts = list(_LOG_START.finditer(data))
    return data[starts[-1].start():][:16384] if starts else data[-16384:]


def gather_guest(session: HostSession, raw: RawHost, name: str) -> tuple[str, int, int]:
    """The guest's facts into raw.domain; its identity (for :func:`recheck_guest` at the end of the probe)."""
    conn = session.conn
    stage(f"gathering the guest {name!r}")
    try:
        dom = conn.lookupByName(name)
        before = _identity(dom)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ProbeError(session.target.spec, f"no domain named {name!r} (check the name with: virsh list --all)") from None
        raise ProbeError(session.target.spec, f"looking up {name!r}: {error_text(exc)}") from None
    rd = RawDomain(name=name)
    raw.domain = rd
    rd.uuid = _fact(raw, "uuid", dom.UUIDString)
    state = _fact(raw, "state", dom.state)
    if state:
        rd.state, rd.state_reason = state[0], state[1]
    rd.persistent = _fact(raw, "persistent", lambda: bool(dom.isPersistent()))
    rd.live_xml = _fact(raw, "domain_xml", lambda: dom.XMLDesc(0))
    if rd.persistent:
        rd.inactive_xml = _fact(raw, "domain_inactive_xml", lambda: dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if rd.state in (1, 2, 3, 4, 7):
        info = _fact(raw, "job", dom.jobInfo)
        rd.job_type = info[0] if info else None
    if rd.state == 3:  # paused: did a dump leave QEMU in 'postmigrate'? (state.postmigrate-paused)
        # KEEP_COMPLETED: without it, reading the statistics discards them
        rd.completed_job = _fact(raw, "completed_job", lambda: dict(dom.jobStats(
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED)))
    rd.snapshot_count = _fact(raw, "snapshots", lambda: dom.snapshotNum(0))
    if rd.state in (1, 2, 3, 4, 7) and rd.live_xml:
        rd.block_jobs = _fact(raw, "block_jobs", lambda: _block_jobs(dom, rd.live_xml)) or []
    if rd.live_xml is None:
        _same_guest_or_fail(session, name, before)
        raise ProbeError(session.target.spec, f"could not read the XML of {name!r}: {raw.errors.get('domain_xml')}")
    if rd.state in (1, 2, 3, 4, 7):
        _gather_running_qemu(session, raw, rd)
        if session.options.qmp:
            rd.qmp_blocked_reasons = _fact(raw, "qmp", lambda: query_migrate_blockers(session, name))
            if rd.state == 3:
                rd.qmp_status = _fact(raw, "qmp_status", lambda: query_status(session, name))
    _same_guest_or_fail(session, name, before)
    return before


def recheck_guest(session: HostSession, name: str, before: tuple[str, int, int]) -> None:
    """At the end of the source's probe: the guest its facts describe is still there and the same
    (destroyed, restarted or migrated away after its facts were read: ProbeError). One lookup, one state."""
    stage(f"checking that the guest {name!r} did not change")
    _same_guest_or_fail(session, name, before)


def guests_changed(conn, identities: dict[str, tuple[str, int, int]]) -> dict[str, str]:
    """The fleet's version of :func:`recheck_guest`, for all of a host's guests with one listAllDomains:
    guest -> why it is not the guest that was probed (gone, another UUID, stopped or restarted)."""
    now = {d.name(): (d.UUIDString(), d.ID()) for d in conn.listAllDomains(0)}
    out = {}
    for name, (uuid, dom_id, _state) in identities.items():
        if name not in now:
            out[name] = "disappeared while it was being probed (stopped or undefined meanwhile)"
        elif now[name][0] != uuid:
            out[name] = "changed while it was being probed (it is another guest now (other UUID))"
        elif now[name][1] != dom_id:
            what = ("it is not running any more: stopped or migrated away" if now[name][1] < 0
                    else "it started" if dom_id < 0 else "it was restarted")
            out[name] = f"changed while it was being probed ({what})"
    return {name: f"the guest {name!r} {why}: run the audit again" for name, why in out.items()}


def _identity(dom) -> tuple[str, int, int]:
    """What must not change while a guest is probed: UUID, domain id (a new one on every start), state."""
    return dom.UUIDString(), dom.ID(), dom.state()[0]


_STATES = {0: "no state", 1: "running", 2: "blocked", 3: "paused", 4: "shutting down", 5: "shut off",
           6: "crashed", 7: "suspended"}


def _same_guest_or_fail(session: HostSession, name: str, before: tuple[str, int, int]) -> None:
    """Facts read in several steps describe one guest only if it stayed the same guest meanwhile."""
    try:
        after = _identity(session.conn.lookupByName(name))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ProbeError(session.target.spec, f"the guest {name!r} disappeared while it was being probed "
                                                  "(stopped or undefined meanwhile): run migcheck again") from None
        raise ProbeError(session.target.spec, f"looking up {name!r} again: {error_text(exc)}") from None
    if after != before:
        what = ("it is another guest now (other UUID)" if after[0] != before[0] else
                f"it was {_STATES.get(before[2], before[2])}, now {_STATES.get(after[2], after[2])}"
                + (" (restarted)" if after[1] != before[1] and after[1] > 0 and before[1] > 0 else ""))
        raise ProbeError(session.target.spec, f"the guest {name!r} changed while it was being probed ({what}): "
                                              "run migcheck again")


def query_migrate_blockers(session: HostSession, name: str) -> list[str]:
    """QEMU's own list of migration blockers (query-migrate, QEMU >= 6.0), asked through libvirt.

    libvirt marks the guest "tainted: custom-monitor" for this; hence opt-in.
    """
    import json

    import libvirt_qemu

    dom = session.query_conn.lookupByName(name)
    answer = json.loads(libvirt_qemu.qemuMonitorCommand(dom, '{"execute":"query-migrate"}', 0))
    if "error" in answer:
        raise ValueError(f"QEMU answered: {answer['error'].get('desc', answer['error'])}")
    result = answer.get("return", {})
    if "blocked-reasons" not in result and session.conn.getVersion() < 6_000_000:
        raise ValueError("QEMU older than 6.0 does not report blocked-reasons")
    return [str(r) for r in result.get("blocked-reasons", [])]


def query_status(session: HostSession, name: str) -> str:
    """QEMU's runstate (query-status), asked through libvirt like query_migrate_blockers (--qmp only)."""
    import json

    import libvirt_qemu

    dom = session.query_conn.lookupByName(name)
    answer = json.loads(libvirt_qemu.qemuMonitorCommand(dom, '{"execute":"query-status"}', 0))
    if "error" in answer:
        raise ValueError(f"QEMU answered: {answer['error'].get('desc', answer['error'])}")
    return str(answer.get("return", {}).get("status", ""))

def _block_jobs(dom, live_xml: str) -> list[str]:
    targets = [d.target for d in parse_domain_xml(live_xml).disks if d.target]
    return [t for t in targets if dom.blockJobInfo(t, 0)]


_SECURE_ATTR = re.compile(r"""\b(passwd|password|passphrase)=('[^']*'|"[^"]*")""")
_COOKIE = re.compile(r"(<cookie\b[^>]*>)[^<]*(</cookie>)")


def redact_secure_xml(text: str) -> str:
    """libvirt's status XML is its "secure" form: graphics passwords and disk cookies in clear.

    migcheck needs neither; without them a saved probe and -v output are safe to share.
    """
    text = _SECURE_ATTR.sub(lambda m: f"{m.group(1)}={m.group(2)[0]}***{m.group(2)[0]}", text)
    return _COOKIE.sub(r"\1***\2", text)


def _gather_running_qemu(session: HostSession, raw: RawHost, rd: RawDomain) -> None:
    files = session.files
    if files is None:
        why = session.ssh_error or "no SSH access to the host"
        for fact in ("cmdline", "status_xml", "qemu_log"):
            raw.errors[fact] = why
        return
    if "/" in rd.name or "\0" in rd.name:
        raw.errors["cmdline"] = "the domain name contains '/': not reading files named after it"
        return
    run_dir = "/run/libvirt/qemu"
    rd.status_xml = _fact(raw, "status_xml",
                          lambda: redact_secure_xml(files.read(f"{run_dir}/{rd.name}.xml").decode("utf-8")))

    def pid() -> int:
        # The status XML names QEMU's pid. Prefer it: libvirt 9 XML-escapes the guest name in the
        # pid file's name ("a'b" -> a&apos;b.pid), so that file is not found for such names.
        try:
            text = parse_xml(rd.status_xml, "status XML").get("pid", "") if rd.status_xml else ""
        except ValueError:
            text = ""
        if not (text.isascii() and text.isdigit()):
            text = files.read(f"{run_dir}/{rd.name}.pid", 64).decode("ascii", "replace").strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"pid file holds {text[:20]!r}, not a process id")
        return int(text)

    qemu_pid = _fact(raw, "cmdline", pid)
    if qemu_pid is not None:
        rd.cmdline = _fact(raw, "cmdline", lambda: decode_proc_cmdline(
            files.read(f"/proc/{qemu_pid}/cmdline", MAX_CMDLINE_BYTES + 1)))  # +1: too long is an error, not cut
        rd.exe_link = _fact(raw, "qemu_exe", lambda: files.readlink(f"/proc/{qemu_pid}/exe"))

    def log_tail() -> str:
        path = f"/var/log/libvirt/qemu/{rd.name}.log"
        size = files.stat(path).size or 0
        data = files.read(path, limit=LOG_TAIL_BYTES, offset=max(0, size - LOG_TAIL_BYTES))
        return _tail_from_last_start(data).decode("utf-8", "replace")

    rd.log_head = _fact(raw, "qemu_log", log_tail)


def ask_domcaps(session: HostSession, dom: Domain) -> Answer[str]:
    """Domain capabilities for the guest's emulator/arch/machine/virt type (falls back to the defaults)."""
    key = domcaps_key(dom.emulator, dom.arch, dom.machine, dom.virt_type)
    try:
        conn = session.query_conn
    except LibvirtError as exc:
        return Answer(None, {f"domcaps:{key}": str(exc)})
    try:
        return Answer(conn.getDomainCapabilities(dom.emulator, dom.arch, dom.machine, dom.virt_type, 0))
    except libvirt.libvirtError as exc:
        first = error_text(exc)
    try:  # e.g. the machine type or emulator does not exist here: the defaults still tell the CPU
        return Answer(conn.getDomainCapabilities(None, dom.arch, None, dom.virt_type, 0), {"domcaps_exact": first})
    except libvirt.libvirtError as exc:
        return Answer(None, {f"domcaps:{key}": f"{first}; with defaults: {error_text(exc)}"})


def gather_domcaps(session: HostSession, raw: RawHost, dom: Domain) -> None:
    """ask_domcaps, put into the record (under the guest's domcaps key)."""
    key = domcaps_key(dom.emulator, dom.arch, dom.machine, dom.virt_type)
    ask_domcaps(session, dom).into(raw.domcaps_xml, key, raw.errors)


_UNKNOWN_CPU_FEATURE = re.compile(r"unknown CPU feature:?\s*'?([\w.-]+)", re.I)
MAX_UNKNOWN_CPU_FEATURES = 64


_UNKNOWN_CPU_MODEL = re.compile(r"unknown CPU model:?\s*'?([\w.-]+)", re.I)


def expand_cpu(session: HostSession, dom: Domain, cpu_xml: str) -> str | None:
    """The CPU definition with every feature its model implies written out, as this host's libvirt knows the
    model (virConnectBaselineHypervisorCPU, EXPAND_FEATURES); None when it cannot say."""
    try:
        return session.query_conn.baselineHypervisorCPU(dom.emulator, dom.arch, dom.machine, dom.virt_type,
                                                        [cpu_xml], libvirt.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES)
    except (LibvirtError, libvirt.libvirtError):
        return None


def host_model_name(domcaps_xml: str | None) -> str | None:
    """The host's own host-model CPU name, from its domain capabilities (gather_domcaps)."""
    try:
        hm = parse_domain_capabilities_xml(domcaps_xml).host_model if domcaps_xml else None
    except ValueError:
        return None
    return hm.model if hm is not None and hm.model else None


def with_cpu_model(cpu_xml: str, model: str) -> str:
    """The definition with another <model> (its features kept)."""
    return re.sub(r"(<model\b[^>]*>)[^<]*(</model>)", lambda m: f"{m.group(1)}{model}{m.group(2)}", cpu_xml, count=1)


def ask_cpu(session: HostSession, dom: Domain, cpu_xml: str, expanded: str | Callable[[], str | None] | None = None,
            own_model: str | None = None) -> Answer[CpuCompareAnswer]:
    """A host's own verdict on a CPU definition (what Nova asks).

    An older libvirt stops at the first feature name it does not know ("Unknown
    CPU feature X"); the definition is then asked again without it, so the
    answer lists every unknown name and still judges the features it knows.
    One that does not know the model at all ("Unknown CPU model X", a CPU newer
    than that libvirt) is asked about `expanded` (the source's libvirt's writing
    of the definition with every feature of the model explicit) on `own_model`
    (this host's own host-model CPU, whose features it has): the answer then
    names the unknown model and features and judges every other feature.
    """
    try:
        conn = session.query_conn
    except LibvirtError as exc:
        return Answer(None, {"cpu_compare": str(exc)})
    unknown: list[str] = []
    xml = cpu_xml
    while True:
        try:
            result = conn.compareHypervisorCPU(
                None, dom.arch, None, dom.virt_type, xml, libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE
            )
            answer = CpuCompareAnswer(result=result)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            answer = CpuCompareAnswer(result=0 if code == libvirt.VIR_ERR_CPU_INCOMPATIBLE else -1,
                                      message=error_text(exc))
        model = _UNKNOWN_CPU_MODEL.search(answer.message) if answer.result < 0 else None
        if callable(expanded) and model is not None and own_model:
            expanded = expanded()  # asked only now, the model being unknown here
        if model is not None and expanded and own_model and model.group(1) not in unknown:
            unknown.append(model.group(1))
            xml = with_cpu_model(expanded, own_model)
            for name in unknown[:-1]:  # names already found unknown stay out
                xml = without_cpu_feature(xml, name)
            continue
        m = _UNKNOWN_CPU_FEATURE.search(answer.message) if answer.result < 0 else None
        if m is None or m.group(1) in unknown or len(unknown) >= MAX_UNKNOWN_CPU_FEATURES:
            break
        unknown.append(m.group(1))
        xml = without_cpu_feature(xml, m.group(1))
    answer.unknown_features = unknown
    return Answer(answer)


def compare_cpu(session: HostSession, raw: RawHost, dom: Domain, cpu_xml: str,
                expanded: str | Callable[[], str | None] | None = None, own_model: str | None = None) -> None:
    """ask_cpu, put into the record (under the definition's cpu_key)."""
    ask_cpu(session, dom, cpu_xml, expanded, own_model).into(raw.cpu_compare, cpu_key(cpu_xml), raw.errors)


def without_cpu_feature(cpu_xml: str, name: str) -> str:
    """The CPU definition without its <feature name=NAME> elements."""
    from migcheck.xmlsafe import to_text

    root = parse_xml(cpu_xml, "CPU definition")
    for feature in [f for f in root.findall("feature") if f.get("name") == name]:
        root.remove(feature)
    return to_text(root)


def gather_peers(session: HostSession, raw: RawHost) -> None:
    def peers() -> list[PeerDomain]:
        out = []
        for flag, active in ((libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE, True),
                             (libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE, False)):
            for d in session.conn.listAllDomains(flag):
                out.append(PeerDomain(name=d.name(), uuid=d.UUIDString(), active=active, persistent=not active))
        return out

    raw.peers = _fact(raw, "peers", peers) or []


def ask_path(session: HostSession, path: str) -> Answer[PathStat]:
    """A path's stat on the host (exists, directory, size, ...)."""
    files = session.files
    if files is None:
        return Answer(None, {"paths": session.ssh_error or "no SSH access"})
    return asked(f"path:{path}", lambda: files.stat(path))


def gather_paths(session: HostSession, raw: RawHost, paths: list[str]) -> None:
    """ask_path for each path, put into the record; without SSH, one error ("paths") for all of them."""
    if session.files is None:
        raw.errors.update(ask_path(session, "").errors)
        return
    for path in paths:
        ask_path(session, path).into(raw.paths, path, raw.errors)


def image_sources(dom: Domain) -> list[str]:
    """Disk sources whose first bytes tell the image format and size: files, and block devices (a qcow2 can
    live on one). The audit reads the same (audit/fleet.py)."""
    return [d.source for d in dom.disks if d.type in ("file", "block") and d.source]


def image_wanted(stat: PathStat | None) -> bool:
    """An image's header is read only where its path exists and is not a directory."""
    return stat is not None and stat.exists and not stat.is_dir


def ask_image(session: HostSession, path: str, stat: PathStat | None) -> Answer[str]:
    """The first bytes of a disk image (hex: format, virtual size), if ``stat`` says it is here; else no answer."""
    from migcheck.facts.image import HEADER_BYTES

    files = session.files
    if files is None or not image_wanted(stat):
        return Answer()
    answer = asked(f"image:{path}", lambda: files.read(path, limit=HEADER_BYTES))
    return Answer(answer.value.hex() if answer.value is not None else None, answer.errors)


def gather_image_headers(session: HostSession, raw: RawHost, dom: Domain) -> None:
    """ask_image for each disk image of the guest, by the stats already in the record."""
    for source in image_sources(dom):
        ask_image(session, source, raw.paths.get(source)).into(raw.image_headers, source, raw.errors)


RESOLVE_TIMEOUT = 10.0  # seconds for one getent on a host (a resolver's own timeouts stay below: 5 s x 2)


def gather_resolution(session: HostSession, raw: RawHost, names: list[str]) -> None:
    """Ask the host's own resolver about each name (``getent ahosts NAME`` over SSH, argv quoted).

    getent goes through the host's nsswitch.conf (files, DNS, ...), as libvirt's and QEMU's
    getaddrinfo do. A name that is not a plain host name is not sent: recorded as an error.
    """
    import socket

    from migcheck.facts.migration_address import parse_getent_ahosts, valid_host_name

    raw.resolved = {}
    for name in names:
        if not valid_host_name(name):
            raw.errors[f"resolve:{name}"] = "not a plain host name: not handed to the host's resolver"
            continue
        if session.target.local:
            try:
                infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
                addrs = list(dict.fromkeys(i[4][0] for i in infos))
                raw.resolved[name] = NameAnswer(name=name, addresses=addrs, found=True)
            except socket.gaierror as exc:
                if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                    raw.resolved[name] = NameAnswer(name=name)
                else:
                    raw.errors[f"resolve:{name}"] = f"getaddrinfo: {exc.strerror}"
            continue
        ssh = session.ssh
        if ssh is None:
            raw.errors[f"resolve:{name}"] = session.ssh_error or "no SSH access to the host"
            continue
        try:
            status, out = ssh.run(["getent", "ahosts", "--", name], timeout=RESOLVE_TIMEOUT)
        except (SshError, OSError) as exc:
            raw.errors[f"resolve:{name}"] = f"getent ahosts: {exc}"
            continue
        if status == 0:
            raw.resolved[name] = NameAnswer(name=name, addresses=parse_getent_ahosts(out), found=True)
        elif status == 2:  # getent: the key was not found (also when the DNS server did not answer)
            raw.resolved[name] = NameAnswer(name=name)
        else:
            raw.errors[f"resolve:{name}"] = f"getent ahosts exited {status} (no getent on the host?)"


def probe_host(target: HostTarget, vm: str | None, options: ProbeOptions) -> RawHost:
    """Probe one host (``migcheck probe``): host facts, and the guest's if a VM is named."""
    raw = RawHost(spec=target.spec, uri=redact(target.uri))

    def work() -> RawHost:
        s = HostSession(target, options)
        try:
            s.open()
            gather_host(s, raw)
            gather_peers(s, raw)
            gather_host_files(s, raw)
            gather_target_objects(s, raw)
            if vm:
                gather_guest(s, raw, vm)
                gather_domcaps(s, raw, parse_domain_xml(raw.domain.live_xml))
            return raw
        finally:
            s.close()

    worker = HostWorker(work)
    worker.start()
    deadline_join([(worker, target)], options.timeout)
    raise_failure(worker, target)
    return scrubbed(raw, target)
