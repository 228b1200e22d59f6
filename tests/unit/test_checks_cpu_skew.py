"""CPU checks between hosts of different libvirt versions (issue 8), as the lab saw them.

Answers are the ones libvirt 9.0 gave for guests started under libvirt 11.3
(tests/lab/test_version_skew.py proves the verdicts with real migrations).
"""

from types import SimpleNamespace

import libvirt

from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.probe.gather import compare_cpu, without_cpu_feature
from migcheck.probe.raw import CpuCompareAnswer, RawHost, cpu_key
from migcheck.report.model import Verdict
from tests.unit.factories import argv, guest_xml, rules_of, run, source, target
from tests.unit.test_checks_cpu import PT_ON, _pt_compare_key

PASSTHROUGH = "cpu.passthrough-target-lacks-features"
GUEST_CPU = "cpu.guest-cpu-not-on-target"
NEW = dict(libvirt=11_003_000, qemu=10_000_002)

# A host-model guest as libvirt 11.3 expands it live (abridged).
HOST_MODEL_LIVE = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>kvm64</model>"
                   "<vendor>AMD</vendor><feature policy='require' name='x2apic'/>"
                   "<feature policy='require' name='overflow-recov'/><feature policy='require' name='succor'/>"
                   "<feature policy='require' name='amd-psfd'/></cpu>")
# EPYC as it runs on the lab's AMD host: QEMU gives it topoext, libvirt's host-model lacks it.
EPYC_LIVE = ("<cpu mode='custom' match='exact' check='full'><model fallback='forbid'>EPYC</model>"
             "<feature policy='disable' name='svm'/><feature policy='require' name='topoext'/></cpu>")
MISSING = "the CPU is incompatible with host CPU: Host CPU does not provide required features: "


def _key(cpu: str) -> str:
    return cpu_key(parse_domain_xml(guest_xml(cpu=cpu)).cpu.xml)


def _src(cpu: str, **kw) -> RawHost:
    return source(guest_xml(cpu=cpu), argv("EPYC,svm=off,topoext=on"), **NEW, **kw)


def _finding(report, rule):
    return next(f for f in report.findings if f.rule == rule)


# ---- cpu.guest-cpu-not-on-target ---------------------------------------------

def test_every_feature_name_the_older_target_does_not_know_blocks():
    dst = target(cpu_compare={_key(HOST_MODEL_LIVE): CpuCompareAnswer(
        result=1, unknown_features=["overflow-recov", "succor", "amd-psfd"])})
    r = run(_src(HOST_MODEL_LIVE), dst)
    f = _finding(r, GUEST_CPU)
    assert r.verdict == Verdict.BLOCKED and f.severity.value == "block"
    assert "overflow-recov, succor, amd-psfd" in f.message
    assert any("libvirt 9.0.0 refused as unknown" in e for e in f.evidence)


def test_known_names_and_a_compatible_cpu_pass():
    dst = target(cpu_compare={_key(HOST_MODEL_LIVE): CpuCompareAnswer(result=2)})
    assert GUEST_CPU not in rules_of(run(_src(HOST_MODEL_LIVE), dst))


