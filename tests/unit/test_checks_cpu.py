"""Pass and fail fixtures for the CPU and TSC checks."""

from migcheck.probe.raw import CpuCompareAnswer, cpu_key
from migcheck.report.model import Verdict
from tests.unit.factories import argv, caps, guest_xml, rules_of, run, source, target

INVTSC = "cpu.invtsc-without-tsc-frequency"
TSC_TARGET = "cpu.tsc-frequency-target"
DIFFERS = "cpu.xml-differs-from-running"
PASSTHROUGH = "cpu.passthrough-target-lacks-features"
GUEST_CPU = "cpu.guest-cpu-not-on-target"

PT_OFF = "<cpu mode='host-passthrough' migratable='off'/>"
PT_ON = "<cpu mode='host-passthrough' migratable='on'/>"
TSC_CLOCK = "<clock offset='utc'><timer name='tsc' frequency='2596991000'/></clock>"


def test_passthrough_migratable_off_blocks_with_source_tsc_in_fix():
    r = run(source(guest_xml(cpu=PT_OFF), argv("host,migratable=off")), target())
    assert r.verdict == Verdict.BLOCKED
    f = next(f for f in r.findings if f.rule == INVTSC)
    assert "invtsc flag" in f.message
    assert "<timer name='tsc' frequency='2596991000'/>" in f.fix
    assert any("-cpu host,migratable=off" in e for e in f.evidence)


def test_plain_passthrough_passes():
    r = run(source(guest_xml(cpu=PT_ON), argv("host,migratable=on")), target())
    assert INVTSC not in rules_of(r)


def test_explicit_invtsc_feature_blocks():
    cpu = "<cpu mode='host-model'><feature policy='require' name='invtsc'/></cpu>"
    r = run(source(guest_xml(cpu=cpu), argv("Haswell-noTSX,invtsc=on")), target())
    assert INVTSC in rules_of(r, "block")


def test_plus_invtsc_on_command_line_blocks_even_if_xml_is_clean():
    r = run(source(guest_xml(cpu=""), argv("qemu64,+invtsc")), target())
    assert INVTSC in rules_of(r, "block")
    assert DIFFERS in rules_of(r, "warn")


def test_invtsc_with_tsc_frequency_passes():
    r = run(source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000")),
            target())
    assert INVTSC not in rules_of(r)
    assert TSC_TARGET not in rules_of(r)
    assert r.verdict == Verdict.OK, r.findings


def test_running_qemu_is_the_truth_when_xml_says_off_but_qemu_runs_plain_host():
    r = run(source(guest_xml(cpu=PT_OFF), argv("host")), target())
    assert INVTSC not in rules_of(r)
    differs = next(f for f in r.findings if f.rule == DIFFERS)
    assert any("migratable='off'" in e for e in differs.evidence)


def test_running_qemu_is_the_truth_when_xml_says_on_but_qemu_runs_migratable_off():
    r = run(source(guest_xml(cpu=PT_ON), argv("host,migratable=off")), target())
    assert INVTSC in rules_of(r, "block")
    assert DIFFERS in rules_of(r)


def test_tcg_guest_has_no_invtsc_blocker():
    r = run(source(guest_xml(cpu=PT_OFF, virt="qemu"), argv("host,migratable=off", accel="tcg")), target())
    assert INVTSC not in rules_of(r)


def test_source_without_invtsc_does_not_expose_it_through_passthrough():
    src = source(guest_xml(cpu=PT_OFF), argv("host,migratable=off"), host_caps=caps(features_drop=["invtsc"]))
    assert INVTSC not in rules_of(run(src, target()))


def test_without_the_command_line_an_xml_clean_guest_is_unknown_not_ok():
    src = source(guest_xml(cpu=PT_ON), None)
    src.errors["cmdline"] = "SSH disabled (--no-ssh)"
    r = run(src, target())
    assert INVTSC in rules_of(r, "unknown")
    assert r.verdict == Verdict.UNKNOWN


def test_offline_migration_skips_cpu_checks():
    r = run(source(guest_xml(cpu=PT_OFF), None, state=5), target(), "--offline --persistent")
    assert INVTSC not in rules_of(r)


def test_tsc_frequency_outside_target_tolerance_blocks():
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222",
                                tsc="<counter name='tsc' frequency='2000000000' scaling='no'/>"))
    src = source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000"))
    r = run(src, dst)
    f = next(f for f in r.findings if f.rule == TSC_TARGET)
    assert f.severity.value == "block" and "2000000000" in f.message


def test_tsc_frequency_within_250ppm_passes():
    near = 2596991000 + 2596991000 * 200 // 1_000_000
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222",
                                tsc=f"<counter name='tsc' frequency='{near}' scaling='no'/>"))
    src = source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000"))
    assert TSC_TARGET not in rules_of(run(src, dst))


def test_tsc_frequency_with_target_scaling_is_only_a_warning():
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222",
                                tsc="<counter name='tsc' frequency='2000000000' scaling='yes'/>"))
    src = source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000"))
    assert TSC_TARGET in rules_of(run(src, dst), "warn")


