"""A target whose libvirt does not know the source's CPU model (a CPU newer than that libvirt).

Seen in the lab on an AMD EPYC-Genoa machine: libvirt 11.3 names the host CPU EPYC-Genoa, libvirt 9.0
answers compareHypervisorCPU with "Unknown CPU model EPYC-Genoa". The probe then asks the target about
the source's expansion of the definition (every feature explicit) on the target's own host-model CPU.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import libvirt

from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.probe import gather
from migcheck.probe.raw import RawHost, cpu_key
from tests.unit.factories import guest_xml

KNOWN_MODELS = {"EPYC-Milan"}
KNOWN_FEATURES = {"avx512f", "erms", "fsrm", "svm"}
TARGET_HAS = {"avx512f", "svm"}  # the target's CPU: no erms, no fsrm


class OldLibvirt:
    """compareHypervisorCPU as libvirt 9.0 answers: unknown model first, then unknown features, then the verdict."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def compareHypervisorCPU(self, emulator, arch, machine, virttype, xml, flags=0):
        self.asked.append(xml)
        model = re.search(r"<model[^>]*>([^<]+)</model>", xml).group(1)
        if model not in KNOWN_MODELS:
            raise libvirt.libvirtError(f"internal error: Unknown CPU model {model}")
        features = re.findall(r"<feature policy=['\"]require['\"] name=['\"]([\w.-]+)['\"]", xml)
        for f in features:
            if f not in KNOWN_FEATURES:
                raise libvirt.libvirtError(f"internal error: unknown CPU feature: {f}")
        missing = [f for f in features if f not in TARGET_HAS]
        if missing:
            exc = libvirt.libvirtError("")
            text = f"the CPU is incompatible with host CPU: Host CPU does not provide required features: " \
                   f"{', '.join(missing)}"
            exc.err = (libvirt.VIR_ERR_CPU_INCOMPATIBLE, 0, text, 2, None, None, None, 0, 0)
            raise exc
        return 2


DEFINITION = "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC-Genoa</model></cpu>"
EXPANDED = ("<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC-Genoa</model>"
            + "".join(f"<feature policy='require' name='{f}'/>" for f in ("avx512f", "erms", "fsrm", "overflow-recov"))
            + "</cpu>")


def _compare(expanded: str | None, own_model: str | None):
    conn = OldLibvirt()
    raw = RawHost(spec="old", uri="test:///old")
    dom = parse_domain_xml(guest_xml())
    gather.compare_cpu(SimpleNamespace(query_conn=conn), raw, dom, DEFINITION, expanded, own_model)
    return raw.cpu_compare[cpu_key(DEFINITION)], conn


def test_an_unknown_model_is_judged_on_the_expansion_with_the_targets_own_model() -> None:
    answer, conn = _compare(EXPANDED, "EPYC-Milan")
    assert answer.unknown_features == ["EPYC-Genoa", "overflow-recov"]  # what libvirt 9.0 does not know
    assert answer.result == 0 and "erms, fsrm" in answer.message  # and what the target's CPU lacks
    assert re.search(r"<model fallback=.forbid.>EPYC-Milan</model>", conn.asked[-1])
    assert "overflow-recov" not in conn.asked[-1]


def test_without_an_expansion_the_unknown_model_stays_the_answer() -> None:
    for expanded, own in ((None, "EPYC-Milan"), (EXPANDED, None)):
        answer, conn = _compare(expanded, own)
        assert answer.result == -1 and "Unknown CPU model EPYC-Genoa" in answer.message
        assert answer.unknown_features == [] and len(conn.asked) == 1


def test_the_model_is_swapped_and_nothing_else() -> None:
    swapped = gather.with_cpu_model(EXPANDED, "EPYC-Milan")
    assert swapped == EXPANDED.replace(">EPYC-Genoa<", ">EPYC-Milan<")
