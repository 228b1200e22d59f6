"""Storage checks: shared or not (as libvirt decides), missing or stale on the target, cache modes, secrets, pools."""

from __future__ import annotations

import posixpath

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check, condition, path_not_checked
from migcheck.facts.image import ImageInfo, image_info
from migcheck.facts.models import Disk
from migcheck.facts.procfs import CLUSTER_FS, SHARED_FS, Mount, mount_of
from migcheck.probe.plan import SOURCE_PATHS, TARGET_PATHS, Question
from migcheck.report.model import Severity


def disk_files(dom, host=None) -> list[str]:
    """The guest's file and block disk images: stat'ed on the target (there?) and the source (their sizes)."""
    return [d.source for d in dom.disks if d.source and d.type in ("file", "block")]

# qemu.conf shared_filesystems (directories libvirt then counts as shared): read from libvirt 10.4 on
# (the key is in 11.3's qemu.conf, not in 9.0's); older libvirt ignores it.
SHARED_FILESYSTEMS_SINCE = 10_004_000
# Filesystems whose files, mounted from the same source on two hosts, are one file: libvirt's shared list
# and network filesystems libvirt does not count as shared.
NETWORK_FS = SHARED_FS | {"fuse.sshfs", "9p", "virtiofs", "lustre", "glusterfs", "fuse.s3fs", "fuse.juicefs",
                          "fuse.moosefs", "fuse.mfs", "fuse.lizardfs", "fuse.rclone", "fuse.cephfs"}
# The target QEMU's answer when it cannot take the write lock the source QEMU holds on the same image
# (libvirt 9.0 / QEMU 7.2, seen in the lab): the copy's NBD export is refused.
LOCKED_BY_SOURCE = "unable to execute QEMU command 'block-export-add': Block node is read-only"


def _local_path(d: Disk) -> str | None:
    return d.source if d.type in ("file", "block", "dir") and d.source else None


def source_fs_type(ctx: CheckContext, path: str) -> str | None:
    mounts = ctx.source.mounts
    if mounts is None:
        return None
    m = mount_of(path, mounts)
    return m.fs_type if m else None


def _mount(host, path: str) -> Mount | None:
    return mount_of(path, host.mounts) if host.mounts else None


def one_kernel(ctx: CheckContext) -> bool:
    """Whether both hosts run on one kernel (containers or namespaces of one machine: equal boot_id)."""
    a, b = ctx.source.boot_id, ctx.target.boot_id
    return bool(a) and a == b


def one_superblock(ctx: CheckContext, path: str) -> bool:
    """Both hosts on one kernel see path on one mounted filesystem (the same device number): one inode, whose
    locks both see. Two FUSE mounts of one source are two filesystems here (each its own connection)."""
    ms, mt = _mount(ctx.source, path), _mount(ctx.target, path)
    return (one_kernel(ctx) and ms is not None and mt is not None and bool(ms.device)
            and ms.device == mt.device and ms.root == mt.root)


def same_file(ctx: CheckContext, path: str) -> str | None:
    """Evidence that `path` is the very same file on both hosts (not a copy), or None.

    What migcheck can see: each host's mount of the path. The same file when both hosts run on one kernel
    and see the path on one filesystem (same device, same mounted root), or when both mount it from the
    same network source (nas:/export). Two machines' local disks are never the same file, whatever their
    contents say."""
    ms, mt = _mount(ctx.source, path), _mount(ctx.target, path)
    if ms is None or mt is None or ms.fs_type != mt.fs_type or ms.mount_point != mt.mount_point \
            or ms.root != mt.root:
        return None
    if one_kernel(ctx) and ms.device and ms.device == mt.device:
        return (f"both hosts run on one kernel (same boot_id) and see {path} on one {ms.fs_type} filesystem "
                f"(device {ms.device}, mounted at {ms.mount_point})")
    remote = ms.fs_type in NETWORK_FS or (ms.fs_type.startswith("fuse.") and ":" in ms.source)
    if remote and ms.source and ms.source not in ("none", ms.fs_type) and ms.source == mt.source:
        return f"both hosts mount {ms.mount_point} from {ms.source} ({ms.fs_type})"
    return None


