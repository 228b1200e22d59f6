"""CPU and TSC checks: invtsc, TSC frequency, and whether the target can give the guest its CPU."""

from __future__ import annotations

import re
from dataclasses import dataclass

from migcheck.checks.registry import CheckContext, Hit, NotApplicable, check
from migcheck.facts.host import HostFacts
from migcheck.facts.models import Domain, GuestCpu
from migcheck.probe.plan import SOURCE_CPUS, TARGET_CPUS, PlanHost, Question
from migcheck.probe.raw import CpuCompareAnswer, cpu_key, domcaps_key
from migcheck.report.model import Severity

TSC_TOLERANCE_PPM = 250
INVTSC_QEMU_TEXT = "State blocked by non-migratable CPU device (invtsc flag)"


@dataclass
class EffectiveCpu:
    """What the guest's vCPU really is, and where we learned it."""

    source: str  # "running QEMU" or "domain XML"
    mode: str  # host-passthrough | maximum | named
    model: str | None
    migratable: bool | None
    invtsc: bool
    tsc_frequency: int | None
    kvm: bool


def _xml_invtsc(dom: Domain, host: HostFacts) -> bool:
    if dom.cpu.exposes("invtsc"):
        return True
    policy = dom.cpu.features.get("invtsc")
    if policy == "optional":  # libvirt passes optional features as invtsc=on when the host has them
        return _host_has_invtsc(host) is not False
    if policy == "disable":  # an explicit policy wins over passthrough (libvirt: -cpu host,...,invtsc=off)
        return False
    if dom.cpu.mode in ("host-passthrough", "maximum") and dom.cpu.migratable is False:
        return _host_has_invtsc(host) is not False
    return False


def _host_has_invtsc(host: HostFacts) -> bool | None:
    """invtsc is never part of a named model, so the host CPU lists it when present."""
    if host.caps is None or not host.caps.cpu.features:
        return None
    return "invtsc" in host.caps.cpu.features


def effective_cpu(ctx: CheckContext) -> EffectiveCpu:
    """The running QEMU command line when we have it; otherwise the live domain XML."""
    dom = ctx.domain
    guest = ctx.guest
    cmd = guest.cmdline
    if cmd is not None and cmd.cpu is not None:
        model = cmd.cpu.model
        mode = {"host": "host-passthrough", "max": "maximum"}.get(model, "named")
        invtsc = cmd.invtsc_exposed()
        if invtsc and mode != "named" and cmd.cpu.flag("invtsc") is None and _host_has_invtsc(ctx.source) is False:
            invtsc = False
        return EffectiveCpu(
            source="running QEMU",
            mode=mode,
            model=model,
            migratable=cmd.cpu.migratable,
            invtsc=invtsc,
            tsc_frequency=cmd.cpu.tsc_frequency,
            kvm=(cmd.accel or dom.virt_type) == "kvm",
        )
    mode = dom.cpu.mode if dom.cpu.mode in ("host-passthrough", "maximum") else "named"
    return EffectiveCpu(
        source="domain XML",
        mode=mode,
        model=dom.cpu.model,
        migratable=dom.cpu.migratable,
        invtsc=_xml_invtsc(dom, ctx.source),
        tsc_frequency=dom.tsc.frequency if dom.tsc else None,
        kvm=dom.virt_type == "kvm",
    )


def _running_or_skip(ctx: CheckContext) -> None:
    if ctx.flags.offline or not ctx.guest.running:
        raise NotApplicable  # an offline migration moves only the definition


def _tsc_fix(ctx: CheckContext) -> str:
    src = ctx.source.caps.cpu.tsc_frequency if ctx.source.caps else None
    hz = str(src) if src else "HZ"
    where = (
        f"{src} Hz is the source host's TSC frequency (virsh capabilities)"
        if src
        else "use the source host's TSC frequency: virsh capabilities, <counter name='tsc' frequency=...>"
    )
    return (
        f"pin the guest's TSC frequency: virsh edit {ctx.guest.name}, put "
        f"<clock offset='utc'><timer name='tsc' frequency='{hz}'/></clock> "
        f"({where}), then power-cycle the guest; or drop invtsc "
        "(host-passthrough with migratable='on', or remove <feature name='invtsc'/>)"
    )


