"""Device checks: what libvirt (qemuMigrationSrcIsAllowed) and QEMU refuse to migrate."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check, condition
from migcheck.probe.plan import TARGET_PATHS, Question
from migcheck.report.model import Severity

# QEMU block drivers that add a migration blocker when they open an image (read-only or not); vvfat only
# when writable. cloop, dmg and bochs are read-only formats without a blocker.
SWTPM_PATHS = ("/usr/bin/swtpm", "/usr/local/bin/swtpm")  # libvirt finds swtpm on its PATH
SWTPM_STATE_DIR = "/var/lib/libvirt/swtpm"  # libvirt 9.0: <dir>/<domain uuid>/tpm2 (not configurable there)
TPM_SHARED_REFUSED = "the running swtpm does not support migration with shared storage"
NOT_MIGRATABLE_FORMATS = {"vdi", "vpc", "vhdx", "vmdk", "qcow", "parallels"}


def _live_only(ctx: CheckContext) -> None:
    """These refusals are about a running guest: an offline migration moves only the XML."""
    if ctx.flags.offline:
        raise NotApplicable


@check("devices.hostdev", Severity.BLOCK, "PCI, SCSI or mdev host devices assigned to the guest",
       explains={180: r"hostdev|VFIO"})
def hostdev(ctx: CheckContext):
    """USB host devices may migrate (they are re-attached by vendor/product); PCI/SCSI/mdev may not."""
    _live_only(ctx)
    out = []
    for hd in ctx.domain.hostdevs:
        if hd.teaming == "transient":
            continue  # the VF half of a failover pair: libvirt unplugs it for the migration
        if hd.mode == "subsystem" and hd.type in ("pci", "scsi", "scsi_host", "mdev"):
            what = "vhost-scsi" if hd.type == "scsi_host" else hd.type
            out.append(Hit(
                message=f"a {what} host device is assigned ({hd.summary or 'no address'}): libvirt/QEMU refuse "
                        f"\"cannot migrate a domain with <hostdev mode='subsystem' type='{hd.type}'>\"",
                evidence=[f"<hostdev mode='{hd.mode}' type='{hd.type}'> {hd.summary}"],
                fix="detach it before migrating (virsh detach-device --live) and attach the target's equivalent "
                    "afterwards; for SR-IOV NICs use a transient teaming failover pair"))
    return out


@condition("tpm-emulator")
def _tpm_emulator(dom, flags, target=None) -> bool:
    return not flags.offline and any(t.backend == "emulator" for t in dom.tpm_devices)


@condition("usb-hostdevs")
def _usb_hostdevs(dom, flags, target=None) -> bool:
    return any(h.mode == "subsystem" and h.type == "usb" for h in dom.hostdevs)


@check("devices.usb-device-missing", Severity.BLOCK,
       "a USB host device the guest uses is not on the target (or cannot be told apart there)",
       reads=("usb_devices?usb-hostdevs",))
def usb_device_missing(ctx: CheckContext):
    """libvirt allows USB host devices in a migration and looks the device up again on the target, by
    vendor/product and/or bus/device (virusb.c): none there fails "Did not find USB device VVVV:PPPP"
    (or "bus:B device:D"); several matching a vendor/product without an address fail "Found multiple
    USB devices for VVVV:PPPP". With startupPolicy='optional' libvirt drops a missing device instead.
    Not proven in the lab: this machine has no USB devices, so such a guest cannot even start here."""
    _live_only(ctx)
    usb = [h for h in ctx.domain.hostdevs if h.mode == "subsystem" and h.type == "usb"]
    if not usb:
        raise NotApplicable
    devices = ctx.target.usb_devices
    if devices is None:
        raise FactMissing(f"the USB devices of {ctx.target.spec}: "
                          f"{ctx.target.errors.get('usb_devices', 'not read')}")
    out = []
    for h in usb:
        if h.startup_policy == "optional":
            continue
        found = [d for d in devices
                 if (h.usb_vendor is None or d.vendor == h.usb_vendor)
                 and (h.usb_product is None or d.product == h.usb_product)
                 and (h.usb_bus is None or d.bus == h.usb_bus)
                 and (h.usb_device is None or d.device == h.usb_device)]
        ident = (f"{h.usb_vendor}:{h.usb_product}" if h.usb_vendor else f"bus:{h.usb_bus} device:{h.usb_device}")
        there = ", ".join(f"{d.vendor}:{d.product} (bus {d.bus} device {d.device})" for d in devices) or "none"
        if not found:
            out.append(Hit(message=f"the guest's USB device {ident} is not on the target: \"Did not find USB device "
                                   f"{ident}\"",
                           evidence=[f"<hostdev type='usb'> {h.summary}", f"{ctx.target.spec}: USB devices: {there}"],
                           fix="plug the device (a licence dongle, say) into the target, detach it from the guest "
                               "before migrating, or mark it startupPolicy='optional'"))
        elif len(found) > 1 and h.usb_bus is None:
            out.append(Hit(message=f"the target has {len(found)} USB devices {ident}: \"Found multiple USB devices "
                                   f"for {ident}, use <address> to specify one\"",
                           evidence=[f"<hostdev type='usb'> {h.summary}",
                                     f"{ctx.target.spec}: " + ", ".join(f"bus {d.bus} device {d.device}" for d in found)],
                           fix="give the hostdev an <address bus= device=> that names the target's device "
                               "(migrate with --xml)"))
    return out


@check("devices.hostdev-interface", Severity.BLOCK, "an <interface type='hostdev'> or 'vdpa' (SR-IOV VF, vDPA)")
def hostdev_interface(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"<interface type='{i.type}'> ({i.mac or 'no MAC'}) cannot be migrated",
                evidence=[f"interface type={i.type} mac={i.mac}"],
                fix="detach the interface before migrating, or use a virtio NIC with a teaming failover VF")
            for i in ctx.domain.interfaces if i.type in ("hostdev", "vdpa") and i.teaming != "transient"]


@check("devices.shmem-not-master", Severity.BLOCK, "a shared-memory device without role='master'",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_shmem_without_master_role_is_blocked_and_fails",
       ),
       explains={130: r"shmem device|ivshmem|feature 'peer mode'"})
def shmem_not_master(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0, QEMU 7.2): ivshmem-plain without role or with role='peer' fails with QEMU's
    blocker "cannot migrate domain: Migration is disabled when using feature 'peer mode' in device 'ivshmem'";
    role='master' migrates."""
    _live_only(ctx)
    return [Hit(message=f"shmem device '{s['name']}' is not role='master': \"cannot migrate domain: Migration is "
                        "disabled when using feature 'peer mode' in device 'ivshmem'\" (older libvirt: 'only shmem "
                        "with role='master' can be migrated')",
                evidence=[f"<shmem name='{s['name']}' role='{s['role'] or '(default)'}'> model {s['model'] or '?'}"],
                fix="give the guest that keeps the memory role='master' (the others 'peer' cannot move), "
                    "or detach the device")
            for s in ctx.domain.shmems if s["role"] != "master"]