def shared_by_conf(ctx: CheckContext, path: str) -> str | None:
    """The qemu.conf shared_filesystems entry (libvirt >= 10.4, on the source) that makes path shared."""
    version = ctx.source.libvirt_version
    conf = ctx.source.qemu_conf
    if conf is None or not conf.text or version is None or version.number < SHARED_FILESYSTEMS_SINCE:
        return None
    for entry in conf.list("shared_filesystems") or []:
        root = posixpath.normpath(entry) if entry.startswith("/") else None
        if root and (path == root or path.startswith(root.rstrip("/") + "/")):
            return entry
    return None


def _copied(ctx: CheckContext, d: Disk) -> bool:
    """Whether libvirt copies this disk: a writable, unshared disk, and named by --migrate-disks if given."""
    return ctx.flags.copies_disk(d.target) and d.device == "disk" and not d.readonly and not d.shareable


@condition("copy-storage")
def _copies_storage(dom, flags, target=None) -> bool:
    return flags.copy_storage and not flags.offline


def _writable_disks(ctx: CheckContext, dom=None):
    for d in (dom or ctx.domain).disks:
        if not d.source or d.readonly or d.transient:
            continue  # transient disks: devices.transient-disk refuses them anyway
        yield d


def _image(host, d: Disk) -> ImageInfo | None:
    """What the image's header on host says (format, virtual size); None when it was not read."""
    stat = host.paths.get(d.source)
    return image_info(host.image_headers.get(d.source), stat.size if stat else None)


def _format_mismatch(d: Disk, info: ImageInfo | None) -> str | None:
    """QEMU's complaint when it opens the file with the disk's format, if it would complain."""
    if info is None or (d.driver_type or "raw") != "qcow2" or info.format == "qcow2":
        return None
    return "Image is not in qcow2 format"


@check("storage.not-shared", Severity.BLOCK, "a writable disk on local (non-shared) storage, not copied",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_local_qcow2_live_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_migrate_disks_copies_only_the_disks_it_names",
           "tests/lab/test_catalogue_storage_devices.py::test_block_device_seen_by_both_hosts_with_writeback_cache_is_ok_and_migrates",
           "tests/lab/test_catalogue_storage_devices.py::test_live_on_the_same_file_is_blocked_and_the_fix_is_unsafe_not_a_copy",
           "tests/lab/test_catalogue_storage_devices.py::test_glusterfs_mount_without_copy_is_ok_and_migrates",
           "tests/lab/test_catalogue_storage_devices.py::test_transient_disk_is_blocked_and_fails",
       ),
       explains={210: r"Migration without shared storage is unsafe"},
       reads=("boot_id~source", "mounts~disks"))
