"""Storage that is the same file on both hosts, NVMe disks, qemu.conf shared_filesystems, larger raw devices.

The mountinfo lines are the lab hosts' own (libvirt 9.0 / QEMU 7.2 lab, tests/lab/test_catalogue_storage_devices.py):
both hosts are namespaces of one machine, see its ext4 root (device 254:0) and so /var/tmp, and each mounts
its own bindfs FUSE mount typed fuse.glusterfs over one backing directory. What the lab measured for each
case is in the comments; the lab pairs assert the same verdicts against real migrations.
"""

from __future__ import annotations

import pytest

from migcheck.facts.procfs import parse_conf_list, parse_mountinfo
from migcheck.probe.raw import PathStat
from tests.unit.factories import argv, guest_xml, host_files, run, source, target

ROOT_LINE = ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,no_prefetch_block_bitmaps,resv_strict,"
             "resuid=65534,resgid=65534\n")
GLUSTER_A = ("88 54 0:44 / /var/tmp/mc-gluster rw,nosuid,nodev,relatime - fuse.glusterfs /var/tmp/mc-gback "
             "rw,user_id=0,group_id=0,default_permissions,allow_other\n")
GLUSTER_B = GLUSTER_A.replace("88 54 0:44", "89 75 0:45")
# each lab host's own /var/lib/libvirt: a bind mount of its own directory (another root on the same device)
LIB_A = "60 27 254:0 /var/tmp/migcheck-lab-mcsto/hosts/sto-a/lib /var/lib/libvirt rw,relatime - ext4 /dev/vda rw\n"
LIB_B = LIB_A.replace("sto-a", "sto-b")
NFS = "40 27 0:40 / /mnt/vms rw - nfs4 filer:/export/vms rw\n"
NFS_OTHER = "40 27 0:41 / /mnt/vms rw - nfs4 other:/export/vms rw\n"
BOOT_A = "39d64c27-faee-47e3-a598-2316bd5f695f\n"
BOOT_B = "0b6a4a5e-3c1f-4a8e-9d55-1f2e3d4c5b6a\n"

SAME_DIR = "/var/tmp/mc-same/vm1.qcow2"
GLUSTER_DISK = "/var/tmp/mc-gluster/vm1.qcow2"
NFS_DISK = "/mnt/vms/vm1.qcow2"
LOCAL = "/var/lib/libvirt/images/vm1.qcow2"
EMU = {"/usr/bin/qemu-system-x86_64": PathStat(path="/usr/bin/qemu-system-x86_64", exists=True)}


def disk(path: str, dev: str = "vda", fmt: str = "qcow2") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}' cache='none'/>"
            f"<source file='{path}'/><target dev='{dev}' bus='virtio'/></disk>")


def qcow2_header(size: int) -> str:
    return (b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + size.to_bytes(8, "big")).hex()


def pair(devices: str, paths: list[str], *, mounts_src: str, mounts_dst: str, boot_src: str = BOOT_A,
         boot_dst: str = BOOT_A, conf: str = "", libvirt: int = 9_000_000):
    """A source guest with these disks and a target where every path exists (the same image)."""
    src = source(guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>", devices=devices),
                 argv("host,migratable=on"), libvirt=libvirt)
    src.files = host_files(mounts_src) | {"/proc/sys/kernel/random/boot_id": boot_src}
    if conf:
        src.files["/etc/libvirt/qemu.conf"] = conf
    stat = {p: PathStat(path=p, exists=True, size=196624) for p in paths}
    src.paths.update(stat)
    src.image_headers.update({p: qcow2_header(16 << 20) for p in paths})
    dst = target(paths=EMU | stat, image_headers={p: qcow2_header(16 << 20) for p in paths})
    dst.files = host_files(mounts_dst) | {"/proc/sys/kernel/random/boot_id": boot_dst}
    return src, dst


def verdict_of(src, dst, flags: str):
    rep = run(src, dst, flags)
    return rep.verdict.value, {(f.rule, f.severity.value) for f in rep.findings if f.rule.startswith("storage.")}


def test_mountinfo_keeps_device_and_root():
    m = parse_mountinfo(ROOT_LINE + GLUSTER_A)
    assert (m[0].device, m[0].root, m[1].device, m[1].source) == ("254:0", "/", "0:44", "/var/tmp/mc-gback")


# ---------------------------------------------------------------- one kernel, one ext4: the very file


@pytest.mark.parametrize("flags", ["--live --copy-storage-all", "--live --copy-storage-inc",
                                   "--live --copy-storage-all --migrate-disks vda"])