@check("cpu.invtsc-without-tsc-frequency", Severity.BLOCK,
       "invtsc exposed to a KVM guest without a fixed TSC frequency", proven_by=(
           "tests/lab/test_core_invtsc.py::test_passthrough_migratable_off_is_blocked_and_fails",
           "tests/lab/test_core_invtsc.py::test_explicit_invtsc_without_frequency_is_blocked_and_fails",
           "tests/lab/test_core_invtsc.py::test_invtsc_with_the_hosts_tsc_frequency_is_ok_and_migrates",
           "tests/lab/test_migrate_gate.py::test_migrate_refuses_the_invtsc_guest_without_touching_it",
           "tests/lab/test_migrate_gate.py::test_qmp_reports_qemus_blocked_reason",
       ),
       explains={10: r"invtsc"})
def invtsc_without_tsc_frequency(ctx: CheckContext):
    """QEMU refuses to migrate a KVM guest that sees invtsc unless its TSC frequency is fixed."""
    _running_or_skip(ctx)
    cpu = effective_cpu(ctx)
    if not cpu.kvm:
        raise NotApplicable  # the blocker is KVM-only code in QEMU
    if cpu.source != "running QEMU" and not cpu.invtsc:
        why = ctx.source.errors.get("cmdline", "the running QEMU command line was not read")
        return [Hit(
            message="could not confirm against the running QEMU whether invtsc is exposed",
            evidence=[f"domain XML: cpu mode={ctx.domain.cpu.mode}, migratable={ctx.domain.cpu.migratable}",
                      f"running command line unavailable: {why}"],
            fix="let migcheck read /proc/PID/cmdline over SSH (see the README, Access and safety)",
            severity=Severity.UNKNOWN,
        )]
    if not cpu.invtsc or cpu.tsc_frequency:
        return []
    dom = ctx.domain
    how = []
    if cpu.source == "running QEMU":
        cpu_arg = next((a for i, a in enumerate(ctx.guest.cmdline.argv) if i and ctx.guest.cmdline.argv[i - 1] == "-cpu"), "")
        how.append(f"running QEMU: -cpu {cpu_arg[:200]}")
    if dom.cpu.exposes("invtsc"):
        how.append(f"domain XML: <feature policy='{dom.cpu.features['invtsc']}' name='invtsc'/>")
    if dom.cpu.mode in ("host-passthrough", "maximum"):
        mig = {True: "'on'", False: "'off'", None: "(absent)"}[dom.cpu.migratable]
        how.append(f"domain XML: <cpu mode='{dom.cpu.mode}' migratable={mig}>")
    how.append("no TSC frequency: no <timer name='tsc' frequency=...> and no tsc-frequency= on -cpu")
    return [Hit(
        message=f"invtsc is exposed and the TSC frequency is not fixed: QEMU will refuse with "
                f"'{INVTSC_QEMU_TEXT}'",
        evidence=how,
        fix=_tsc_fix(ctx),
    )]


@check("cpu.tsc-frequency-target", Severity.BLOCK,
       "the guest's TSC frequency cannot be honoured by the target host", also=(Severity.RISK, Severity.WARN),
       explains={20: r"TSC frequency"},
       reads=("caps",))