def not_shared(ctx: CheckContext):
    """libvirt's qemuMigrationSrcIsSafe: a file disk on a filesystem that is not shared needs storage copy.

    Judged as libvirt does, on the source's running definition: a file disk on a filesystem libvirt does not
    count as shared (or, from libvirt 10.4, outside every qemu.conf shared_filesystems directory), and any
    NVMe disk (<disk type='nvme'>, always unsafe). Block devices are not looked at (a /dev path visible on
    both hosts migrates with plain --live, proven in the lab). Proven: a qcow2 on ext4 with --live fails with
    "Unsafe migration: Migration without shared storage is unsafe"; with --copy-storage-all (or --unsafe)
    this check has nothing to say. When the file is the same file on both hosts (a directory both see, that
    libvirt does not count as shared), the fix is --unsafe: a storage copy onto the file itself fails."""
    if ctx.flags.offline or ctx.flags.unsafe:
        raise NotApplicable
    out = []
    for d in ctx.running.disks:
        if d.type == "nvme" and not d.readonly and not _copied(ctx, d):
            out.append(Hit(
                message=f"disk {d.target} is an NVMe disk (<disk type='nvme'>), which libvirt never treats as shared: "
                        "'Unsafe migration: Migration without shared storage is unsafe'",
                evidence=[f"disk {d.target}: type='nvme'"],
                fix="hot-unplug the NVMe disk before migrating (libvirt cannot copy it either: it pre-creates no "
                    "NVMe namespace on the target), or --unsafe only if the same namespace is reachable there"))
    for d in _writable_disks(ctx, ctx.running):
        if d.type != "file" or _copied(ctx, d):
            continue
        fs = source_fs_type(ctx, d.source)
        if fs is None:
            out.append(Hit(message=f"could not tell which filesystem holds {d.source}",
                           evidence=[ctx.source.errors.get("mountinfo", "mountinfo not read")],
                           fix="allow SSH access to the source", severity=Severity.UNKNOWN))
        elif fs not in SHARED_FS and not shared_by_conf(ctx, d.source):
            same = same_file(ctx, d.source)
            evidence = [f"{ctx.source.spec}: {d.source} on a {fs} filesystem",
                        "libvirt counts NFS, GFS2, OCFS2, CephFS, GPFS, SMB/CIFS, GlusterFS, Quobyte, BeeGFS as shared"]
            if same:
                evidence.append(f"the same file on both hosts: {same}")
                fix = ("the file is the same on both hosts, so --unsafe migrates it as shared storage (with "
                       "cache='none'); a storage copy onto the file itself fails. From libvirt 10.4 on the source, "
                       f"qemu.conf shared_filesystems = [ \"{posixpath.dirname(d.source)}\" ] says it once")
            else:
                fix = ("add --copy-storage-all (copies the disk over NBD), or move the disk to shared storage; "
                       "--unsafe only if the same data really is visible on both hosts")
            out.append(Hit(
                message=f"disk {d.target} ({d.source}) is on {fs}, which libvirt does not treat as shared: "
                        "'Unsafe migration: Migration without shared storage is unsafe'",
                evidence=evidence, fix=fix))
    return out


@check("storage.unsafe-cache", Severity.BLOCK,
       "a shared, non-cluster disk with a cache mode other than none/directsync on an old QEMU",
       explains={240: r"cache other than none or directsync"})
def unsafe_cache(ctx: CheckContext):
    """Since QEMU can drop its page cache on migration (QEMU >= 3.1, libvirt's 'migration-file-drop-cache'),
    libvirt accepts any cache mode; on older QEMU it refuses writeback caches on shared storage."""
    if ctx.flags.offline or ctx.flags.unsafe:
        raise NotApplicable
    qemu = ctx.need(ctx.source.qemu_version, "qemu_version", ctx.source)
    if qemu.number >= 3_001_000:
        return []
    out = []
    for d in _writable_disks(ctx, ctx.running):
        if _copied(ctx, d) or d.type == "network" or d.shareable or d.cache in ("none", "directsync"):
            continue
        fs = source_fs_type(ctx, d.source) if d.type == "file" else None
        if fs in CLUSTER_FS:
            continue
        out.append(Hit(message=f"disk {d.target} uses cache={d.cache or 'default'}: 'Migration may lead to data "
                               "corruption if disks use cache other than none or directsync'",
                       evidence=[f"QEMU {qemu.text} on the source", f"disk {d.target}: cache={d.cache or 'default'}"],
                       fix="set cache='none' on the disk (cold change), or pass --unsafe if you accept the risk"))
    return out


@check("storage.missing-on-target", Severity.BLOCK, "a disk image that does not exist on the target",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_cdrom_that_may_be_dropped_missing_on_target_migrates_with_a_warning",
           "tests/lab/test_catalogue_network_state.py::test_cdrom_that_must_be_there_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_network_state.py::test_optional_disk_missing_on_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_unsafe_with_the_image_missing_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_cdrom_on_the_source_only_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_transient_disk_is_blocked_and_fails",
       ), also=(Severity.WARN,),
       explains={380: r"Cannot access storage file|Could not open '|unable to stat: .*No such file"},
       asks=(Question(TARGET_PATHS, disk_files),),
       reads=("paths",))