def test_copy_onto_the_same_file_on_one_kernel_is_blocked(flags):
    """Lab: "unable to execute QEMU command 'block-export-add': Block node is read-only" for all three."""
    src, dst = pair(disk(SAME_DIR), [SAME_DIR], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE)
    verdict, found = verdict_of(src, dst, flags)
    assert verdict == "blocked" and ("storage.copy-precreate", "block") in found, found
    assert not any(rule == "storage.stale-copy-on-target" for rule, _ in found), found  # it is no copy


def test_copy_onto_the_same_file_names_the_lock_error():
    src, dst = pair(disk(SAME_DIR), [SAME_DIR], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE)
    [f] = [f for f in run(src, dst, "--live --copy-storage-all").findings if f.rule == "storage.copy-precreate"]
    assert "Block node is read-only" in f.message and "boot_id" in " ".join(f.evidence)
    assert "no --copy-storage" in f.fix and "--unsafe" in f.fix


def test_same_path_on_two_machines_is_not_the_same_file():
    """Another boot_id: two kernels, two local ext4 disks: a pre-created same-size image is copied into (lab: ok)."""
    src, dst = pair(disk(LOCAL), [LOCAL], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE, boot_dst=BOOT_B)
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all")
    assert verdict == "ok" and ("storage.stale-copy-on-target", "warn") in found, found


def test_unsafe_onto_the_same_file_is_ok():
    """Lab: --live --unsafe with the file in a directory both hosts see migrates (it is the disk itself)."""
    src, dst = pair(disk(SAME_DIR), [SAME_DIR], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE)
    verdict, found = verdict_of(src, dst, "--live --unsafe")
    assert verdict == "ok", found


def test_unsafe_onto_a_copy_on_another_machine_stays_risky():
    src, dst = pair(disk(LOCAL), [LOCAL], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE, boot_dst=BOOT_B)
    verdict, found = verdict_of(src, dst, "--live --unsafe")
    assert verdict == "risky" and ("storage.stale-copy-on-target", "risk") in found, found


def test_live_on_the_same_file_is_blocked_and_advises_unsafe_not_copy():
    """Lab: "Unsafe migration: Migration without shared storage is unsafe"; the fix must not be a storage copy."""
    src, dst = pair(disk(SAME_DIR), [SAME_DIR], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE)
    rep = run(src, dst, "--live")
    [f] = [f for f in rep.findings if f.rule == "storage.not-shared"]
    assert rep.verdict.value == "blocked" and "--unsafe" in f.fix and "add --copy-storage-all" not in f.fix


def test_migrate_disks_leaving_the_same_file_out_is_ok():
    """vda on each host's own /var/lib/libvirt (copied into a pre-created image), vdb the same file, left out of
    the copy: libvirt then judges vdb as not shared, so --unsafe is needed and enough."""
    devices = disk(LOCAL) + disk(SAME_DIR, dev="vdb")
    src, dst = pair(devices, [LOCAL, SAME_DIR], mounts_src=ROOT_LINE + LIB_A, mounts_dst=ROOT_LINE + LIB_B)
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all --migrate-disks vda --unsafe")
    assert verdict == "ok", found
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all --migrate-disks vda")
    assert verdict == "blocked" and ("storage.not-shared", "block") in found, found
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all")
    assert verdict == "blocked" and ("storage.copy-precreate", "block") in found, found


# ---------------------------------------------------------------- libvirt-shared filesystems


def test_copy_onto_a_glusterfs_mount_is_risky():
    """Lab (bindfs typed glusterfs, one mount per host): the copy onto the file itself migrates; on a filesystem
    that carries the source's lock it would fail as on ext4: risky, not ok and not blocked."""
    src, dst = pair(disk(GLUSTER_DISK), [GLUSTER_DISK], mounts_src=ROOT_LINE + GLUSTER_A,
                    mounts_dst=ROOT_LINE + GLUSTER_B)
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all")
    assert verdict == "risky" and ("storage.copy-precreate", "risk") in found, found


def test_glusterfs_without_copy_is_ok():
    src, dst = pair(disk(GLUSTER_DISK), [GLUSTER_DISK], mounts_src=ROOT_LINE + GLUSTER_A,
                    mounts_dst=ROOT_LINE + GLUSTER_B)
    assert verdict_of(src, dst, "--live")[0] == "ok"


def test_copy_onto_nfs_from_the_same_server_is_risky_and_from_another_is_not_the_same_file():
    src, dst = pair(disk(NFS_DISK), [NFS_DISK], mounts_src=ROOT_LINE + NFS, mounts_dst=ROOT_LINE + NFS,
                    boot_dst=BOOT_B)
    assert verdict_of(src, dst, "--live --copy-storage-all") == ("risky", {("storage.copy-precreate", "risk")})
    src, dst = pair(disk(NFS_DISK), [NFS_DISK], mounts_src=ROOT_LINE + NFS, mounts_dst=ROOT_LINE + NFS_OTHER,
                    boot_dst=BOOT_B)
    verdict, found = verdict_of(src, dst, "--live --copy-storage-all")
    assert ("storage.copy-precreate", "risk") not in found, found