@check("devices.virtiofs", Severity.BLOCK, "a virtiofs filesystem (libvirt of this era refuses it)",
       explains={150: r"virtiofs"})
def virtiofs(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"virtiofs share '{f['target']}': 'migration with virtiofs device is not supported'",
                evidence=[f"<filesystem> driver virtiofs source {f['source']} target {f['target']}"],
                fix="unmount it in the guest and detach it before migrating (or shut the guest down and "
                    "migrate --offline)")
            for f in ctx.domain.filesystems if f["driver"] == "virtiofs"]


@check("devices.9p-share", Severity.RISK, "a 9p (virtio-9p) filesystem: QEMU blocks once the guest mounts it",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_9p_share_not_mounted_is_risky_and_migrates",
           "tests/lab/test_catalogue_storage_devices.py::test_9p_share_mounted_by_the_guest_is_risky_and_fails",
       ),
       explains={160: r"VirtFS export path"})
def ninep_share(ctx: CheckContext):
    """QEMU adds 'Migration is disabled when VirtFS export path ... is mounted' only after the guest mounts it.

    Risky, not blocked: whether the guest mounted the share is guest state the host cannot see. Proven in the
    lab on both sides: a guest without an OS (share never mounted) migrates; a guest that boots and mounts it
    (tests/lab/bootable.py) fails with QEMU's text."""
    _live_only(ctx)
    return [Hit(message=f"9p share '{f['target']}' blocks migration if the guest has it mounted "
                        "(QEMU: 'Migration is disabled when VirtFS export path ... is mounted')",
                evidence=[f"<filesystem type='{f['type']}'> driver {f['driver']} source {f['source']} "
                          f"target {f['target']}", "whether the guest mounted it cannot be seen from the host"],
                fix="unmount the share inside the guest before migrating (migcheck --qmp asks QEMU directly)")
            for f in ctx.domain.filesystems if f["driver"] in ("path", "handle", "loop") and f["type"] == "mount"]


