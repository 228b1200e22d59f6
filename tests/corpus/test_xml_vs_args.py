"""Domain XML facts against the QEMU command line libvirt generated for it.

libvirt's test suite stores, for NAME.x86_64-latest.xml, the exact command line
it builds for that guest (NAME.x86_64-latest.args). migcheck reads both forms
(the XML from libvirt, the argv from /proc/PID/cmdline of the running QEMU), so
the facts it takes from each must agree; where they legitimately differ, the
libvirt rule that makes them differ is spelled out below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migcheck.facts.models import Domain, QemuCommandLine
from tests.corpus import libvirt_corpus as lc


MIN_PAIRS = 500

# <domain type=...> -> the accelerator libvirt passes with -accel
ACCEL_OF_VIRT_TYPE = {"kvm": "kvm", "qemu": "tcg", "hvf": "hvf"}

ENABLED_POLICIES = {"require", "force"}
# libvirt writes policy='optional' features as FEATURE=on: QEMU enables them when the host can
ON_THE_COMMAND_LINE = ENABLED_POLICIES | {"optional"}
DISABLED_POLICIES = {"disable", "forbid"}


def xml_invtsc_on_command_line(dom: Domain) -> bool:
    """Whether libvirt puts invtsc on the -cpu it generates for this XML.

    - an explicit <feature name='invtsc'> decides, whatever the mode;
    - host-passthrough/maximum pass every host feature through, but QEMU
      drops the non-migratable ones (invtsc among them) unless migratable='off';
    - host-model never brings invtsc by itself: libvirt expands it from QEMU's
      migratable CPU model, which leaves invtsc out; custom models never have it.
    """
    policy = dom.cpu.features.get("invtsc")
    if policy is not None:
        return policy in ON_THE_COMMAND_LINE
    return dom.cpu.mode in ("host-passthrough", "maximum") and dom.cpu.migratable is False


def disagreements(dom: Domain, cmd: QemuCommandLine) -> list[str]:
    out: list[str] = []
    cpu = cmd.cpu

    # accelerator and machine type
    expected_accel = ACCEL_OF_VIRT_TYPE.get(dom.virt_type, dom.virt_type)
    if cmd.accel != expected_accel:
        out.append(f"accel: XML type={dom.virt_type!r} wants {expected_accel!r}, -accel says {cmd.accel!r}")
    if cmd.machine != dom.machine:
        out.append(f"machine: XML {dom.machine!r}, -machine {cmd.machine!r}")

    # CPU mode -> -cpu model
    model = cpu.model if cpu is not None else None
    has_cpu_element = bool(dom.cpu.xml)
    if dom.cpu.mode == "host-passthrough":
        if model != "host":
            out.append(f"cpu: host-passthrough but -cpu {model!r}")
    elif dom.cpu.mode == "maximum":
        if model != "max":
            out.append(f"cpu: maximum but -cpu {model!r}")
    elif dom.cpu.mode == "host-model":
        # libvirt expands host-model into the host's named model plus features
        if model is None or model in ("host", "max"):
            out.append(f"cpu: host-model must become a named model, -cpu {model!r}")
    elif has_cpu_element and dom.cpu.model:
        # custom: the model by its name, except match='minimum', which libvirt
        # upgrades to the host CPU model when it starts the guest
        if dom.cpu.match == "minimum":
            if model is None or model in ("host", "max"):
                out.append(f"cpu: match=minimum must become a named model, -cpu {model!r}")
        elif model != dom.cpu.model:
            out.append(f"cpu: model {dom.cpu.model!r}, -cpu {model!r}")
    else:
        # no <cpu>, or <cpu> without a model (topology only): QEMU's default, if any
        if model in ("host", "max"):
            out.append(f"cpu: no model in the XML but -cpu {model!r}")

    # migratable: off in the XML <=> migratable=off on -cpu; an explicit 'on' is
    # written as migratable=on (host-passthrough/maximum); absent is never 'off'
    qemu_migratable = cpu.migratable if cpu is not None else None
    if (dom.cpu.migratable is False) != (qemu_migratable is False):
        out.append(f"migratable: XML {dom.cpu.migratable!r}, -cpu migratable={qemu_migratable!r}")
    if dom.cpu.migratable is True and qemu_migratable is not True:
        out.append(f"migratable: XML 'on' but -cpu migratable={qemu_migratable!r}")

    # invtsc
    expected_invtsc = xml_invtsc_on_command_line(dom)
    if cmd.invtsc_exposed() != expected_invtsc:
        out.append(f"invtsc: XML rule says {expected_invtsc}, invtsc_exposed() says {cmd.invtsc_exposed()}")
    # the XML-side rule migcheck's checks use (GuestCpu.exposes) agrees with it
    # apart from policy='optional', which it does not count as exposed
    if dom.cpu.features.get("invtsc") != "optional":
        xml_rule = dom.cpu.exposes("invtsc") or (
            dom.cpu.mode in ("host-passthrough", "maximum")
            and dom.cpu.migratable is False
            and dom.cpu.features.get("invtsc") not in DISABLED_POLICIES
        )
        if xml_rule != expected_invtsc:
            out.append(f"invtsc: GuestCpu rule says {xml_rule}, libvirt rule {expected_invtsc}")

    # TSC frequency: <timer name='tsc' frequency=N> <=> tsc-frequency=N on -cpu
    xml_freq = dom.tsc.frequency if dom.tsc is not None else None
    qemu_freq = cpu.tsc_frequency if cpu is not None else None
    if xml_freq != qemu_freq:
        out.append(f"tsc frequency: XML {xml_freq!r}, -cpu tsc-frequency={qemu_freq!r}")
    return out


@pytest.mark.parametrize(
    ("xml_path", "args_path"),
    [pytest.param(x, a, id=x.name.removesuffix(".xml")) for x, a in lc.ARGS_PAIRS],
)
def test_xml_and_generated_command_line_agree(xml_path: Path, args_path: Path) -> None:
    dom = lc.domain(xml_path)
    cmd = lc.cmdline(args_path)
    assert cmd.binary and cmd.binary.endswith("qemu-system-x86_64")
    problems = disagreements(dom, cmd)
    assert not problems, f"{xml_path.name} vs {args_path.name}:\n  " + "\n  ".join(problems)


def test_enough_pairs_and_every_rule_exercised() -> None:
    """The comparison ran on the whole corpus and each rule met real cases."""
    pairs = [(lc.domain(x), lc.cmdline(a)) for x, a in lc.ARGS_PAIRS]
    assert len(pairs) >= MIN_PAIRS, f"compared only {len(pairs)} XML/args pairs, expected at least {MIN_PAIRS}"
    cases = {
        "kvm": sum(d.virt_type == "kvm" for d, _ in pairs),
        "tcg": sum(d.virt_type == "qemu" for d, _ in pairs),
        "host-passthrough": sum(c.cpu is not None and c.cpu.model == "host" for _, c in pairs),
        "host-model": sum(d.cpu.mode == "host-model" for d, _ in pairs),
        "named custom model": sum(d.cpu.mode == "custom" and bool(d.cpu.model) for d, _ in pairs),
        "migratable=on": sum(d.cpu.migratable is True for d, _ in pairs),
        "migratable=off": sum(d.cpu.migratable is False for d, _ in pairs),
        "invtsc exposed": sum(c.invtsc_exposed() for _, c in pairs),
        "invtsc disabled": sum(d.cpu.features.get("invtsc") in DISABLED_POLICIES for d, _ in pairs),
        "tsc frequency": sum(d.tsc is not None and d.tsc.frequency is not None for d, _ in pairs),
    }
    assert all(cases.values()), f"no pair exercises: {[k for k, v in cases.items() if not v]} ({cases})"


def test_the_comparison_catches_disagreements() -> None:
    """The comparison is not vacuous: a wrong fact on either side is reported."""
    from migcheck.facts.domain_xml import parse_domain_xml
    from migcheck.facts.qemu_cmdline import parse_qemu_argv

    dom = parse_domain_xml(
        "<domain type='kvm'><name>g</name><os><type machine='pc-q35-9.1'>hvm</type></os>"
        "<cpu mode='host-passthrough' migratable='off'/>"
        "<clock><timer name='tsc' frequency='2500000000'/></clock></domain>"
    )
    good = ["/usr/bin/qemu-system-x86_64", "-machine", "pc-q35-9.1,usb=off", "-accel", "kvm",
            "-cpu", "host,migratable=off,tsc-frequency=2500000000"]
    assert disagreements(dom, parse_qemu_argv(good)) == []
    wrong = {
        "accel": ("-accel", "tcg"),
        "machine": ("-machine", "pc-i440fx-9.1"),
        "cpu": ("-cpu", "Haswell,migratable=off,tsc-frequency=2500000000"),
        "migratable": ("-cpu", "host,migratable=on,tsc-frequency=2500000000"),
        "tsc frequency": ("-cpu", "host,migratable=off,tsc-frequency=2400000000"),
        "invtsc": ("-cpu", "host,migratable=off,invtsc=off,tsc-frequency=2500000000"),
    }
    for what, (opt, value) in wrong.items():
        argv = list(good)
        argv[argv.index(opt) + 1] = value
        found = disagreements(dom, parse_qemu_argv(argv))
        assert any(p.startswith(what) for p in found), (what, found)