def test_tsc_frequency_on_target_without_tsc_counter_is_a_risk():
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222", tsc=""))
    src = source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000"))
    r = run(src, dst)
    assert TSC_TARGET in rules_of(r, "risk")
    assert r.verdict == Verdict.RISKY


def _pt_compare_key(src, with_invtsc: bool) -> str:
    from migcheck.checks.cpu import hypervisor_cpu_xml
    from migcheck.facts.capabilities_xml import parse_domain_capabilities_xml

    hm = parse_domain_capabilities_xml(next(iter(src.domcaps_xml.values()))).host_model
    return cpu_key(hypervisor_cpu_xml(hm, set() if with_invtsc else {"invtsc"}))


def test_passthrough_target_missing_features_blocks_naming_them():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"))
    msg = "the CPU is incompatible with host CPU: Host CPU does not provide required features: avx512f, amx-tile"
    dst = target(cpu_compare={_pt_compare_key(src, False): CpuCompareAnswer(result=0, message=msg)})
    f = next(f for f in run(src, dst).findings if f.rule == PASSTHROUGH)
    assert f.severity.value == "block" and "avx512f, amx-tile" in f.message


def test_passthrough_target_superset_passes():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"))
    dst = target(cpu_compare={_pt_compare_key(src, False): CpuCompareAnswer(result=2)})
    assert PASSTHROUGH not in rules_of(run(src, dst))


def test_passthrough_offline_fallback_diffs_same_model_feature_lists():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"))
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222", features_drop=["rdrand", "f16c"]))
    f = next(f for f in run(src, dst).findings if f.rule == PASSTHROUGH)
    assert "f16c" in f.message and "rdrand" in f.message


def test_passthrough_offline_different_models_is_unknown():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"))
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222", model="Skylake-Client"))
    assert PASSTHROUGH in rules_of(run(src, dst), "unknown")


CUSTOM = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>Haswell-noTSX</model>"
          "<feature policy='require' name='vmx'/></cpu>")


def _custom_key() -> str:
    from migcheck.facts.domain_xml import parse_domain_xml

    return cpu_key(parse_domain_xml(guest_xml(cpu=CUSTOM)).cpu.xml)


def test_custom_cpu_target_incompatible_blocks():
    msg = "the CPU is incompatible with host CPU: Host CPU does not provide required features: vmx"
    dst = target(cpu_compare={_custom_key(): CpuCompareAnswer(result=0, message=msg)})
    f = next(f for f in run(source(guest_xml(cpu=CUSTOM), argv("Haswell-noTSX,vmx=on")), dst).findings
             if f.rule == GUEST_CPU)
    assert f.severity.value == "block" and "vmx" in f.message


def test_custom_cpu_unknown_feature_on_older_target_blocks():
    msg = "internal error: unknown CPU feature: fdp-excptn-only"
    dst = target(cpu_compare={_custom_key(): CpuCompareAnswer(result=-1, message=msg)})
    f = next(f for f in run(source(guest_xml(cpu=CUSTOM), argv("Haswell-noTSX,vmx=on")), dst).findings
             if f.rule == GUEST_CPU)
    assert f.severity.value == "block" and "fdp-excptn-only" in f.message


def test_custom_cpu_identical_passes():
    dst = target(cpu_compare={_custom_key(): CpuCompareAnswer(result=1)})
    assert GUEST_CPU not in rules_of(run(source(guest_xml(cpu=CUSTOM), argv("Haswell-noTSX,vmx=on")), dst))


def test_custom_cpu_without_the_targets_answer_is_unknown():
    assert GUEST_CPU in rules_of(run(source(guest_xml(cpu=CUSTOM), argv("Haswell-noTSX,vmx=on")), target()),
                                 "unknown")


def test_tsc_frequency_outside_tolerance_with_unknown_scaling_is_a_risk():
    dst = target(host_caps=caps(uuid="22222222-2222-2222-2222-222222222222",
                                tsc="<counter name='tsc' frequency='2000000000'/>"))
    src = source(guest_xml(cpu=PT_OFF, clock=TSC_CLOCK), argv("host,migratable=off,tsc-frequency=2596991000"))
    assert TSC_TARGET in rules_of(run(src, dst), "risk")


def test_optional_invtsc_counts_when_the_host_has_it_and_disable_wins_over_passthrough():
    from migcheck.checks.cpu import _xml_invtsc
    from migcheck.facts.domain_xml import parse_domain_xml
    from migcheck.facts.host import build_host_facts

    host = build_host_facts(source(guest_xml(cpu=PT_ON), None))
    optional = parse_domain_xml(guest_xml(cpu="<cpu mode='host-model'><feature policy='optional' name='invtsc'/></cpu>"))
    disabled = parse_domain_xml(guest_xml(
        cpu="<cpu mode='host-passthrough' migratable='off'><feature policy='disable' name='invtsc'/></cpu>"))
    assert _xml_invtsc(optional, host) is True
    assert _xml_invtsc(disabled, host) is False