def tsc_frequency_target(ctx: CheckContext):
    """A guest with a fixed TSC frequency starts on a host within ±250 ppm of it, or one that scales the TSC."""
    _running_or_skip(ctx)
    cpu = effective_cpu(ctx)
    if not cpu.kvm or not cpu.tsc_frequency:
        raise NotApplicable
    caps = ctx.need(ctx.target.caps, "capabilities", ctx.target)
    target_hz, scaling = caps.cpu.tsc_frequency, caps.cpu.tsc_scaling
    guest_hz = cpu.tsc_frequency
    if not target_hz:
        return [Hit(
            message="the target reports no TSC frequency, so QEMU decides at start whether it can run the guest's TSC",
            evidence=[f"guest TSC frequency {guest_hz} Hz ({cpu.source})",
                      f"{ctx.target.spec}: capabilities have no <counter name='tsc'>"],
            fix="migrate to a host of the same CPU/TSC frequency, or one whose capabilities report scaling='yes'",
            severity=Severity.RISK,
        )]
    tolerance = target_hz * TSC_TOLERANCE_PPM // 1_000_000
    lo, hi = target_hz - tolerance, target_hz + tolerance
    ev = [f"guest TSC frequency {guest_hz} Hz ({cpu.source})",
          f"{ctx.target.spec}: TSC {target_hz} Hz, scaling={'yes' if scaling else 'no' if scaling is False else 'unknown'}, "
          f"tolerance [{lo}, {hi}] Hz (±{TSC_TOLERANCE_PPM} ppm)"]
    if lo <= guest_hz <= hi:
        return []
    if scaling is None:
        return [Hit(
            message="the guest's TSC frequency is outside the target's tolerance and the target does not say "
                    "whether it can scale the TSC: libvirt lets QEMU try, which fails without scaling",
            evidence=ev,
            fix="prefer a target whose TSC frequency is within 250 ppm of the guest's",
            severity=Severity.RISK,
        )]
    if scaling:
        return [Hit(
            message="the guest's TSC frequency is outside the target's tolerance; the target claims TSC scaling",
            evidence=ev + ["scaling='yes' has been seen to lie (libvirt GitLab #188)"],
            fix="prefer a target with the same TSC frequency",
            severity=Severity.WARN,
        )]
    return [Hit(
        message=f"the target's TSC runs at {target_hz} Hz, outside ±{TSC_TOLERANCE_PPM} ppm of the guest's "
                f"{guest_hz} Hz, and it cannot scale the TSC",
        evidence=ev,
        fix="migrate to a host whose TSC frequency is within 250 ppm of the guest's, or one with TSC scaling",
    )]


@check("cpu.xml-differs-from-running", Severity.WARN,
       "the domain XML and the running QEMU disagree about the CPU")
def xml_differs_from_running(ctx: CheckContext):
    """The running process is the truth; the XML may predate a libvirt upgrade or an edit."""
    _running_or_skip(ctx)
    cmd = ctx.need(ctx.guest.cmdline, "cmdline", ctx.source)
    if cmd.cpu is None:
        raise NotApplicable
    dom = ctx.domain
    diffs = []
    xml_model = {"host-passthrough": "host", "maximum": "max"}.get(dom.cpu.mode)
    if xml_model and cmd.cpu.model != xml_model:
        diffs.append(f"XML cpu mode='{dom.cpu.mode}' but QEMU runs -cpu {cmd.cpu.model}")
    if xml_model and cmd.cpu.model == xml_model:
        xml_mig = dom.cpu.migratable if dom.cpu.migratable is not None else True
        run_mig = cmd.cpu.migratable if cmd.cpu.migratable is not None else True
        if xml_mig != run_mig:
            diffs.append(f"XML says migratable='{'on' if xml_mig else 'off'}' but QEMU runs "
                         f"-cpu {cmd.cpu.model}{'' if cmd.cpu.migratable is None else ',migratable=' + ('on' if run_mig else 'off')}")
    xml_inv = _xml_invtsc(dom, ctx.source)
    run_inv = cmd.invtsc_exposed()
    if xml_inv != run_inv:
        diffs.append(f"XML {'exposes' if xml_inv else 'does not expose'} invtsc, the running QEMU "
                     f"{'does' if run_inv else 'does not'}")
    xml_hz = dom.tsc.frequency if dom.tsc else None
    if xml_hz != cmd.cpu.tsc_frequency and (xml_hz or cmd.cpu.tsc_frequency):
        diffs.append(f"TSC frequency: XML {xml_hz or 'unset'}, running QEMU {cmd.cpu.tsc_frequency or 'unset'}")
    if not diffs:
        return []
    return [Hit(
        message="the domain XML and the running QEMU disagree about the CPU; migcheck judged by the running QEMU",
        evidence=diffs,
        fix=f"the XML takes effect at the next cold boot: power-cycle {ctx.guest.name} (shutdown, start) "
            "so the running guest matches its definition",
    )]