def missing_on_target(ctx: CheckContext):
    """Without storage copy the target QEMU opens the same path; with it, libvirt must be able to pre-create it.

    Proven in the lab (libvirt 9.0): a writable disk missing on the target with --live --unsafe fails with
    "unable to stat: PATH: No such file or directory"; a read-only cdrom ISO present on the source only fails
    with "Cannot access storage file 'PATH': No such file or directory", and migrates once it is on both.

    startupPolicy (qemuDomainCheckDiskStartupPolicy; an incoming migration is no cold boot): a cdrom or floppy
    with 'optional' or 'requisite' whose image the target lacks migrates, the target dropping the media
    (lab: a warning); 'mandatory' or no policy fails as above; so does a device='disk' with 'optional'
    (QEMU's migration stream carries its state; lab: "Cannot access storage file ...")."""
    if ctx.flags.offline:
        raise NotApplicable
    out = []
    for d in ctx.domain.disks:
        path = _local_path(d)
        if path is None or d.type == "dir" or d.transient:
            continue
        if _copied(ctx, d):
            continue  # storage.copy-precreate judges whether the target can create it
        stat = ctx.target.paths.get(path)
        if stat is None:
            out.append(path_not_checked(ctx, f"could not check {path} on the target"))
            continue
        if stat.exists:
            continue
        if d.device in ("cdrom", "floppy") and d.startup_policy in ("optional", "requisite"):
            out.append(Hit(message=f"{d.device} image {path} (disk {d.target}) does not exist on the target: with "
                                   f"startupPolicy='{d.startup_policy}' the target's libvirt drops it and the guest "
                                   f"continues with an empty {d.device} drive",
                           evidence=[f"{ctx.target.spec}: {path} not found",
                                     f"disk {d.target}: <source startupPolicy='{d.startup_policy}'/>"],
                           fix=f"copy {path} to the same path on the target if the guest still needs the media",
                           severity=Severity.WARN))
            continue
        kind = "image" if d.device == "disk" else f"{d.device} image"
        writable = d.device == "disk" and not d.readonly
        fix = ("migrate with --copy-storage-all, or make the path available on the target (shared storage)"
               if writable
               else f"copy {path} to the same path on the target, or eject it (virsh change-media --eject)")
        said = (f"'unable to stat: {path}: No such file or directory'" if writable
                else f"'Cannot access storage file '{path}': No such file or directory'")
        out.append(Hit(message=f"{kind} {path} (disk {d.target}) does not exist on the target: the target's "
                               f"libvirt fails with {said}",
                       evidence=[f"{ctx.target.spec}: {path} not found"], fix=fix))
    return out


@check("storage.stale-copy-on-target", Severity.RISK,
       "a different file at the disk's path on the target (local storage on both hosts)", proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_into_a_precreated_image_is_ok_and_migrates",
           "tests/lab/test_catalogue_storage_devices.py::test_unsafe_onto_a_stale_copy_is_risky_migrates_and_loses_the_guests_data",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_onto_the_same_file_is_blocked_and_fails",
       ), also=(Severity.BLOCK, Severity.WARN),
       asks=(Question(TARGET_PATHS, disk_files),),
       reads=("boot_id~source", "image_headers", "mounts~disks", "paths"))
