"""Live drift: the running guest is not what its XML, or the installed software, says."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.facts.models import Domain
from migcheck.report.model import Severity


def _running(ctx: CheckContext) -> None:
    if ctx.flags.offline or not ctx.guest.running:
        raise NotApplicable


@check("drift.qemu-binary-replaced", Severity.WARN, "the running QEMU binary was replaced or deleted on disk")
def qemu_binary_replaced(ctx: CheckContext):
    """A package upgrade replaces /usr/bin/qemu-system-*; running guests keep the old, deleted binary.

    The migration itself usually works (the target starts its own QEMU with the
    guest's pinned machine type), but libvirt's capabilities now describe a QEMU
    the guest is not running, so what migcheck and libvirt know of the source
    may not match the process.
    """
    _running(ctx)
    link = ctx.guest.exe_link
    if link is None:
        why = ctx.source.errors.get("qemu_exe") or ctx.source.errors.get("cmdline") or "not read"
        return [Hit(message="could not read /proc/PID/exe of the guest's QEMU", evidence=[why],
                    fix="allow SSH access to the source", severity=Severity.INFO)]
    if not link.endswith(" (deleted)"):
        return []
    return [Hit(message=f"the guest runs a QEMU binary that no longer exists on disk ({link}): it was started "
                        "before QEMU was upgraded or reinstalled",
                evidence=[f"/proc/PID/exe -> {link}"]
                + ([f"started with QEMU {ctx.guest.started_qemu.text}, installed now "
                    f"{ctx.source.qemu_version.text}"] if ctx.guest.started_qemu and ctx.source.qemu_version else []),
                fix="expected after an upgrade; migrating the guest (or a cold restart) moves it onto a current QEMU")]


@check("drift.started-by-other-version", Severity.WARN,
       "the guest was started by another libvirt or QEMU version than the one installed now")
def started_by_other_version(ctx: CheckContext):
    """The QEMU log header records the versions at start; the daemon reports what is installed now."""
    _running(ctx)
    g = ctx.guest
    if g.started_libvirt is None and g.started_qemu is None:
        why = ctx.source.errors.get("qemu_log", "no version header in the QEMU log")
        return [Hit(message="could not tell which versions started the guest", evidence=[why],
                    fix="allow SSH access to the source (reads /var/log/libvirt/qemu/NAME.log)",
                    severity=Severity.INFO)]
    diffs = []
    if g.started_libvirt and ctx.source.libvirt_version and g.started_libvirt.number != ctx.source.libvirt_version.number:
        diffs.append(f"libvirt {g.started_libvirt.text} at start, {ctx.source.libvirt_version.text} now")
    if g.started_qemu and ctx.source.qemu_version and g.started_qemu.number // 1000 != ctx.source.qemu_version.number // 1000:
        diffs.append(f"QEMU {g.started_qemu.text} at start, {ctx.source.qemu_version.text} now")
    if not diffs:
        return []
    return [Hit(message="the guest was started by other software versions than the ones installed now: "
                        + "; ".join(diffs),
                evidence=diffs + ["defaults the old libvirt left implicit may differ from what the XML now shows "
                                  "(the invtsc case of libvirt 6.5)"],
                fix="trust the running QEMU (migcheck does); a cold restart aligns the guest with the installed software")]


def _summary(dom: Domain) -> dict[str, str]:
    """The parts of a definition whose difference matters when it moves."""
    return {
        "memory": f"{dom.memory_kib} KiB",
        "vcpus": str(dom.vcpus),
        "machine": dom.machine or "",
        "tsc": str(dom.tsc.frequency if dom.tsc else None),
        "disks": ", ".join(sorted(f"{d.target}={d.source}" for d in dom.disks)),
        "interfaces": ", ".join(sorted(f"{i.type}:{i.bridge or i.network or i.dev or ''}" for i in dom.interfaces)),
        "hostdevs": str(len(dom.hostdevs)),
    }


def _cpu_difference(live: Domain, inactive: Domain) -> str | None:
    """What the next boot changes about the CPU. The live XML always carries libvirt's expansion
    (host-model becomes a named model, default models gain feature policies), so only what the
    inactive definition states explicitly is compared."""
    want, have = inactive.cpu, live.cpu
    if want.mode == "host-model":
        return None  # expanded at every start: nothing to compare
    if want.mode in ("host-passthrough", "maximum"):
        if have.mode != want.mode or (want.migratable is not False) != (have.migratable is not False):
            return (f"cpu: running mode={have.mode} migratable={have.migratable}, "
                    f"next boot mode={want.mode} migratable={want.migratable}")
        return None
    if want.model and want.model != have.model:
        return f"cpu: running model {have.model}, next boot model {want.model}"
    changed = sorted(f"{name}={policy} (running: {have.features.get(name, 'unset')})"
                     for name, policy in want.features.items() if have.features.get(name) != policy)
    return "cpu features at next boot: " + ", ".join(changed) if changed else None


@check("drift.inactive-config-differs", Severity.WARN,
       "the guest's next-boot (inactive) configuration differs from the running one")
def inactive_config_differs(ctx: CheckContext):
    """Pending changes (virsh edit, --config) apply at the next cold boot.

    With --persistent libvirt sends the inactive definition along, so they
    follow the guest (info).  Without it the guest is transient on the target:
    the pending changes stay behind with the source's definition (warn).
    """
    _running(ctx)
    g = ctx.guest
    if not g.persistent or g.inactive is None or g.live is None:
        raise NotApplicable
    live, inactive = _summary(g.live), _summary(g.inactive)
    diffs = [f"{k}: running {live[k]!r}, next boot {inactive[k]!r}" for k in live if live[k] != inactive[k]]
    cpu = _cpu_difference(g.live, g.inactive)
    if cpu:
        diffs.append(cpu)
    if not diffs:
        return []
    if ctx.flags.persistent:
        return [Hit(message="the next-boot configuration differs from the running guest; with --persistent it "
                            "follows the guest and applies at its next cold boot on the target",
                    evidence=diffs, fix=None, severity=Severity.INFO)]
    return [Hit(message="the next-boot configuration differs from the running guest, and without --persistent the "
                        "guest arrives transient: the pending changes stay behind on the source",
                evidence=diffs,
                fix="add --persistent (and --undefinesource to move the definition), or apply the changes first")]