_MISSING_RE = re.compile(r"(?:required features|missing features):\s*([\w\-., ]+)", re.I)


def _missing_from_message(message: str) -> list[str]:
    m = _MISSING_RE.search(message)
    return [f.strip() for f in m.group(1).split(",") if f.strip()] if m else []


def guest_cpu_definitions(dom: Domain, host=None) -> list[str]:
    """The guest's own CPU definition (host-model, custom), when it names a model: both hosts compare it."""
    if dom.cpu.mode in ("host-passthrough", "maximum") or not (dom.cpu.model and dom.cpu.xml):
        return []
    return [dom.cpu.xml]


def source_host_cpu_definitions(dom: Domain, source: PlanHost) -> list[str]:
    """For host-passthrough: the source's host CPU (as its domain capabilities name it), with and without
    invtsc, for the target to compare with its own."""
    from migcheck.facts.capabilities_xml import parse_domain_capabilities_xml

    if dom.cpu.mode not in ("host-passthrough", "maximum"):
        return []
    text = source.domcaps_xml.get(domcaps_key(dom.emulator, dom.arch, dom.machine, dom.virt_type))
    hm = parse_domain_capabilities_xml(text).host_model if text else None
    if hm is None or not hm.model:
        return []
    return [hypervisor_cpu_xml(hm), hypervisor_cpu_xml(hm, {"invtsc"})]


def hypervisor_cpu_xml(cpu: GuestCpu, drop: set[str] = frozenset()) -> str:
    """A custom CPU definition from a host-model CPU, for compareHypervisorCPU."""
    feats = "".join(
        f"<feature policy='{pol}' name='{name}'/>" for name, pol in sorted(cpu.features.items()) if name not in drop
    )
    vendor = f"<vendor>{cpu.vendor}</vendor>" if cpu.vendor else ""
    return f"<cpu mode='custom' match='exact'><model fallback='forbid'>{cpu.model}</model>{vendor}{feats}</cpu>"


def passthrough_reference_cpu(ctx: CheckContext) -> str | None:
    """What a host-passthrough guest sees on the source, as a CPU definition the target can judge.

    The source hypervisor's host-model CPU (domain capabilities) lists what
    KVM+QEMU offer on the source; invtsc is left out unless the guest really
    sees it (migratable='on' filters it).
    """
    dom = ctx.domain
    dc = ctx.source.domcaps_for(dom)
    if dc is None or dc.host_model is None or not dc.host_model.model:
        return None
    drop = set() if effective_cpu(ctx).invtsc else {"invtsc"}
    return hypervisor_cpu_xml(dc.host_model, drop)


@check("cpu.passthrough-target-lacks-features", Severity.BLOCK,
       "host-passthrough guest: the target CPU lacks features the source CPU offers", also=(Severity.RISK, Severity.WARN),
       asks=(Question(TARGET_CPUS, source_host_cpu_definitions),),
       reads=("caps", "cpu_compare", "libvirt_version"))