# ---------------------------------------------------------------- NVMe, shared_filesystems


NVME = ("<disk type='nvme' device='disk'><driver name='qemu' type='raw'/><source type='pci' managed='yes' "
        "namespace='1'><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>"
        "<target dev='vde' bus='virtio'/></disk>")


def test_nvme_disk_is_never_shared():
    """qemuMigrationSrcIsSafe: VIR_STORAGE_TYPE_NVME is unsafe, whatever the filesystems."""
    src, dst = pair(NVME, [], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE, boot_dst=BOOT_B)
    rep = run(src, dst, "--live")
    assert ("storage.not-shared", "block") in {(f.rule, f.severity.value) for f in rep.findings}
    assert not [f for f in run(src, dst, "--live --unsafe").findings if f.rule == "storage.not-shared"]


def test_nvme_disk_in_a_storage_copy_cannot_be_precreated():
    src, dst = pair(NVME, [], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE, boot_dst=BOOT_B)
    found = {(f.rule, f.severity.value) for f in run(src, dst, "--live --copy-storage-all").findings}
    assert ("storage.copy-precreate", "block") in found and ("storage.not-shared", "block") not in found, found


CONF = 'shared_filesystems = [\n  "/var/tmp/mc-same",\n  "/srv/nvram"\n]\n'


def test_conf_list_parser():
    assert parse_conf_list(CONF, "shared_filesystems") == ["/var/tmp/mc-same", "/srv/nvram"]
    assert parse_conf_list('#shared_filesystems = [ "/x" ]\n', "shared_filesystems") is None


@pytest.mark.parametrize("libvirt,expect", [(11_003_000, None), (9_000_000, "block")])
def test_shared_filesystems_counts_from_libvirt_10_4(libvirt, expect):
    """The source's qemu.conf shared_filesystems makes a directory shared for libvirt >= 10.4 only."""
    src, dst = pair(disk(SAME_DIR), [SAME_DIR], mounts_src=ROOT_LINE, mounts_dst=ROOT_LINE, conf=CONF,
                    libvirt=libvirt)
    found = {f.severity.value for f in run(src, dst, "--live").findings if f.rule == "storage.not-shared"}
    assert found == ({expect} if expect else set()), found


# ---------------------------------------------------------------- a larger raw block device


BLK = "/dev/vg0/vm1"


@pytest.mark.parametrize("target_size,expect", [(32 << 20, "block"), (16 << 20, None), (8 << 20, "block")])
def test_raw_disk_onto_a_block_device_of_another_size(target_size, expect):
    """libvirt 9.0 / QEMU 7.2 put no slice over a larger raw target device: 16 MiB onto 32 MiB fails with
    'Source and target image have different sizes' (lab), as onto a smaller one."""
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>",
                    devices=f"<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
                            f"<source dev='{BLK}'/><target dev='vda' bus='virtio'/></disk>")
    src = source(xml, argv("host,migratable=on"))
    src.paths[BLK] = PathStat(path=BLK, exists=True, is_block=True, size=16 << 20)
    src.image_headers[BLK] = bytes(64).hex()
    dst = target(paths=EMU | {BLK: PathStat(path=BLK, exists=True, is_block=True, size=target_size)},
                 image_headers={BLK: bytes(64).hex()})
    found = {f.severity.value for f in run(src, dst, "--live --copy-storage-all").findings
             if f.rule == "storage.copy-precreate"}
    assert found == ({expect} if expect else set()), found


def test_copy_onto_the_same_block_device_is_risky():
    """Lab: a /dev/loop device both hosts see, --copy-storage-all: the copy onto itself migrated (no lock)."""
    dev = "/dev/loop7"
    devmnt = "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw\n"
    xml = guest_xml(cpu="<cpu mode='host-passthrough' migratable='on'/>",
                    devices=f"<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
                            f"<source dev='{dev}'/><target dev='vda' bus='virtio'/></disk>")
    src = source(xml, argv("host,migratable=on"))
    src.files = host_files(ROOT_LINE + devmnt) | {"/proc/sys/kernel/random/boot_id": BOOT_A}
    src.paths[dev] = PathStat(path=dev, exists=True, is_block=True, size=16 << 20)
    dst = target(paths=EMU | {dev: PathStat(path=dev, exists=True, is_block=True, size=16 << 20)})
    dst.files = host_files(ROOT_LINE + devmnt) | {"/proc/sys/kernel/random/boot_id": BOOT_A}
    rep = run(src, dst, "--live --copy-storage-all")
    assert rep.verdict.value == "risky", rep.findings
