"""Storage checks: shared or not (as libvirt decides), missing or stale on the target, cache modes, secrets, pools."""

from __future__ import annotations

import posixpath

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.facts.models import Disk
from migcheck.facts.procfs import CLUSTER_FS, SHARED_FS, mount_of, parse_mountinfo
from migcheck.report.model import Severity

MOUNTINFO = "/proc/self/mountinfo"


def _local_path(d: Disk) -> str | None:
    return d.source if d.type in ("file", "block", "dir") and d.source else None


def source_fs_type(ctx: CheckContext, path: str) -> str | None:
    text = ctx.source.raw.files.get(MOUNTINFO)
    if text is None:
        return None
    m = mount_of(path, parse_mountinfo(text))
    return m.fs_type if m else None


def _copied(ctx: CheckContext, d: Disk) -> bool:
    return ctx.flags.copy_storage and d.device == "disk" and not d.readonly and not d.shareable


def _writable_disks(ctx: CheckContext):
    for d in ctx.domain.disks:
        if not d.source or d.readonly:
            continue
        yield d


@check("storage.not-shared", Severity.BLOCK, "a writable disk on local (non-shared) storage, not copied")
def not_shared(ctx: CheckContext):
    """libvirt's qemuMigrationSrcIsSafe: a file disk on a filesystem that is not shared needs storage copy."""
    if ctx.flags.offline or ctx.flags.unsafe:
        raise NotApplicable
    out = []
    for d in _writable_disks(ctx):
        if d.type != "file" or _copied(ctx, d):
            continue
        fs = source_fs_type(ctx, d.source)
        if fs is None:
            out.append(Hit(message=f"could not tell which filesystem holds {d.source}",
                           evidence=[ctx.source.errors.get("mountinfo", "mountinfo not read")],
                           fix="allow SSH access to the source", severity=Severity.UNKNOWN))
        elif fs not in SHARED_FS:
            out.append(Hit(
                message=f"disk {d.target} ({d.source}) is on {fs}, which libvirt does not treat as shared: "
                        "'Unsafe migration: Migration without shared storage is unsafe'",
                evidence=[f"{ctx.source.spec}: {d.source} on a {fs} filesystem",
                          "libvirt counts NFS, GFS2, OCFS2, CephFS, GPFS, SMB/CIFS, GlusterFS, Quobyte, BeeGFS as shared"],
                fix="add --copy-storage-all (copies the disk over NBD), or move the disk to shared storage; "
                    "--unsafe only if the same data really is visible on both hosts"))
    return out


@check("storage.unsafe-cache", Severity.BLOCK,
       "a shared, non-cluster disk with a cache mode other than none/directsync on an old QEMU")
def unsafe_cache(ctx: CheckContext):
    """Since QEMU can drop its page cache on migration (QEMU >= 3.1, libvirt's 'migration-file-drop-cache'),
    libvirt accepts any cache mode; on older QEMU it refuses writeback caches on shared storage."""
    if ctx.flags.offline or ctx.flags.unsafe:
        raise NotApplicable
    qemu = ctx.need(ctx.source.qemu_version, "qemu_version", ctx.source)
    if qemu.number >= 3_001_000:
        return []
    out = []
    for d in _writable_disks(ctx):
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


@check("storage.missing-on-target", Severity.BLOCK, "a disk image that does not exist on the target")
def missing_on_target(ctx: CheckContext):
    """Without storage copy the target QEMU opens the same path; with it, libvirt must be able to pre-create it."""
    if ctx.flags.offline:
        raise NotApplicable
    out = []
    for d in ctx.domain.disks:
        path = _local_path(d)
        if path is None or d.type == "dir":
            continue
        if _copied(ctx, d):
            continue  # storage.copy-precreate judges whether the target can create it
        stat = ctx.target.raw.paths.get(path)
        if stat is None:
            out.append(Hit(message=f"could not check {path} on the target", evidence=[ctx.target.errors.get("paths", "")],
                           fix="allow SSH access to the target", severity=Severity.UNKNOWN))
            continue
        if stat.exists:
            continue
        kind = "image" if d.device == "disk" else f"{d.device} image"
        fix = ("migrate with --copy-storage-all, or make the path available on the target (shared storage)"
               if d.device == "disk" and not d.readonly
               else f"copy {path} to the same path on the target, or eject it (virsh change-media --eject)")
        out.append(Hit(message=f"{kind} {path} (disk {d.target}) does not exist on the target: the target QEMU "
                               "will fail to open it ('Cannot access storage file')",
                       evidence=[f"{ctx.target.spec}: {path} not found"], fix=fix))
    return out