def passthrough_target_lacks_features(ctx: CheckContext):
    """A host-passthrough guest keeps the source CPU's features; the target must offer all of them."""
    _running_or_skip(ctx)
    if effective_cpu(ctx).mode not in ("host-passthrough", "maximum"):
        raise NotApplicable
    src_caps = ctx.need(ctx.source.caps, "capabilities", ctx.source)
    dst_caps = ctx.need(ctx.target.caps, "capabilities", ctx.target)
    missing: list[str] = []
    evidence = [f"source CPU {src_caps.cpu.vendor or ''} {src_caps.cpu.model}",
                f"target CPU {dst_caps.cpu.vendor or ''} {dst_caps.cpu.model}"]
    ref = passthrough_reference_cpu(ctx)
    answer = ctx.target.cpu_compare.get(cpu_key(ref)) if ref else None
    if answer is not None:
        evidence.append(f"target's compareHypervisorCPU(source host-model CPU) = {_COMPARE_NAMES.get(answer.result, answer.result)}"
                        + (f": {answer.message}" if answer.message else ""))
        if answer.unknown_features:
            evidence.append(_unknown_evidence(ctx, answer.unknown_features))
        if answer.result == 0:
            missing = _missing_from_message(answer.message) or ["(see evidence)"]
        elif answer.result < 0:
            return [Hit(message="the target could not compare the source CPU", evidence=evidence,
                        fix="run with -v and check the target's libvirt", severity=Severity.UNKNOWN)]
    elif src_caps.cpu.model == dst_caps.cpu.model and src_caps.cpu.vendor == dst_caps.cpu.vendor:
        missing = sorted(set(src_caps.cpu.features) - set(dst_caps.cpu.features))
        evidence.append("compared the host CPU feature lists of the two capabilities (same base model)")
    else:
        raise_missing = "the target's CPU comparison was not gathered and the host CPU models differ"
        return [Hit(message=f"could not compare the CPUs: {raise_missing}", evidence=evidence,
                    fix="run migcheck online against both hosts", severity=Severity.UNKNOWN)]
    fix = ("migrate to a host with the same or a newer CPU (and libvirt/QEMU), or give the guest a CPU model "
           "both hosts offer (<cpu mode='custom'><model>...</model></cpu>, see 'virsh hypervisor-cpu-baseline')")
    if not missing:
        if answer is not None and answer.unknown_features:
            return [Hit(
                message=f"the source CPU has feature(s) the target's libvirt has no name for "
                        f"({', '.join(answer.unknown_features)}): a host-passthrough guest carries no feature list, "
                        "so nothing refuses the migration, but the target's older QEMU may not show them to the guest",
                evidence=evidence, fix=fix, severity=Severity.WARN)]
        return []
    if not any(m in STATEFUL_CPU_FEATURES or m.startswith("(") for m in missing):
        return [Hit(
            message=f"the target CPU lacks {len(missing)} feature(s) the guest sees on the source: "
                    f"{', '.join(missing)}: nothing refuses a host-passthrough migration for features without "
                    "state of their own, but the guest loses them on the target, and software in it that uses "
                    "them may fail",
            evidence=evidence, fix=fix, severity=Severity.RISK)]
    return [Hit(
        message=f"the target CPU lacks {len(missing)} feature(s) the guest sees on the source: {', '.join(missing)}",
        evidence=evidence,
        fix=fix,
    )]


_COMPARE_NAMES = {-1: "error", 0: "incompatible", 1: "identical", 2: "superset"}
# Features with state of their own (XSAVE components, PKRU) that the migration
# stream carries: a target without them cannot load the guest's CPU state.
# Others (erms, fsrm, ...) just vanish from a host-passthrough guest's CPUID:
# the lab saw QEMU 10 -> 7.2 migrate while QEMU 7.2's -cpu host lacks erms/fsrm.
STATEFUL_CPU_FEATURES = frozenset({"avx", "avx512f", "amx-tile", "pku", "mpx", "intel-pt", "arch-lbr"})