@check("devices.filesystem-source-missing", Severity.BLOCK,
       "a passthrough <filesystem> whose source directory is missing on the target", proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_9p_share_dir_on_the_source_only_is_blocked_and_fails",
       ),
       explains={400: r"failed to open '.*': No such file"},
       asks=(Question(TARGET_PATHS, lambda dom, host: [f["source"] for f in dom.filesystems
                                                      if f["type"] == "mount" and f["source"]]),),
       reads=("paths",))
def filesystem_source_missing(ctx: CheckContext):
    """The target QEMU opens the exported directory when it starts (9p); if it is missing there it fails with
    "cannot initialize fsdev '...': failed to open '...': No such file or directory" (proven in the lab).
    virtiofs shares are refused earlier (devices.virtiofs)."""
    _live_only(ctx)
    out = []
    for f in ctx.domain.filesystems:
        src = f["source"]
        if f["type"] != "mount" or f["driver"] == "virtiofs" or not src.startswith("/"):
            continue
        stat = ctx.target.paths.get(src)
        if stat is None:
            out.append(Hit(message=f"could not check the shared directory {src} on the target",
                           evidence=[ctx.target.errors.get("paths", "") or f"{src} not probed"],
                           fix="allow SSH access to the target", severity=Severity.UNKNOWN))
        elif not stat.exists:
            out.append(Hit(message=f"filesystem share '{f['target']}' exports {src}, which does not exist on the "
                                   f"target: \"cannot initialize fsdev ...: failed to open '{src}': No such file or "
                                   "directory\"",
                           evidence=[f"<filesystem> source dir {src} target {f['target']}",
                                     f"{ctx.target.spec}: {src} not found"],
                           fix=f"create {src} on the target (with the same content, if the guest uses it), or "
                               "detach the share before migrating"))
    return out


@check("devices.transient-disk", Severity.BLOCK, "a <transient/> disk", proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_transient_disk_is_blocked_and_fails",
       ),
       explains={170: r"transient disk"})
def transient_disk(ctx: CheckContext):
    """libvirt 9.0 starts such a guest on a qcow2 overlay (PATH.TRANSIENT-NAME) and refuses every live
    migration (plain, --copy-storage-all, --unsafe) with "Requested operation is not valid: migration with
    transient disk is not supported" (proven in the lab)."""
    _live_only(ctx)
    return [Hit(message=f"disk {d.target} is transient: 'migration with transient disk is not supported'",
                evidence=[f"disk {d.target} source {d.source} has <transient/>"],
                fix="shut the guest down and migrate --offline, or remove <transient/> (cold change)")
            for d in ctx.domain.disks if d.transient]


@check("devices.image-format", Severity.BLOCK, "a disk image format QEMU cannot live-migrate", proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_image_format_without_migration_support_is_blocked_and_fails",
       ),
       explains={190: r"does not support live migration"})
def image_format(ctx: CheckContext):
    """QEMU's block drivers for vmdk, vpc, vhdx, vdi, qcow (v1) and parallels add a migration blocker on open,
    read-only disks included; vvfat only when writable. Proven in the lab (QEMU 7.2): vmdk (also read-only) and
    vpc fail with "cannot migrate domain: The vmdk format used by node 'libvirt-1-format' does not support live
    migration", with --copy-storage-all and --unsafe alike. libvirt 9.0 refuses to define a vhdx disk."""
    _live_only(ctx)
    out = []
    for d in ctx.domain.disks:
        fmt = (d.driver_type or "").lower()
        if fmt in NOT_MIGRATABLE_FORMATS or (fmt == "vvfat" and not d.readonly):
            shown = "Parallels" if fmt == "parallels" else "vvfat (rw)" if fmt == "vvfat" else fmt
            out.append(Hit(message=f"disk {d.target} uses format '{d.driver_type}': \"cannot migrate domain: The "
                                   f"{shown} format used by node '...' does not support live migration\"",
                           evidence=[f"disk {d.target}: <driver type='{d.driver_type}'/> source {d.source}"
                                     + (" (read-only, still blocked)" if d.readonly else "")],
                           fix="convert it (qemu-img convert -O qcow2) with the guest shut down, or detach it"))
    return out