def stale_copy(ctx: CheckContext):
    """A same-path file on the target's own local disk is not the guest's disk: with --unsafe the guest would
    continue on stale data, with storage copy libvirt overwrites it.

    Risky, not blocked: the migration itself works (proven in the lab: --live --unsafe with a same-size qcow2
    at the path on the target migrates); whether the target's file holds the right data is not visible.
    If the file there is not even in the disk's format, the target QEMU cannot open it: blocked."""
    if ctx.flags.offline:
        raise NotApplicable
    out = []
    for d in _writable_disks(ctx):
        if d.type != "file" or d.device != "disk":
            continue
        fs = source_fs_type(ctx, d.source)
        stat = ctx.target.paths.get(d.source)
        if fs is None or fs in SHARED_FS or stat is None or not stat.exists:
            continue
        if same_file(ctx, d.source):
            continue  # not a copy: the disk itself (storage.copy-precreate judges a storage copy onto it)
        if _copied(ctx, d):
            out.append(Hit(message=f"{d.source} already exists on the target and --copy-storage will overwrite it",
                           evidence=[f"{ctx.target.spec}: {d.source} exists ({stat.size} bytes)"],
                           fix="make sure the target's file is not another guest's disk", severity=Severity.WARN))
        elif ctx.flags.unsafe and (why := _format_mismatch(d, _image(ctx.target, d))):
            out.append(Hit(message=f"{d.source} on the target is not a {d.driver_type} image: the target QEMU fails "
                                   f"with '{why}'",
                           evidence=[f"{ctx.target.spec}: {d.source} format {_image(ctx.target, d).format}"],
                           fix="remove the target's file and use --copy-storage-all, or put the disk on shared "
                               "storage", severity=Severity.BLOCK))
        elif ctx.flags.unsafe:
            out.append(Hit(message=f"{d.source} exists on both hosts on local storage: with --unsafe the guest "
                                   "continues on the target's copy, which is not the disk it was writing",
                           evidence=[f"{ctx.source.spec}: on {fs}", f"{ctx.target.spec}: exists, {stat.size} bytes"],
                           fix="use --copy-storage-all instead of --unsafe, or put the disk on shared storage"))
    return out


@check("storage.copy-precreate", Severity.BLOCK,
       "storage copy: the target cannot pre-create the disk, or the image already there does not fit",
       proven_by=(
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_without_a_pool_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_incremental_copy_with_the_image_missing_is_blocked_and_fails_even_with_a_pool",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_with_an_inactive_pool_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_into_an_image_of_another_size_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_into_a_raw_file_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_of_a_block_device_missing_on_the_target_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_storage_into_a_block_device_on_the_target",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_onto_the_same_file_is_blocked_and_fails",
           "tests/lab/test_catalogue_storage_devices.py::test_copy_onto_a_glusterfs_mount_is_risky_and_migrates",
           "tests/lab/test_catalogue_storage_devices.py::test_glusterfs_mount_without_copy_is_ok_and_migrates",
       ), also=(Severity.RISK,),
       explains={220: r"no storage pool with matching target path|pre-creation of storage targets|cannot precreate storage|"
                      r"Source and target image have different sizes|Image is not in qcow2 format|"
                      r"'block-export-add': Block node is read-only|Failed to get \"write\" lock"},
       asks=(Question(TARGET_PATHS, disk_files), Question(SOURCE_PATHS, disk_files)),
       reads=("boot_id~source", "image_headers", "mounts~disks", "paths", "pools?copy-storage"))