@check("cpu.guest-cpu-not-on-target", Severity.BLOCK,
       "host-model/custom guest: the target cannot provide the guest's CPU", proven_by=(
           "tests/lab/test_version_skew.py::test_host_model_expanded_by_new_libvirt_is_blocked_new_to_old",
           "tests/lab/test_version_skew.py::test_named_model_with_features_the_host_model_omits",
       ), also=(Severity.RISK, Severity.WARN),
       explains={30: r"unknown CPU feature|missing features|does not provide required features|CPU is incompatible|"
                     r"guest CPU doesn't match"},
       asks=(Question(TARGET_CPUS, guest_cpu_definitions), Question(SOURCE_CPUS, guest_cpu_definitions)),
       reads=("caps", "cpu_compare", "cpuinfo", "libvirt_version"))
def guest_cpu_not_on_target(ctx: CheckContext):
    """Asks the target itself (virConnectCompareHypervisorCPU), as Nova does."""
    _running_or_skip(ctx)
    cpu = effective_cpu(ctx)
    if cpu.mode != "named":
        raise NotApplicable
    dom = ctx.domain
    if not dom.cpu.xml or not dom.cpu.model:
        raise NotApplicable  # default CPU model (qemu64 and the like): every x86 host provides it
    answer = ctx.target.cpu_compare.get(cpu_key(dom.cpu.xml))
    if answer is None:
        err = ctx.target.errors.get("cpu_compare")
        return [Hit(message="the target's CPU comparison was not gathered" + (f": {err}" if err else ""),
                    evidence=[f"guest CPU model {dom.cpu.model}"], fix="run migcheck online against the target",
                    severity=Severity.UNKNOWN)]
    evidence = [f"guest CPU: model {dom.cpu.model}, {len(dom.cpu.features)} explicit feature(s)",
                f"{ctx.target.spec}: compareHypervisorCPU = {_COMPARE_NAMES.get(answer.result, answer.result)}"
                + (f": {answer.message}" if answer.message else "")]
    if answer.unknown_features:
        evidence.append(_unknown_evidence(ctx, answer.unknown_features))
    msg = answer.message or ""
    unknown = answer.unknown_features or re.findall(r"unknown CPU (?:feature|model):?\s*'?([\w\-.]+)", msg, re.I)
    if answer.result in (1, 2) and not unknown:
        return []
    if answer.result == 0 or unknown:
        missing = _missing_from_message(msg) if answer.result == 0 else []
        src = _source_misses_too(ctx, missing) if missing and not unknown else None
        if src is not None:
            same, why = same_physical_cpu(ctx.source, ctx.target)
            src_evidence = f"{ctx.source.spec}: compareHypervisorCPU of the same CPU = incompatible: {src.message}"
            if same:
                return [Hit(
                    message=f"both hosts' libvirt call {', '.join(missing)} missing, the source's too, where the guest "
                            "runs with them: the comparison does not see these features, and the two hosts have "
                            "the same physical CPU, so the target provides what the source does",
                    evidence=evidence + [src_evidence, why], fix="nothing to do", severity=Severity.INFO)]
            return [Hit(
                message=f"the target's libvirt says its CPU lacks {', '.join(missing)}, but the source's says the "
                        "same of the source, where the guest runs with them: libvirt's comparison does not see "
                        "these features, so only the target's QEMU can tell (if it cannot provide them: 'guest CPU "
                        f"doesn't match specification: missing features: {', '.join(missing)}')",
                evidence=evidence + [src_evidence, why],
                fix="try the migration with a test guest of the same CPU definition first, or define the guest "
                    "with a CPU model 'virsh domcapabilities' lists as usable on every candidate host",
                severity=Severity.RISK,
            )]
        what = "; ".join(
            ([f"the target's libvirt does not know: {', '.join(unknown)}"] if unknown else [])
            + ([f"missing features: {', '.join(missing)}"] if missing else [])) or msg
        return [Hit(
            message=f"the target cannot provide the guest's CPU ({what})",
            evidence=evidence,
            fix="migrate to a host with a CPU (and libvirt) at least as new, or define the guest with a CPU model "
                "every candidate host offers ('virsh hypervisor-cpu-baseline' on the hosts' domain capabilities)",
        )]
    return [Hit(message=f"the target could not judge the guest's CPU: {msg}", evidence=evidence,
                fix="check the target's libvirt", severity=Severity.UNKNOWN)]