@check("devices.dimm-address", Severity.BLOCK, "a DIMM memory device without slot and base address",
       explains={200: r"dimm info lacks"})
def dimm_address(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message="domain's dimm info lacks slot ID or base address",
                evidence=[f"<memory model='{m.model}'> slot={m.slot} base={m.base}"],
                fix="restart the guest so libvirt assigns DIMM addresses, or set <address type='dimm' slot= base=>")
            for m in ctx.domain.memory_devices if m.model == "dimm" and (m.slot is None or m.base is None)]


@check("devices.snapshots", Severity.BLOCK, "the guest has libvirt snapshot metadata", proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_snapshot_metadata_is_blocked_and_fails",
       ),
       explains={120: r"cannot migrate domain with \d+ snapshots"})
def snapshots(ctx: CheckContext):
    """libvirt refuses any migration to another host while snapshot metadata exists. Proven in the lab: an
    internal snapshot of a paused qcow2 guest makes --live --copy-storage-all fail with "Requested operation
    is not valid: cannot migrate domain with 1 snapshots"."""
    count = ctx.guest.snapshot_count
    if count is None:
        return [Hit(message="could not count the guest's snapshots", evidence=[ctx.source.errors.get("snapshots", "")],
                    fix="check the source libvirt", severity=Severity.UNKNOWN)]
    if count == 0:
        return []
    return [Hit(message=f"cannot migrate domain with {count} snapshots",
                evidence=[f"virsh snapshot-list {ctx.guest.name}: {count} snapshot(s)"],
                fix=f"delete the snapshot metadata (virsh snapshot-delete {ctx.guest.name} NAME --metadata, after "
                    "merging or keeping the data), migrate, then redefine it on the target (snapshot-create --redefine)")]


@check("devices.tpm-emulator", Severity.BLOCK, "a TPM emulator the target's libvirt cannot start (no swtpm there), "
       "or whose state is on shared storage the running swtpm cannot migrate", proven_by=(
           "tests/lab/test_catalogue_uefi_tpm.py::test_tpm_emulator_with_private_state_is_ok_and_its_state_arrives",
           "tests/lab/test_catalogue_uefi_tpm.py::test_tpm_emulator_without_swtpm_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_uefi_tpm.py::test_tpm_emulator_with_state_on_shared_storage_is_blocked_and_fails",
       ), also=(Severity.RISK,),
       explains={370: r"TPM version '.*' is not supported|TPM backend type|TPM model '.*' is not supported|"
                      r"swtpm does not support migration with shared storage"},
       asks=(Question(TARGET_PATHS, lambda dom, host: SWTPM_PATHS if "emulator" in dom.tpms else ()),),
       reads=("domcaps?tpm-emulator", "paths?tpm-emulator"))
