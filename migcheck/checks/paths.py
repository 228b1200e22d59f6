"""Host-local paths: files and directories the guest's XML names, which must exist on the target too."""

from __future__ import annotations

import posixpath

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.facts.models import Domain
from migcheck.facts.procfs import local_ipv4_addresses
from migcheck.report.model import Severity


def chardev_dirs(dom: Domain) -> list[tuple[str, str]]:
    """(what, directory) for each file/unix chardev: QEMU creates the file, its directory must exist."""
    out = []
    for c in dom.chardevs:
        if c.type in ("file", "unix") and c.path:
            out.append((f"{c.kind} ({c.type}) {c.path}", posixpath.dirname(c.path)))
    return out


def boot_files(dom: Domain) -> list[tuple[str, str]]:
    return [(what, p) for what, p in (("kernel", dom.kernel), ("initrd", dom.initrd), ("loader", dom.loader)) if p]


def _stat_hits(ctx: CheckContext, items, make_fix):
    out = []
    for what, path in items:
        stat = ctx.target.raw.paths.get(path)
        if stat is None:
            out.append(Hit(message=f"could not check {path} on the target", evidence=[ctx.target.errors.get("paths", "")],
                           fix="allow SSH access to the target", severity=Severity.UNKNOWN))
        elif not stat.exists:
            out.append(Hit(message=f"{what}: {path} does not exist on the target",
                           evidence=[f"{ctx.target.spec}: {path} not found"], fix=make_fix(path)))
    return out


@check("paths.chardev-directory", Severity.BLOCK, "a serial/console/channel file or socket directory missing on the target",
       proven_by_lab=False)
def chardev_directory(ctx: CheckContext):
    if ctx.flags.offline:
        raise NotApplicable
    items = chardev_dirs(ctx.domain)
    if not items:
        raise NotApplicable
    return _stat_hits(ctx, items, lambda p: f"create {p} on the target (mkdir -p), with the same owner and SELinux/"
                                            "AppArmor labels as on the source")


@check("paths.boot-files", Severity.BLOCK, "kernel, initrd or firmware loader missing on the target")
def boot_files_missing(ctx: CheckContext):
    if ctx.flags.offline:
        raise NotApplicable
    items = boot_files(ctx.domain)
    if not items:
        raise NotApplicable
    return _stat_hits(ctx, items, lambda p: f"copy {p} to the target (same path), or install the same firmware "
                                            "package there")


@check("paths.nvram", Severity.RISK, "the guest's UEFI variable store does not exist on the target")
def nvram(ctx: CheckContext):
    """libvirt (this era) does not copy the NVRAM file; a missing one is recreated from the template,
    losing the guest's UEFI variables (boot entries, Secure Boot keys) at the next boot."""
    if ctx.flags.offline or not ctx.domain.nvram:
        raise NotApplicable
    path = ctx.domain.nvram
    stat = ctx.target.raw.paths.get(path)
    if stat is None:
        return [Hit(message=f"could not check {path} on the target", evidence=[], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    if stat.exists:
        return []
    return [Hit(message=f"NVRAM {path} does not exist on the target: it would be recreated from the template and the "
                        "guest's UEFI variables lost",
                evidence=[f"{ctx.target.spec}: {path} not found"],
                fix=f"copy {path} to the target before migrating (scp), or keep NVRAM on shared storage")]


LOCAL_ADDRS = {"0.0.0.0", "::", "127.0.0.1", "::1", "localhost", None, ""}


@check("paths.graphics-listen", Severity.BLOCK, "a VNC/SPICE listen address that does not exist on the target")
def graphics_listen(ctx: CheckContext):
    if ctx.flags.offline:
        raise NotApplicable
    items = [g for g in ctx.domain.graphics if g.type in ("vnc", "spice") and g.listen not in LOCAL_ADDRS]
    if not items:
        raise NotApplicable
    addrs_text = ctx.target.raw.files.get("/proc/net/fib_trie")
    if addrs_text is None:
        return [Hit(message="could not read the target's addresses", evidence=[], fix="allow SSH access to the target",
                    severity=Severity.UNKNOWN)]
    v6 = ctx.target.raw.files.get("/proc/net/if_inet6", "")
    local = local_ipv4_addresses(addrs_text)
    out = []
    for g in items:
        if g.listen in local or _v6_in(g.listen, v6):
            continue
        out.append(Hit(message=f"{g.type} listens on {g.listen}, an address the target does not have: QEMU will fail "
                               "to bind ('Cannot assign requested address')",
                       evidence=[f"<graphics type='{g.type}' listen='{g.listen}'>"],
                       fix="listen on 0.0.0.0 or a libvirt <listen type='network'>, or migrate with --xml giving the "
                           "target's address"))
    return out


def _v6_in(addr: str, if_inet6: str) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if ip.version != 6:
        return False
    return ip.exploded.replace(":", "") in if_inet6