def _source_misses_too(ctx: CheckContext, missing: list[str]) -> CpuCompareAnswer | None:
    """The source's own answer for the guest's CPU, if it calls all of `missing` missing too.

    The guest runs there with them (libvirt checked its live CPU at start), so
    the comparison, made against libvirt's host-model CPU, does not see these
    features: seen in the lab for topoext in EPYC on an AMD host.
    """
    src = ctx.source.cpu_compare.get(cpu_key(ctx.domain.cpu.xml))
    if src is None or src.result != 0 or not set(missing) <= set(_missing_from_message(src.message)):
        return None
    return src


def same_physical_cpu(source: HostFacts, target: HostFacts) -> tuple[bool, str]:
    """Whether both hosts have the same physical CPU, and the evidence either way.

    The kernel's view first (/proc/cpuinfo: vendor, family, model, stepping,
    model name, flags), which does not change with libvirt's version; without
    it on both hosts, libvirt's host CPU (capabilities: vendor, model, CPUID
    signature where given, features) when both hosts run the same libvirt.
    Anything else is "not known to be the same", never "the same".
    """
    a, b = (h.cpuinfo for h in (source, target))
    if a is not None and b is not None:
        differ = [f"{k}: {getattr(a, k)!r} vs {getattr(b, k)!r}" for k in ("vendor", "family", "model", "stepping",
                                                                            "model_name") if getattr(a, k) != getattr(b, k)]
        if a.flags != b.flags:
            only_a, only_b = sorted(a.flags - b.flags), sorted(b.flags - a.flags)
            differ.append("CPU flags" + (f", only the source has {', '.join(only_a[:12])}" if only_a else "")
                          + (f", only the target has {', '.join(only_b[:12])}" if only_b else ""))
        if differ:
            return False, f"the hosts' CPUs differ (/proc/cpuinfo): {'; '.join(differ)}"
        return True, f"both hosts: {a.model_name or a.signature} ({a.signature}), the same {len(a.flags)} CPU flags " \
                     "(/proc/cpuinfo)"
    ca = source.caps.cpu if source.caps else None
    cb = target.caps.cpu if target.caps else None
    if ca is None or cb is None or not (ca.vendor and ca.model):
        return False, "the hosts' CPUs could not be compared (no /proc/cpuinfo, no capabilities)"
    if source.libvirt_version != target.libvirt_version:
        return False, "the hosts' CPUs could not be compared: no /proc/cpuinfo, and libvirt's CPU names differ " \
                      "between its versions"
    same = ((ca.vendor, ca.model, ca.signature, sorted(ca.features))
            == (cb.vendor, cb.model, cb.signature, sorted(cb.features)))
    desc = f"{ca.vendor} {ca.model}" + (f" (family/model/stepping {ca.signature})" if ca.signature else "")
    if same:
        return True, f"both hosts: {desc} with the same {len(ca.features)} features (capabilities)"
    return False, f"the hosts' CPUs differ (capabilities): source {desc}, target {cb.vendor} {cb.model}" \
                  + (f" ({cb.signature})" if cb.signature else "")


def _unknown_evidence(ctx: CheckContext, names: list[str]) -> str:
    older = ctx.target.libvirt_version.text if ctx.target.libvirt_version else "?"
    newer = ctx.source.libvirt_version.text if ctx.source.libvirt_version else "?"
    return (f"{ctx.target.spec}: libvirt {older} refused as unknown: {', '.join(names)} (source libvirt {newer}); "
            "the answer above is for the definition without them")