def test_missing_features_the_source_also_misses_are_a_risk_not_a_block():
    src = _src(EPYC_LIVE)
    src.cpu_compare = {_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}
    dst = target(cpu_compare={_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")})
    r = run(src, dst)
    f = _finding(r, GUEST_CPU)
    assert f.severity.value == "risk" and r.verdict == Verdict.RISKY
    assert "topoext" in f.message and any(e.startswith("src: compareHypervisorCPU") for e in f.evidence)


def test_missing_features_the_source_has_still_block():
    src = _src(EPYC_LIVE)
    src.cpu_compare = {_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}
    dst = target(cpu_compare={_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext, avx2")})
    f = _finding(run(src, dst), GUEST_CPU)
    assert f.severity.value == "block" and "avx2" in f.message


# ---- cpu.passthrough-target-lacks-features -------------------------------------

def test_passthrough_with_names_the_older_target_does_not_know_is_a_warning():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"), **NEW)
    dst = target(cpu_compare={_pt_compare_key(src, False): CpuCompareAnswer(result=2, unknown_features=["amd-psfd"])})
    r = run(src, dst)
    f = _finding(r, PASSTHROUGH)
    assert f.severity.value == "warn" and "amd-psfd" in f.message and r.verdict == Verdict.OK


def test_passthrough_losing_stateless_features_is_a_risk():
    """QEMU 10 -> 7.2 in the lab: 7.2's -cpu host has no erms/fsrm, and the migration goes through."""
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"), **NEW)
    dst = target(cpu_compare={_pt_compare_key(src, False): CpuCompareAnswer(
        result=0, message=MISSING + "erms, fsrm", unknown_features=["amd-psfd", "gds-no"])})
    r = run(src, dst)
    f = _finding(r, PASSTHROUGH)
    assert f.severity.value == "risk" and r.verdict == Verdict.RISKY
    assert "erms, fsrm" in f.message and any("amd-psfd, gds-no" in e for e in f.evidence)


def test_passthrough_losing_a_feature_with_state_blocks():
    src = source(guest_xml(cpu=PT_ON), argv("host,migratable=on"), **NEW)
    dst = target(cpu_compare={_pt_compare_key(src, False): CpuCompareAnswer(
        result=0, message=MISSING + "avx512f, erms", unknown_features=["amd-psfd"])})
    f = _finding(run(src, dst), PASSTHROUGH)
    assert f.severity.value == "block" and "avx512f, erms" in f.message


# ---- probe: compare_cpu asks again without each unknown name --------------------

class _Refusal(libvirt.libvirtError):
    def __init__(self, msg: str, code: int):
        Exception.__init__(self, msg)
        self._msg, self._code = msg, code

    def get_error_code(self):
        return self._code

    def get_error_message(self):
        return self._msg


class _OldLibvirt:
    """compareHypervisorCPU as libvirt 9.0 answers: the first unknown name is an internal error."""

    known_missing = {"topoext"}

    def __init__(self, unknown: set[str]):
        self.unknown, self.asked = unknown, []

    def compareHypervisorCPU(self, emulator, arch, machine, virttype, xml, flags):
        self.asked.append(xml)
        for name in sorted(self.unknown):
            if f"name='{name}'" in xml or f'name="{name}"' in xml:
                raise _Refusal(f"internal error: Unknown CPU feature {name}", libvirt.VIR_ERR_INTERNAL_ERROR)
        for name in self.known_missing:
            if f"name='{name}'" in xml or f'name="{name}"' in xml:
                raise _Refusal(MISSING + name, libvirt.VIR_ERR_CPU_INCOMPATIBLE)
        return 1


def _compare(conn, cpu: str) -> CpuCompareAnswer:
    raw = RawHost(spec="dst", uri="qemu+ssh://root@dst/system")
    dom = parse_domain_xml(guest_xml(cpu=cpu))
    compare_cpu(SimpleNamespace(query_conn=conn), raw, dom, dom.cpu.xml)
    return raw.cpu_compare[cpu_key(dom.cpu.xml)]


def test_compare_lists_every_unknown_name_and_judges_the_rest():
    conn = _OldLibvirt({"overflow-recov", "succor", "amd-psfd"})
    answer = _compare(conn, HOST_MODEL_LIVE)
    assert answer.unknown_features == ["amd-psfd", "overflow-recov", "succor"]
    assert answer.result == 1 and len(conn.asked) == 4
    assert "amd-psfd" not in conn.asked[-1] and "x2apic" in conn.asked[-1]


def test_compare_without_unknown_names_asks_once():
    conn = _OldLibvirt(set())
    answer = _compare(conn, EPYC_LIVE)
    assert answer.result == 0 and "topoext" in answer.message and answer.unknown_features == []
    assert len(conn.asked) == 1


def test_without_cpu_feature_drops_only_that_name():
    out = without_cpu_feature(EPYC_LIVE, "topoext")
    assert "topoext" not in out and "name=\"svm\"" in out.replace("'", '"') and "EPYC" in out


# ---- the same features missing on both sides: same physical CPU or not ------------

def _this_machines_cpuinfo() -> str:
    """This machine's real /proc/cpuinfo, first processor, read the way the probe reads it."""
    from migcheck.connectors.files import LocalFiles
    from migcheck.facts.procfs import CPUINFO
    from migcheck.probe.gather import gather_host_files

    raw = RawHost(spec="here", uri="qemu:///system")
    session = SimpleNamespace(files=LocalFiles(), ssh_error=None)
    gather_host_files(session, raw, (CPUINFO,))
    assert CPUINFO in raw.files, raw.errors
    return raw.files[CPUINFO]


def _epyc_pair(src_cpuinfo: str | None, dst_cpuinfo: str | None, **dst_kw):
    from migcheck.facts.procfs import CPUINFO

    src = _src(EPYC_LIVE)
    src.cpu_compare = {_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}
    dst = target(cpu_compare={_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}, **dst_kw)
    for raw, text in ((src, src_cpuinfo), (dst, dst_cpuinfo)):
        if text is not None:
            raw.files[CPUINFO] = text
    return run(src, dst)


def test_the_probe_reads_only_the_first_processor_of_cpuinfo():
    from migcheck.facts.procfs import parse_cpuinfo

    text = _this_machines_cpuinfo()
    assert text.count("processor") == 1 and text.endswith("\n")
    info = parse_cpuinfo(text)
    assert info is not None and info.vendor and info.family and info.flags


def test_missing_features_both_sides_miss_between_identical_cpus_pass():
    """libvirt 11.3 -> 9.0 and both hosts' comparisons call topoext missing: the kernels of both hosts
    describe the same CPU, so the quirk means nothing and the verdict is ok."""
    text = _this_machines_cpuinfo()
    r = _epyc_pair(text, text)
    f = _finding(r, GUEST_CPU)
    assert r.verdict == Verdict.OK and f.severity.value == "info"
    assert any("the same" in e and "/proc/cpuinfo" in e for e in f.evidence), f.evidence


def test_missing_features_both_sides_miss_between_different_cpus_stay_a_risk():
    from migcheck.facts.procfs import parse_cpuinfo

    text = _this_machines_cpuinfo()
    flag = sorted(parse_cpuinfo(text).flags)[0]
    fewer = text.replace(f" {flag} ", " ").replace(f": {flag} ", ": ")
    assert parse_cpuinfo(fewer).flags == parse_cpuinfo(text).flags - {flag}
    other_model = "".join(
        (line.split(":")[0] + ": 9999\n") if line.startswith("model\t") else line for line in text.splitlines(True))
    for dst_text, says in ((fewer, f"only the source has {flag}"), (other_model, "model:")):
        r = _epyc_pair(text, dst_text)
        f = _finding(r, GUEST_CPU)
        assert r.verdict == Verdict.RISKY and f.severity.value == "risk"
        assert any("the hosts' CPUs differ" in e and says in e for e in f.evidence), f.evidence


def test_without_cpuinfo_only_the_same_libvirt_reporting_the_same_cpu_passes():
    from tests.corpus.libvirt_corpus import CORPUS

    haswell = (CORPUS / "capabilityschemadata/caps-qemu-kvm.xml").read_text()
    sandy = (CORPUS / "capabilityschemadata/caps-test2.xml").read_text()
    same = dict(libvirt=NEW["libvirt"], qemu=NEW["qemu"])

    def severity(src_caps, dst_caps, dst_versions):
        src = source(guest_xml(cpu=EPYC_LIVE), argv("EPYC,svm=off,topoext=on"), host_caps=src_caps, **NEW)
        src.cpu_compare = {_key(EPYC_LIVE): CpuCompareAnswer(result=0, message=MISSING + "topoext")}
        dst = target(host_caps=dst_caps, cpu_compare={_key(EPYC_LIVE): CpuCompareAnswer(
            result=0, message=MISSING + "topoext")}, **dst_versions)
        return _finding(run(src, dst), GUEST_CPU).severity.value  # (the corpus hosts share a UUID: same-host)

    assert severity(haswell, haswell, same) == "info"
    assert severity(haswell, sandy, same) == "risk"
    assert severity(haswell, haswell, {}) == "risk"  # libvirt 11.3 vs 9.0: CPU names are not comparable
