"""``virsh migrate`` flags, spelled as virsh spells them, and the combinations libvirt rejects."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class MigrationFlags:
    """The flags of one ``virsh migrate`` (a plain dataclass: parsed before any host is contacted,
    without loading pydantic first)."""

    live: bool = False
    offline: bool = False
    persistent: bool = False
    undefinesource: bool = False
    copy_storage_all: bool = False
    copy_storage_inc: bool = False
    unsafe: bool = False
    p2p: bool = False
    tunnelled: bool = False
    postcopy: bool = False
    tls: bool = False
    parallel: bool = False
    parallel_connections: int | None = None
    compressed: bool = False
    auto_converge: bool = False
    migrateuri: str | None = None
    listen_address: str | None = None
    dname: str | None = None
    migrate_disks: str | None = None  # comma-separated disk targets (vda,vdb): only these are copied
    xml: str | None = None  # --xml FILE: the definition the target runs (migcheck.destxml reads it)
    persistent_xml: str | None = None  # --persistent-xml FILE: the inactive definition the target keeps
    suspend: bool = False
    abort_on_error: bool = False

    @property
    def copy_storage(self) -> bool:
        return self.copy_storage_all or self.copy_storage_inc

    def copies_disk(self, target: str | None) -> bool:
        """Whether storage copy includes the disk with this target name (all of them without --migrate-disks)."""
        if not self.copy_storage:
            return False
        if self.migrate_disks is None:
            return True
        return target is not None and target in {t.strip() for t in self.migrate_disks.split(",")}

    @property
    def is_live(self) -> bool:
        """virsh migrates live only with --live; without it the guest is paused during transfer,
        but it still has to be running (only --offline moves a shut-off guest)."""
        return not self.offline

    def as_args(self) -> list[str]:
        out = []
        for field in fields(self):
            name, value = field.name, getattr(self, field.name)
            opt = "--" + name.replace("_", "-")
            if name == "parallel_connections" and value is not None:
                out += ["--parallel-connections", str(value)]
            elif field.type in (bool, "bool"):
                if value:
                    out.append(opt)
            elif value is not None:
                out += [opt, str(value)]
        return out


_BOOL = {
    "--live": "live", "--offline": "offline", "--persistent": "persistent",
    "--undefinesource": "undefinesource", "--copy-storage-all": "copy_storage_all",
    "--copy-storage-inc": "copy_storage_inc", "--unsafe": "unsafe", "--p2p": "p2p",
    "--tunnelled": "tunnelled", "--tunneled": "tunnelled", "--postcopy": "postcopy", "--tls": "tls",
    "--parallel": "parallel", "--compressed": "compressed", "--auto-converge": "auto_converge",
    "--suspend": "suspend", "--abort-on-error": "abort_on_error",
}
_VALUE = {"--migrateuri": "migrateuri", "--listen-address": "listen_address", "--dname": "dname",
          "--parallel-connections": "parallel_connections", "--migrate-disks": "migrate_disks",
          "--xml": "xml", "--persistent-xml": "persistent_xml"}
# Flags virsh accepts that do not change what migcheck checks.
_IGNORED_BOOL = {"--verbose", "--change-protection", "--direct",
                 "--postcopy-after-precopy", "--rdma-pin-all", "--zerocopy"}
_IGNORED_VALUE = {"--timeout", "--timeout-suspend", "--timeout-postcopy", "--graphicsuri",
                  "--disks-port", "--disks-uri", "--bandwidth",
                  "--comp-methods", "--comp-mt-level", "--comp-mt-threads", "--comp-mt-dthreads",
                  "--comp-xbzrle-cache", "--comp-zlib-level", "--comp-zstd-level", "--tls-destination",
                  "--postcopy-bandwidth", "--auto-converge-initial", "--auto-converge-increment"}


class FlagError(ValueError):
    pass


def parse_flags(args: list[str]) -> MigrationFlags:
    values: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, inline = arg.partition("=")
        if key in _BOOL and not eq:
            values[_BOOL[key]] = True
        elif key in _VALUE or key in _IGNORED_VALUE:
            if eq:
                val = inline
            elif i + 1 < len(args):
                i += 1
                val = args[i]
            else:
                raise FlagError(f"{key} needs a value")
            if key in _VALUE:
                if key == "--parallel-connections" and not (val.isascii() and val.isdigit()):
                    raise FlagError(f"{key} needs a number, not {val!r}")
                values[_VALUE[key]] = int(val) if key == "--parallel-connections" else val
        elif key in _IGNORED_BOOL and not eq:
            pass
        else:
            raise FlagError(f"unknown virsh migrate flag {arg!r}")
        i += 1
    if "parallel_connections" in values:
        values["parallel"] = True
    return MigrationFlags(**values)


def rejected_combinations(f: MigrationFlags) -> list[str]:
    """Combinations virsh or libvirt (qemuMigrationSrcBegin) refuse before anything moves.

    Each text is what virsh 9.0 prints, as seen in the lab; with --p2p the source's libvirtd sometimes loses
    the refusal and virsh says only 'End of file while reading data'. --tunnelled with --copy-storage-* is not here:
    it fails only when the guest has a disk to copy (the flags.rejected-combination check knows the guest).
    """
    out = []
    if f.live and f.offline:
        out.append("'Options --live and --offline are mutually exclusive' (virsh)")
    if f.copy_storage_all and f.copy_storage_inc:
        out.append("'Flags 'VIR_MIGRATE_NON_SHARED_DISK' and 'VIR_MIGRATE_NON_SHARED_INC' are mutually exclusive'")
    if f.tunnelled and f.parallel:
        out.append("'Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive'")
    if f.tunnelled and not f.p2p:
        out.append("'cannot perform tunnelled migration without using peer2peer flag' (--tunnelled needs --p2p)")
    if f.offline and f.copy_storage:
        out.append("'offline migration cannot handle non-shared storage' (--offline with --copy-storage-*)")
    if f.offline and not f.persistent:
        out.append("'offline migration must be specified with the persistent flag set' (--offline needs --persistent)")
    if f.offline and f.tunnelled:
        out.append("'tunnelled offline migration does not make sense' (--offline with --tunnelled)")
    if f.postcopy and (not f.live or f.suspend):
        out.append("'post-copy migration is not supported with non-live or paused migration' "
                   "(--postcopy needs --live and no --suspend)")
    if f.postcopy and f.tunnelled:
        out.append("'post-copy is not supported with tunnelled migration'")
    if f.tls and f.tunnelled:
        out.append("TLS cannot be used for tunnelled migration (libvirt 9.0 does not refuse it up front: the "
                   "migration fails with 'TLS handshake failed', 'failed to convert virJSONValue to yajl data' or "
                   "'End of file while reading data')")
    return out
