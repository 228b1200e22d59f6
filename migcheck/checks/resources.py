"""Resource checks: memory, huge pages, vCPUs, and the CPUs and NUMA nodes the guest is pinned to."""

from __future__ import annotations

from migcheck.checks.registry import CheckContext, FactMissing, Hit, NotApplicable, check, condition
from migcheck.facts.hostfiles import CPU_ONLINE, NODE_ONLINE
from migcheck.facts.procfs import HUGEPAGE_FILES, IdSet, parse_id_list
from migcheck.report.model import Severity


@condition("numatune")
def _numatune(dom, flags, target=None) -> bool:
    return not flags.offline and bool(dom.numatune_nodeset)


@condition("pinning")
def _pinned(dom, flags, target=None) -> bool:
    return not flags.offline and bool(dom.vcpu_cpuset or any(dom.vcpupin_cpusets) or dom.emulatorpin_cpuset)


@condition("hugepages")
def _hugepages_guest(dom, flags, target=None) -> bool:
    return bool(dom.hugepages) and not flags.offline


def _live_only(ctx: CheckContext) -> None:
    if ctx.flags.offline:
        raise NotApplicable


@check("resources.memory", Severity.RISK, "the target may not have enough free memory for the guest", also=(Severity.BLOCK,),
       reads=("memory~fits",))
def memory(ctx: CheckContext):
    _live_only(ctx)
    dom = ctx.domain
    if dom.hugepages:
        raise NotApplicable  # judged by resources.hugepages
    mem = ctx.need(ctx.target.memory, "meminfo", ctx.target)
    total, avail = mem.total_kib, mem.available_kib
    need = dom.memory_kib
    if total is not None and need > total:
        return [Hit(message=f"the guest has {need // 1024} MiB, the target only {total // 1024} MiB of RAM in all",
                    evidence=[f"{ctx.target.spec}: MemTotal {total} KiB"], fix="choose a bigger target",
                    severity=Severity.BLOCK)]
    if avail is not None and need > avail:
        return [Hit(message=f"the guest has {need // 1024} MiB, the target has {avail // 1024} MiB available: "
                            "the migration may fail or the target may swap or OOM-kill",
                    evidence=[f"{ctx.target.spec}: MemAvailable {avail} KiB", f"guest <memory> {need} KiB"],
                    fix="free memory on the target (or migrate other guests away first)")]
    return []


@check("resources.hugepages", Severity.BLOCK, "huge pages: hugetlbfs not mounted or too few free pages on the target",
       proven_by=(
           "tests/lab/test_catalogue_network_state.py::test_hugepages_without_hugetlbfs_on_target_is_blocked_and_fails",
       ),
       explains={310: r"hugetlbfs"},
       reads=("hugepages_free?hugepages", "memory?hugepages", "mounts?hugepages"))
