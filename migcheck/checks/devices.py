"""Device checks: what libvirt (qemuMigrationSrcIsAllowed) and QEMU refuse to migrate."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.report.model import Severity

NOT_MIGRATABLE_FORMATS = {"vdi", "vpc", "vhdx", "vmdk", "qcow", "parallels", "vvfat", "cloop", "dmg", "bochs"}


def _live_only(ctx: CheckContext) -> None:
    """These refusals are about a running guest: an offline migration moves only the XML."""
    if ctx.flags.offline:
        raise NotApplicable


@check("devices.hostdev", Severity.BLOCK, "PCI, SCSI or mdev host devices assigned to the guest")
def hostdev(ctx: CheckContext):
    """USB host devices may migrate (they are re-attached by vendor/product); PCI/SCSI/mdev may not."""
    _live_only(ctx)
    out = []
    for hd in ctx.domain.hostdevs:
        if hd.mode == "subsystem" and hd.type in ("pci", "scsi", "scsi_host", "mdev"):
            what = "vhost-scsi" if hd.type == "scsi_host" else hd.type
            out.append(Hit(
                message=f"a {what} host device is assigned ({hd.summary or 'no address'}): libvirt/QEMU refuse "
                        f"\"cannot migrate a domain with <hostdev mode='subsystem' type='{hd.type}'>\"",
                evidence=[f"<hostdev mode='{hd.mode}' type='{hd.type}'> {hd.summary}"],
                fix="detach it before migrating (virsh detach-device --live) and attach the target's equivalent "
                    "afterwards; for SR-IOV NICs use a transient teaming failover pair"))
    return out


@check("devices.hostdev-interface", Severity.BLOCK, "an <interface type='hostdev'> or 'vdpa' (SR-IOV VF, vDPA)")
def hostdev_interface(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"<interface type='{i.type}'> ({i.mac or 'no MAC'}) cannot be migrated",
                evidence=[f"interface type={i.type} mac={i.mac}"],
                fix="detach the interface before migrating, or use a virtio NIC with a teaming failover VF")
            for i in ctx.domain.interfaces if i.type in ("hostdev", "vdpa")]


@check("devices.shmem-not-master", Severity.BLOCK, "a shared-memory device without role='master'")
def shmem_not_master(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"shmem device '{s['name']}' cannot be migrated, only shmem with role='master' can be "
                        "migrated",
                evidence=[f"<shmem name='{s['name']}' role='{s['role'] or '(default)'}'> model {s['model'] or '?'}"],
                fix="give the guest that keeps the memory role='master' (the others 'peer' cannot move), "
                    "or detach the device")
            for s in ctx.domain.shmems if s["role"] != "master"]


@check("devices.virtiofs", Severity.BLOCK, "a virtiofs filesystem (libvirt of this era refuses it)")
def virtiofs(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"virtiofs share '{f['target']}': 'migration with virtiofs device is not supported'",
                evidence=[f"<filesystem> driver virtiofs source {f['source']} target {f['target']}"],
                fix="unmount it in the guest and detach it before migrating (or shut the guest down and "
                    "migrate --offline)")
            for f in ctx.domain.filesystems if f["driver"] == "virtiofs"]


@check("devices.9p-share", Severity.RISK, "a 9p (virtio-9p) filesystem: QEMU blocks once the guest mounts it")
def ninep_share(ctx: CheckContext):
    """QEMU adds 'Migration is disabled when VirtFS export path ... is mounted' only after the guest mounts it."""
    _live_only(ctx)
    return [Hit(message=f"9p share '{f['target']}' blocks migration if the guest has it mounted "
                        "(QEMU: 'Migration is disabled when VirtFS export path ... is mounted')",
                evidence=[f"<filesystem type='{f['type']}'> driver {f['driver']} source {f['source']} "
                          f"target {f['target']}", "whether the guest mounted it cannot be seen from the host"],
                fix="unmount the share inside the guest before migrating (migcheck --qmp asks QEMU directly)")
            for f in ctx.domain.filesystems if f["driver"] in ("path", "handle", "loop") and f["type"] == "mount"]


@check("devices.transient-disk", Severity.BLOCK, "a <transient/> disk")
def transient_disk(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"disk {d.target} is transient: 'migration with transient disk is not supported'",
                evidence=[f"disk {d.target} source {d.source} has <transient/>"],
                fix="shut the guest down and migrate --offline, or remove <transient/> (cold change)")
            for d in ctx.domain.disks if d.transient]


@check("devices.image-format", Severity.BLOCK, "a disk image format QEMU cannot live-migrate")
def image_format(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message=f"disk {d.target} uses format '{d.driver_type}': QEMU says 'The {d.driver_type} format "
                        f"used by node ... does not support live migration'",
                evidence=[f"disk {d.target}: <driver type='{d.driver_type}'/> source {d.source}"],
                fix=f"convert it (qemu-img convert -O qcow2) with the guest shut down")
            for d in ctx.domain.disks
            if (d.driver_type or "").lower() in NOT_MIGRATABLE_FORMATS and not d.readonly]


@check("devices.dimm-address", Severity.BLOCK, "a DIMM memory device without slot and base address")
def dimm_address(ctx: CheckContext):
    _live_only(ctx)
    return [Hit(message="domain's dimm info lacks slot ID or base address",
                evidence=[f"<memory model='{m.model}'> slot={m.slot} base={m.base}"],
                fix="restart the guest so libvirt assigns DIMM addresses, or set <address type='dimm' slot= base=>")
            for m in ctx.domain.memory_devices if m.model == "dimm" and (m.slot is None or m.base is None)]


@check("devices.snapshots", Severity.BLOCK, "the guest has libvirt snapshot metadata")
def snapshots(ctx: CheckContext):
    """libvirt refuses any migration to another host while snapshot metadata exists."""
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


@check("devices.tpm-emulator", Severity.BLOCK, "a TPM emulator and no swtpm on the target")
def tpm_emulator(ctx: CheckContext):
    """swtpm state migrates with the guest, but the target needs swtpm installed."""
    _live_only(ctx)
    if "emulator" not in ctx.domain.tpms:
        raise NotApplicable
    stat = ctx.target.raw.paths.get("/usr/bin/swtpm")
    if stat is None:
        return [Hit(message="could not tell whether swtpm is installed on the target",
                    evidence=["TPM backend emulator"], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    if stat.exists:
        return []
    return [Hit(message="the guest has an emulated TPM and the target has no /usr/bin/swtpm",
                evidence=["<tpm><backend type='emulator'/>", f"{ctx.target.spec}: /usr/bin/swtpm not found"],
                fix="install swtpm (and swtpm-tools) on the target")]


@check("devices.vhost-user-socket", Severity.BLOCK, "a vhost-user interface whose socket is missing on the target")
def vhost_user_socket(ctx: CheckContext):
    _live_only(ctx)
    out = []
    for i in ctx.domain.interfaces:
        if i.type != "vhostuser" or not i.socket:
            continue
        stat = ctx.target.raw.paths.get(i.socket)
        if stat is None:
            out.append(Hit(message=f"could not check the vhost-user socket {i.socket} on the target",
                           evidence=[], fix="allow SSH access to the target", severity=Severity.UNKNOWN))
        elif not stat.exists:
            out.append(Hit(message=f"vhost-user socket {i.socket} does not exist on the target",
                           evidence=[f"interface {i.mac}: vhostuser path {i.socket}"],
                           fix="start the vhost-user backend (OVS-DPDK, ...) on the target with the same socket path"))
    return out