def tpm_emulator(ctx: CheckContext):
    """The TPM state migrates with the guest (lab: a tpm-crb 2.0 guest with its state under the private
    /var/lib/libvirt/swtpm migrates), but the target's libvirt must start a swtpm for it.

    Judged from the target's domain capabilities when they have <tpm> (libvirt lists the backend model
    'emulator' only when it finds a working swtpm); from a stat of the swtpm binary otherwise. Lab
    (libvirt 9.0): swtpm hidden on the target fails with "unsupported configuration: TPM version '2.0'
    is not supported". The state directory on a filesystem libvirt counts as shared (a fuse.glusterfs
    mount over /var/lib/libvirt/swtpm on both hosts) with swtpm 0.7: refused on the source with "this
    function is not supported by the connection driver: the running swtpm does not support migration
    with shared storage"."""
    _live_only(ctx)
    tpms = [t for t in ctx.domain.tpm_devices if t.backend == "emulator"]
    if not tpms:
        raise NotApplicable
    out = _tpm_shared_state(ctx)
    dc = ctx.target.domcaps_for(ctx.domain)
    if dc is not None and dc.tpm is not None:
        for t in tpms:
            why = dc.tpm.emulator_refusal(t.model, t.version)
            if why:
                out.append(Hit(message=f"the guest's emulated TPM ({t.model or 'tpm'} {t.version or ''}) cannot start "
                                       f"on the target: {why}",
                               evidence=[f"<tpm model='{t.model}'><backend type='emulator' version='{t.version or ''}'/>",
                                         f"{ctx.target.spec}: domain capabilities <tpm supported="
                                         f"'{'yes' if dc.tpm.supported else 'no'}'> backendModel "
                                         f"{', '.join(dc.tpm.backend_models) or 'none'}; backendVersion "
                                         + (', '.join(dc.tpm.backend_versions) if dc.tpm.backend_versions is not None
                                            else 'not listed')],
                               fix="install swtpm and swtpm-tools on the target (libvirt finds them on its PATH), "
                                   "then check `virsh domcapabilities` there lists the backend model 'emulator'"))
        return out
    stats = [ctx.target.paths.get(p) for p in SWTPM_PATHS]
    stat = next((st for st in stats if st is not None and st.exists), stats[0])
    if stat is None:
        return out + [Hit(message="could not tell whether swtpm is installed on the target",
                          evidence=["TPM backend emulator", "no <tpm> in the target's domain capabilities"],
                          fix="allow SSH access to the target", severity=Severity.UNKNOWN)]
    if stat.exists:
        return out
    return out + [Hit(message="the guest has an emulated TPM and the target has no swtpm",
                      evidence=["<tpm><backend type='emulator'/>",
                                f"{ctx.target.spec}: no swtpm in {', '.join(SWTPM_PATHS)} (its domain capabilities "
                                "have no <tpm> to ask)"],
                      fix="install swtpm (and swtpm-tools) on the target")]


def _tpm_shared_state(ctx: CheckContext) -> list[Hit]:
    """libvirt (qemuMigrationSrcIsAllowed) refuses a TPM whose state directory is on shared storage unless the
    running swtpm can migrate that way (swtpm >= 0.8, 'cmdarg-migration'); libvirt notes that it can in the
    status XML (<tpm><privateData><swtpm><can_migrate_shared_storage/>)."""
    from migcheck.checks.storage import source_fs_type
    from migcheck.facts.procfs import SHARED_FS

    uuid = ctx.domain.uuid
    state = f"{SWTPM_STATE_DIR}/{uuid}" if uuid else SWTPM_STATE_DIR
    fs = source_fs_type(ctx, state)
    if fs is None or fs not in SHARED_FS:
        return []  # not shared (or mountinfo unread: storage checks say unknown for that)
    can_migrate = ctx.guest.tpm_migrates_shared_storage
    if can_migrate:
        return []
    evidence = [f"{ctx.source.spec}: {state} on a {fs} filesystem (shared, as libvirt counts it)"]
    if can_migrate is None:
        return [Hit(message=f"the TPM state ({state}) is on shared storage ({fs}): libvirt refuses unless the running "
                            f"swtpm can migrate that way (swtpm >= 0.8): \"{TPM_SHARED_REFUSED}\"",
                    evidence=evidence + ["the guest's status XML was not read"],
                    fix="upgrade swtpm to 0.8 or later on both hosts and restart the guest, or keep the TPM state "
                        "on local storage", severity=Severity.RISK)]
    return [Hit(message=f"the TPM state ({state}) is on shared storage ({fs}) and the running swtpm cannot migrate "
                        f"that way: \"{TPM_SHARED_REFUSED}\"",
                evidence=evidence + ["status XML: no <can_migrate_shared_storage/> for the TPM"],
                fix="upgrade swtpm to 0.8 or later on both hosts and restart the guest (libvirt asks swtpm when it "
                    "starts it), or keep /var/lib/libvirt/swtpm on local storage")]


@check("devices.vhost-user-socket", Severity.BLOCK, "a vhost-user interface whose socket is missing on the target",
       asks=(Question(TARGET_PATHS, lambda dom, host: [i.socket for i in dom.interfaces
                                                      if i.type == "vhostuser" and i.socket]),),
       reads=("paths",))