def hugepages(ctx: CheckContext):
    """Proven in the lab (libvirt 9.0) for the mount: a <hugepages/> guest migrates to a target with hugetlbfs
    mounted, and fails with 'internal error: hugetlbfs filesystem is not mounted or disabled by
    administrator config' on one without. The free-page count is not lab-proven: lab hosts share one
    kernel and so one pool of huge pages."""
    _live_only(ctx)
    dom = ctx.domain
    if not dom.hugepages:
        raise NotApplicable
    mounts = ctx.need(ctx.target.mounts, "mountinfo", ctx.target)
    hugetlbfs = [m for m in mounts if m.fs_type == "hugetlbfs"]
    default_kib = (ctx.target.memory.hugepage_size_kib if ctx.target.memory else None) or 2048
    out = []
    for size in sorted(set(dom.hugepages)):
        size = size or default_kib
        if not hugetlbfs:
            out.append(Hit(message="hugetlbfs is not mounted on the target: libvirt fails with 'internal error: "
                                   "hugetlbfs filesystem is not mounted or disabled by administrator config'",
                           evidence=[f"{ctx.target.spec}: no hugetlbfs in /proc/self/mountinfo"],
                           fix="mount hugetlbfs on the target (mount -t hugetlbfs hugetlbfs /dev/hugepages) and "
                               "restart libvirtd so it sees it"))
            break
        free = ctx.target.hugepages_free.get(size)
        if free is None:
            malformed = ctx.target.errors.get(f"file:{HUGEPAGE_FILES.get(size)}")
            if malformed:
                raise FactMissing(f"free {size} KiB huge pages of {ctx.target.spec}: {malformed}")
            out.append(Hit(message=f"the target does not offer {size} KiB huge pages",
                           evidence=[f"{ctx.target.spec}: {HUGEPAGE_FILES.get(size, f'{size} KiB pages')} missing"],
                           fix=f"reserve {size} KiB huge pages on the target (kernel hugepagesz=)"))
            continue
        need = -(-dom.memory_kib // size)
        if free < need:
            out.append(Hit(message=f"the guest needs {need} free {size} KiB huge pages, the target has {free}",
                           evidence=[f"{ctx.target.spec}: free_hugepages {free}", f"guest memory {dom.memory_kib} KiB"],
                           fix=f"reserve more: echo N > /sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages "
                               "on the target"))
    return out


@check("resources.vcpus", Severity.BLOCK, "more vCPUs than the target's QEMU allows, or than it has CPUs", also=(Severity.WARN,),
       reads=("cpus_online", "domcaps"))
def vcpus(ctx: CheckContext):
    _live_only(ctx)
    dom = ctx.domain
    dc = ctx.target.domcaps_for(dom)
    if dc is None:
        key = next((k for k in ctx.target.errors if k.startswith("domcaps")), None)
        raise FactMissing(f"domain capabilities of {ctx.target.spec}"
                          + (f": {ctx.target.errors[key]}" if key else ""))
    if dc.max_vcpus and dom.vcpus > dc.max_vcpus:
        return [Hit(message=f"the guest has {dom.vcpus} vCPUs, the target's QEMU allows {dc.max_vcpus} for "
                            f"machine {dc.machine}",
                    evidence=[f"{ctx.target.spec}: domain capabilities vcpu max {dc.max_vcpus}"],
                    fix="choose another target or reduce the guest's vCPUs (cold change)")]
    online = ctx.target.cpus_online
    if online is None:
        malformed = ctx.target.errors.get(f"file:{CPU_ONLINE}")
        if malformed:
            raise FactMissing(f"online CPUs of {ctx.target.spec}: {malformed}")
        return []
    ncpu = len(online)
    if dom.vcpus > ncpu:
        return [Hit(message=f"the guest has {dom.vcpus} vCPUs, the target only {ncpu} online CPUs: it will run "
                            "overcommitted",
                    evidence=[f"{ctx.target.spec}: online CPUs {online}"],
                    fix="choose a larger target", severity=Severity.WARN)]
    return []


@check("resources.cpu-pinning", Severity.BLOCK, "vCPU/emulator pinning names CPUs the target does not have",
       reads=("cpus_online?pinning",))
def cpu_pinning(ctx: CheckContext):
    _live_only(ctx)
    dom = ctx.domain
    sets = [("vcpu cpuset", dom.vcpu_cpuset)] + [("vcpupin", c) for c in dom.vcpupin_cpusets] + \
           [("emulatorpin", dom.emulatorpin_cpuset)]
    sets = [(what, s) for what, s in sets if s]
    if not sets:
        raise NotApplicable
    online = ctx.need(ctx.target.cpus_online, "cpu_online", ctx.target)
    out = []
    for what, cpuset in sets:
        try:
            wanted = parse_id_list(cpuset)
        except ValueError:
            continue
        missing = wanted - online
        if missing and not (wanted & online and what == "vcpu cpuset"):
            out.append(Hit(message=f"{what} '{cpuset}' names CPUs the target does not have: "
                                   f"{','.join(map(str, missing.first(16)))}",
                           evidence=[f"{ctx.target.spec}: online CPUs {online}"],
                           fix="migrate with --xml (a destination XML with pinning valid there), or remove the pinning"))
    return out


def _some(ids: IdSet, n: int = 16) -> str:
    """'[0, 1]' as a list prints, cut after n ids: a hostile range must not make a message of billions."""
    shown = ids.first(n)
    return str(shown) if len(ids) <= n else str(shown)[:-1] + f", ... ({len(ids)} in all)]"


@check("resources.numa-nodeset", Severity.BLOCK, "<numatune> names NUMA nodes the target does not have",
       reads=("caps?numatune", "nodes_online?numatune"))
def numa_nodeset(ctx: CheckContext):
    _live_only(ctx)
    dom = ctx.domain
    if not dom.numatune_nodeset:
        raise NotApplicable
    nodes = ctx.target.nodes_online
    if nodes is None:
        malformed = ctx.target.errors.get(f"file:{NODE_ONLINE}")
        if malformed:
            raise FactMissing(f"online NUMA nodes of {ctx.target.spec}: {malformed}")
        nodes = IdSet.of(ctx.need(ctx.target.caps, "capabilities", ctx.target).numa_cells)
    missing = parse_id_list(dom.numatune_nodeset) - nodes
    if not missing:
        return []
    return [Hit(message=f"numatune nodeset '{dom.numatune_nodeset}' names NUMA node(s) {_some(missing)} the target lacks",
                evidence=[f"{ctx.target.spec}: NUMA nodes {_some(nodes)}"],
                fix="migrate with --xml carrying a nodeset valid on the target, or choose a target with those nodes")]
