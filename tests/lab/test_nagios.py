"""`migcheck SRC DST VM --format nagios` against real lab hosts: the exit code is the plugin state, one status line.

The state must agree with the verdict the JSON format gives for the same guest (ok 0, risky 1,
blocked 2, unknown 3), and the output must pass the strict grammar of tests/unit/test_nagios.py.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.lab.guest import disable_features_xml
from tests.lab.pairing import MIGCHECK, guest, migcheck
from tests.unit.test_nagios import parse_plugin_output

pytestmark = pytest.mark.lab

STATE = {"ok": 0, "risky": 1, "blocked": 2, "unknown": 3}
WORD = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _nagios(src: str, dst: str, vm: str, flags: list[str]) -> tuple[int, str, str]:
    p = subprocess.run([MIGCHECK, src, dst, vm, *flags, "--format", "nagios"], capture_output=True, text=True,
                       timeout=90)
    return p.returncode, p.stdout, p.stderr


def _agrees_with_json(lab, vm: str, flags: list[str]):
    a, b = lab.hosts
    jcode, report, _ = migcheck(a.name, b.name, vm, flags)
    code, out, err = _nagios(a.name, b.name, vm, flags)
    print(f"$ migcheck {a.name} {b.name} {vm} {' '.join(flags)} --format nagios  # exit {code}\n{out}")
    p = parse_plugin_output(out, code)
    verdict = report["verdict"]
    assert code == STATE[verdict], (verdict, out)
    assert err == "", err  # Icinga 2 would show stderr as part of the output
    return verdict, p, out


def test_the_invtsc_blocker_is_critical_and_names_the_check(lab2):
    if not lab2.kvm:
        pytest.skip("needs KVM: under TCG QEMU has no invtsc blocker")
    a, _ = lab2.hosts
    if "<feature name='invtsc'/>" not in a.virsh("capabilities").stdout:
        pytest.skip("this machine: its CPU has no invariant TSC")
    cpu = f"<cpu mode='host-passthrough' migratable='off'>{disable_features_xml(lab2.cpu_quirks)}</cpu>"
    with guest(lab2, a, "ngs-invtsc", lab2.guest_xml("ngs-invtsc", cpu)):
        verdict, p, _ = _agrees_with_json(lab2, "ngs-invtsc", ["--live"])
        assert verdict == "blocked"
        assert p.summary.startswith("vm ngs-invtsc mc-a->mc-b blocked: ") and \
            "cpu.invtsc-without-tsc-frequency" in p.summary
        assert p.perf["blocking_findings"].value >= 1 and p.perf["duration"].uom == "s"


def test_a_plain_guest_and_a_hostile_name_keep_the_grammar(lab2):
    a, _ = lab2.hosts
    name = "ngs|'q' = \"x\""  # libvirt allows these; '|' would start the perfdata if it were not escaped
    cpu = f"<cpu mode='host-passthrough'>{disable_features_xml(lab2.cpu_quirks)}</cpu>" if lab2.kvm else ""
    with guest(lab2, a, name, lab2.guest_xml(name, cpu)):
        verdict, p, out = _agrees_with_json(lab2, name, ["--live"])
        assert p.summary.startswith(f"vm ngs\\x7c'q' = \"x\" mc-a->mc-b {verdict}")
        assert out.count("|") == 1  # only the perfdata separator
        if lab2.kvm:
            assert verdict == "ok" and p.state == 0


def test_a_guest_that_is_not_there_is_unknown(lab2):
    a, b = lab2.hosts
    code, out, err = _nagios(a.name, b.name, "ngs-no-such-guest", ["--live"])
    p = parse_plugin_output(out, code)
    assert code == 3 and err == "" and p.summary.startswith("vm ngs-no-such-guest mc-a->mc-b could not be checked: ")