def vhost_user_socket(ctx: CheckContext):
    _live_only(ctx)
    out = []
    for i in ctx.domain.interfaces:
        if i.type != "vhostuser" or not i.socket or i.socket_mode == "server":
            continue  # mode='server': QEMU creates the socket itself on the target
        stat = ctx.target.paths.get(i.socket)
        if stat is None:
            out.append(Hit(message=f"could not check the vhost-user socket {i.socket} on the target",
                           evidence=[], fix="allow SSH access to the target", severity=Severity.UNKNOWN))
        elif not stat.exists:
            out.append(Hit(message=f"vhost-user socket {i.socket} does not exist on the target",
                           evidence=[f"interface {i.mac}: vhostuser path {i.socket}"],
                           fix="start the vhost-user backend (OVS-DPDK, ...) on the target with the same socket path"))
    return out


# QEMU devices whose state QEMU cannot send (their vmstate is "unmigratable"): QEMU
# blocks the migration and libvirt quotes it, "cannot migrate domain: non-migratable
# device: <path>/<device>". Seen in the lab with QEMU 10.0 (libvirt 9.0/QEMU 7.2 have
# no virtio sound at all). QEMU driver -> (what the XML calls it, QEMU's device name).
NON_MIGRATABLE_QEMU_DEVICES = {
    "virtio-sound-pci": ("<sound model='virtio'>", "virtio-sound-device"),
    "virtio-sound-device": ("<sound model='virtio'>", "virtio-sound-device"),
}
_NON_MIGRATABLE_SOUND = {"virtio": "virtio-sound-pci"}  # <sound model=...> -> QEMU driver


def qemu_device_drivers(argv: list[str]) -> list[str]:
    """The driver of every -device argument, in libvirt's JSON or the key=value syntax."""
    import json

    out = []
    for prev, arg in zip(argv, argv[1:]):
        if prev != "-device":
            continue
        try:
            driver = json.loads(arg).get("driver") if arg.startswith("{") else arg.split(",", 1)[0]
        except (ValueError, AttributeError):
            driver = None
        if isinstance(driver, str) and driver:
            out.append(driver)
    return out


def _xml_non_migratable(ctx: CheckContext) -> list[tuple[str, str]]:
    """(QEMU driver, evidence) from the live domain XML, when the running command line is unknown."""
    live = ctx.guest.live
    if live is None:
        return [] if ctx.guest.live_xml is None else [ctx.need(None, "domain_xml", ctx.source)]
    return [(driver, f"domain XML: <sound model='{model}'>")
            for model, driver in _NON_MIGRATABLE_SOUND.items() for found in live.sound_models if found == model]


@check("devices.non-migratable-device", Severity.BLOCK, "a device QEMU cannot migrate (virtio sound)",
       proven_by=(
           "tests/lab/test_version_skew.py::test_virtio_sound_is_blocked_new_to_old",
           "tests/lab/test_version_skew.py::test_ich9_sound_migrates_both_ways",
       ),
       explains={140: r"non-migratable device"})
def non_migratable_device(ctx: CheckContext):
    """QEMU blocks migration for devices whose state it cannot send, whatever the target."""
    _live_only(ctx)
    cmd = ctx.guest.cmdline
    if cmd is not None:
        found = [(d, f"running QEMU: -device driver {d}") for d in qemu_device_drivers(cmd.argv)
                 if d in NON_MIGRATABLE_QEMU_DEVICES]
    else:
        found = _xml_non_migratable(ctx)
    qemu = ctx.source.qemu_version.text if ctx.source.qemu_version else "?"
    out = []
    for driver, evidence in found:
        xml_name, qemu_name = NON_MIGRATABLE_QEMU_DEVICES[driver]
        out.append(Hit(
            message=f"the guest has a {xml_name} device, which QEMU {qemu} cannot migrate: libvirt refuses "
                    f"'cannot migrate domain: non-migratable device: .../{qemu_name}'",
            evidence=[evidence, f"{ctx.source.spec}: QEMU {qemu}"],
            fix=f"remove the {xml_name} device before migrating (virsh detach-device --live, or edit it out and "
                "power-cycle the guest), or use a sound model that migrates, such as <sound model='ich9'>",
        ))
    return out