@check("storage.stale-copy-on-target", Severity.RISK,
       "a different file at the disk's path on the target (local storage on both hosts)")
def stale_copy(ctx: CheckContext):
    """A same-path file on the target's own local disk is not the guest's disk: with --unsafe the guest would
    continue on stale data, with storage copy libvirt overwrites it."""
    if ctx.flags.offline:
        raise NotApplicable
    out = []
    for d in _writable_disks(ctx):
        if d.type != "file" or d.device != "disk":
            continue
        fs = source_fs_type(ctx, d.source)
        stat = ctx.target.raw.paths.get(d.source)
        if fs is None or fs in SHARED_FS or stat is None or not stat.exists:
            continue
        if ctx.flags.copy_storage:
            out.append(Hit(message=f"{d.source} already exists on the target and --copy-storage will overwrite it",
                           evidence=[f"{ctx.target.spec}: {d.source} exists ({stat.size} bytes)"],
                           fix="make sure the target's file is not another guest's disk", severity=Severity.WARN))
        elif ctx.flags.unsafe:
            out.append(Hit(message=f"{d.source} exists on both hosts on local storage: with --unsafe the guest "
                                   "continues on the target's copy, which is not the disk it was writing",
                           evidence=[f"{ctx.source.spec}: on {fs}", f"{ctx.target.spec}: exists, {stat.size} bytes"],
                           fix="use --copy-storage-all instead of --unsafe, or put the disk on shared storage"))
    return out


@check("storage.copy-precreate", Severity.BLOCK,
       "storage copy: the target cannot pre-create the disk (no pool holds its directory, or no space)")
def copy_precreate(ctx: CheckContext):
    """With --copy-storage-*, libvirt pre-creates missing disks on the target inside a storage pool whose
    target path is the disk's directory; outside any pool it fails."""
    if not ctx.flags.copy_storage or ctx.flags.offline:
        raise NotApplicable
    out = []
    pools = ctx.target.raw.pools
    for d in ctx.domain.disks:
        if not _copied(ctx, d) or d.type != "file" or not d.source:
            continue
        stat = ctx.target.raw.paths.get(d.source)
        if stat is None:
            out.append(Hit(message=f"could not check {d.source} on the target", evidence=[],
                           fix="allow SSH access to the target", severity=Severity.UNKNOWN))
            continue
        if stat.exists:
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
            need = ctx.source.raw.paths.get(d.source)
            if need is not None and need.size and pool.available is not None and need.size > pool.available:
                out.append(Hit(message=f"pool '{pool.name}' on the target has {pool.available} bytes free, the disk "
                                       f"{d.source} is {need.size} bytes",
                               evidence=[f"source size {need.size}", f"target pool available {pool.available}"],
                               fix="free space in the target pool or choose another target"))
    return out


@check("storage.network-disk-secret", Severity.BLOCK, "a network disk whose auth secret is not defined on the target")
def network_disk_secret(ctx: CheckContext):
    if ctx.flags.offline:
        raise NotApplicable
    disks = [d for d in ctx.domain.disks if d.type == "network" and (d.secret_uuid or d.secret_usage)]
    if not disks:
        raise NotApplicable
    secrets = ctx.need(ctx.target.raw.secrets, "secrets", ctx.target)
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


@check("storage.volume-pool-missing", Severity.BLOCK, "a <disk type='volume'> whose pool is missing on the target")
def volume_pool_missing(ctx: CheckContext):
    disks = [d for d in ctx.domain.disks if d.type == "volume" and d.pool]
    if not disks:
        raise NotApplicable
    pools = ctx.need(ctx.target.raw.pools, "pools", ctx.target)
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