def copy_precreate(ctx: CheckContext):
    """With --copy-storage-*, libvirt pre-creates missing disks on the target inside an active storage pool
    whose target path is the disk's directory; outside any (active) pool it fails. An image already at the
    path is used as it is: it must be in the disk's format and of the same virtual size.

    Proven in the lab (libvirt 9.0, QEMU 7.2; the lab hosts have no 'default' pool):
    - no pool, or an inactive one, for the directory: "Storage pool not found: no storage pool with matching
      target path '/var/lib/libvirt/images'";
    - an active dir pool there: libvirt creates the image and the migration works;
    - a same-size qcow2 pre-created on the target: migrates;
    - a smaller or larger one: "operation failed: migration of disk vda failed: Source and target image have
      different sizes";
    - a raw file where the disk is qcow2: the target QEMU fails with "Image is not in qcow2 format";
    - a type='block' disk whose device is missing on the target: "cannot precreate storage for disk type 'block'";
      a device of the same size there migrates, a smaller one fails as a smaller image does;
    - --copy-storage-inc with the image missing on the target, even with an active pool: "Operation not supported:
      pre-creation of storage targets for incremental storage migration is not supported"; a same-size qcow2
      pre-created there migrates."""
    if not ctx.flags.copy_storage or ctx.flags.offline:
        raise NotApplicable
    out = []
    pools = ctx.target.pools
    for d in ctx.domain.disks:
        if d.type == "nvme" and _copied(ctx, d) and not d.readonly:
            out.append(Hit(message=f"disk {d.target} is an NVMe disk (<disk type='nvme'>): libvirt copies it but "
                                   "creates nothing for it on the target: \"cannot precreate storage for disk type "
                                   "'nvme'\"",
                           evidence=[f"disk {d.target}: type='nvme'"],
                           fix="hot-unplug the NVMe disk before migrating, or leave it out of the copy "
                               "(--migrate-disks with the other disks) if the target reaches the same namespace"))
            continue
        if not _copied(ctx, d) or d.type not in ("file", "block") or not d.source or d.transient:
            continue
        if (same := same_file(ctx, d.source)) is not None:
            out.append(_copy_onto_itself(ctx, d, same))
            continue
        stat = ctx.target.paths.get(d.source)
        if ctx.flags.copy_storage_inc and stat is not None and not stat.exists:
            out.append(Hit(message=f"{d.source} (disk {d.target}) does not exist on the target, and libvirt creates "
                                   "nothing for an incremental copy: \"pre-creation of storage targets for "
                                   "incremental storage migration is not supported\"",
                           evidence=[f"{ctx.target.spec}: {d.source} not found", "--copy-storage-inc"],
                           fix=f"create it on the target first with the source's format and size (qemu-img create "
                               f"-f {d.driver_type or 'raw'} {d.source} SIZE, or its backing chain for an "
                               "incremental copy), or use --copy-storage-all"))
            continue
        if d.type == "block":
            out += _copied_block_device(ctx, d)
            continue
        if stat is None:
            out.append(Hit(message=f"could not check {d.source} on the target", evidence=[],
                           fix="allow SSH access to the target", severity=Severity.UNKNOWN))
            continue
        if stat.exists:
            out += _existing_target_image(ctx, d)
            continue
        if pools is None:
            out.append(Hit(message="could not list the target's storage pools",
                           evidence=[ctx.target.errors.get("pools", "")], fix="check the target's libvirt",
                           severity=Severity.UNKNOWN))
            continue
        directory = posixpath.dirname(d.source)
        pool = next((p for p in pools if p.target_path and posixpath.normpath(p.target_path) == directory), None)
        if pool is None:
            out.append(Hit(message=f"no storage pool on the target holds {directory}, so libvirt cannot pre-create "
                                   f"{d.source} for the copy",
                           evidence=[f"{ctx.target.spec}: pools " + ", ".join(f"{p.name}={p.target_path}" for p in pools)],
                           fix=f"create the image on the target first (qemu-img create -f {d.driver_type or 'raw'} "
                               f"{d.source} SIZE), or define a pool for {directory} (virsh pool-define-as NAME dir "
                               f"--target {directory}; virsh pool-start NAME)"))
        elif not pool.active:
            out.append(Hit(message=f"the target's pool '{pool.name}' for {directory} is not active",
                           evidence=[f"pool {pool.name} inactive"], fix=f"virsh pool-start {pool.name} on the target"))
        else:
            need = ctx.source.paths.get(d.source)
            if need is not None and need.size and pool.available is not None and need.size > pool.available:
                out.append(Hit(message=f"pool '{pool.name}' on the target has {pool.available} bytes free, the disk "
                                       f"{d.source} is {need.size} bytes",
                               evidence=[f"source size {need.size}", f"target pool available {pool.available}"],
                               fix="free space in the target pool or choose another target"))
    return out


@check("storage.network-disk-secret", Severity.BLOCK, "a network disk whose auth secret is not defined on the target",
       reads=("secrets",))
def network_disk_secret(ctx: CheckContext):
    if ctx.flags.offline:
        raise NotApplicable
    disks = [d for d in ctx.domain.disks if d.type == "network" and (d.secret_uuid or d.secret_usage)]
    if not disks:
        raise NotApplicable
    secrets = ctx.need(ctx.target.secrets, "secrets", ctx.target)
    uuids = {s.uuid for s in secrets}
    usages = {s.usage_id for s in secrets if s.usage_id}
    out = []
    for d in disks:
        if (d.secret_uuid and d.secret_uuid in uuids) or (d.secret_usage and d.secret_usage in usages):
            continue
        ref = d.secret_uuid or d.secret_usage
        out.append(Hit(message=f"disk {d.target} ({d.source}) authenticates with secret {ref}, which the target "
                               "does not define",
                       evidence=[f"{ctx.target.spec}: {len(secrets)} secret(s) defined, not {ref}"],
                       fix=f"define the secret on the target with the same UUID (virsh secret-define, "
                           f"virsh secret-set-value {ref} ...)"))
    return out


@check("storage.volume-pool-missing", Severity.BLOCK, "a <disk type='volume'> whose pool is missing on the target",
       reads=("pools~layout",))
def volume_pool_missing(ctx: CheckContext):
    disks = [d for d in ctx.domain.disks if d.type == "volume" and d.pool]
    if not disks:
        raise NotApplicable
    pools = ctx.need(ctx.target.pools, "pools", ctx.target)
    by_name = {p.name: p for p in pools}
    out = []
    for d in disks:
        pool = by_name.get(d.pool)
        if pool is None or not pool.active:
            out.append(Hit(message=f"disk {d.target} uses volume {d.volume} of pool '{d.pool}', which is "
                                   f"{'inactive' if pool else 'not defined'} on the target",
                           evidence=[f"{ctx.target.spec}: pools {', '.join(sorted(by_name)) or 'none'}"],
                           fix=f"define and start pool '{d.pool}' on the target"))
    return out


def _copy_onto_itself(ctx: CheckContext, d: Disk, same: str) -> Hit:
    """A storage copy whose target is the disk's own file (or device): the target QEMU opens what the
    source QEMU has open and write-locked.

    On one kernel the lock holds (QEMU's OFD locks are the kernel's): the target cannot take write access and
    libvirt fails "unable to execute QEMU command 'block-export-add': Block node is read-only" (libvirt 9.0,
    QEMU 7.2, lab-proven for --copy-storage-all, --copy-storage-inc and --migrate-disks). Between two
    machines the lock crosses only a filesystem that carries POSIX locks between its clients (NFS, CephFS,
    GlusterFS do): then it fails the same way; where it does not (the lab's FUSE mount typed glusterfs,
    sshfs), the copy runs and both QEMUs write one image for its duration (qcow2 metadata written by two
    processes): risky either way, and never needed, since the data is already there. A block device both hosts
    see (the lab's /dev/loopN) takes no such lock: the copy onto itself migrated (lab): risky too."""
    fs = source_fs_type(ctx, d.source) or "?"
    libvirt_shared = fs in SHARED_FS or shared_by_conf(ctx, d.source) is not None
    others = [x.target for x in ctx.domain.disks if x is not d and _copied(ctx, x)]
    keep = (f"--migrate-disks {','.join(others)} (the disks on local storage only)" if others
            else "no --copy-storage-* at all" + ("" if libvirt_shared else " (and --unsafe: libvirt does not "
                                                  "count this filesystem as shared)"))
    evidence = [f"the same file on both hosts: {same}", f"disk {d.target} is in the copy ({'--copy-storage-inc' if ctx.flags.copy_storage_inc else '--copy-storage-all'}"
                + (f" --migrate-disks {ctx.flags.migrate_disks})" if ctx.flags.migrate_disks else ")")]
    if d.type == "file" and one_superblock(ctx, d.source):  # one kernel, one filesystem: both see the lock
        return Hit(message=f"the storage copy of disk {d.target} targets {d.source}, the very file the source QEMU "
                           f"has open and locked: the target QEMU cannot open it for writing: '{LOCKED_BY_SOURCE}'",
                   evidence=evidence, fix=f"leave it out of the copy: {keep}")
    return Hit(message=f"the storage copy of disk {d.target} targets {d.source}, the very file the source QEMU has "
                       "open: where the filesystem carries the source's write lock to the target (NFS, CephFS, "
                       f"GlusterFS do) the target QEMU fails with '{LOCKED_BY_SOURCE}'; where not, both QEMUs write "
                       "one image during the copy",
               evidence=evidence + [f"{d.source} on {fs}"], fix=f"leave it out of the copy: {keep}",
               severity=Severity.RISK)


def _copied_block_device(ctx: CheckContext, d: Disk) -> list[Hit]:
    """Storage copy of a block-device disk: libvirt never creates the device, it must be there, as large."""
    stat = ctx.target.paths.get(d.source)
    if stat is None:
        return [path_not_checked(ctx, f"could not check {d.source} on the target")]
    source = ctx.source.paths.get(d.source)
    size = f"{source.size} bytes" if source is not None and source.size else "the source's size"
    if not stat.exists:
        return [Hit(message=f"block device {d.source} (disk {d.target}) does not exist on the target, and libvirt "
                            "creates no block device for a storage copy: \"cannot precreate storage for disk type "
                            "'block'\"",
                    evidence=[f"{ctx.target.spec}: {d.source} not found", f"disk {d.target}: type='block'"],
                    fix=f"create a block device of {size} at {d.source} on the target first (for LVM: lvcreate, "
                        "with the same name), or, if the device is shared, leave it out of the copy "
                        "(virsh migrate --migrate-disks with the other disks)")]
    hits = _existing_target_image(ctx, d)
    if hits or (d.driver_type or "raw").lower() != "raw":
        return hits
    unknown = [h for h, st in ((ctx.source, source), (ctx.target, stat)) if st is None or not st.size]
    if unknown:
        return [Hit(message=f"could not read the size of the block device {d.source} on "
                            + " and ".join(h.spec for h in unknown) + ": a copy into a device of another size fails",
                    evidence=[f"{h.spec}: {d.source} is not under /dev, or /sys/class/block does not name it"
                              for h in unknown],
                    fix="compare the sizes by hand (blockdev --getsize64 on both hosts)", severity=Severity.UNKNOWN)]
    return []


def _existing_target_image(ctx: CheckContext, d: Disk) -> list[Hit]:
    """Storage copy into an image that already exists on the target: format and virtual size must match.

    Also for a raw disk onto a *larger* block device: libvirt 9.0 / QEMU 7.2 put no slice over it and the
    mirror fails "Source and target image have different sizes" (lab: 16 MiB onto 32 MiB)."""
    fmt = (d.driver_type or "raw").lower()
    if fmt not in ("raw", "qcow2"):
        return []  # other formats: devices.image-format (or QEMU) has the say
    target = _image(ctx.target, d)
    if target is None:
        return [Hit(message=f"could not read the header of {d.source} on the target",
                    evidence=[ctx.target.errors.get(f"image:{d.source}", "image header not probed")],
                    fix="allow SSH (SFTP) read access to the target", severity=Severity.UNKNOWN)]
    if why := _format_mismatch(d, target):
        return [Hit(message=f"{d.source} already exists on the target and is not a qcow2 image "
                            f"({target.format}): the target QEMU fails with '{why}'",
                    evidence=[f"{ctx.target.spec}: {d.source} format {target.format}", f"disk {d.target}: {fmt}"],
                    fix=f"remove it on the target (libvirt then pre-creates it in a pool) or recreate it: "
                        f"qemu-img create -f qcow2 {d.source} SIZE")]
    source = _image(ctx.source, d)
    if source is None:
        return [Hit(message=f"could not read the header of {d.source} on the source",
                    evidence=[ctx.source.errors.get(f"image:{d.source}", "image header not probed")],
                    fix="allow SSH (SFTP) read access to the source", severity=Severity.UNKNOWN)]
    if source.virtual_size is None or target.virtual_size is None or source.virtual_size == target.virtual_size:
        return []
    return [Hit(message=f"{d.source} exists on the target with a virtual size of {target.virtual_size} bytes, the "
                        f"source's is {source.virtual_size}: \"migration of disk {d.target} failed: Source and "
                        "target image have different sizes\"",
                evidence=[f"{ctx.source.spec}: {d.source} {source.format}, {source.virtual_size} bytes",
                          f"{ctx.target.spec}: {d.source} {target.format}, {target.virtual_size} bytes"],
                fix=f"recreate it on the target with the source's size (qemu-img create -f {fmt} {d.source} "
                    f"{source.virtual_size}), or remove it and let libvirt pre-create it in a pool")]
