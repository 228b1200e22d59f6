"""--xml / --persistent-xml: the target's definition is judged, and its ABI against the running guest.

The XML is a real lab guest's `virsh dumpxml --migratable` (libvirt 9.0, QEMU 7.2; bridge br-src on the source
only). The texts are the ones libvirt 9.0 printed in the lab for each edit (tests/lab/test_catalogue_network_state.py
pairs the bridge, vCPU and machine cases with real migrations).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migcheck.checks.errors import rules_for_error
from migcheck.destxml import abi_differences
from migcheck.flags import parse_flags
from migcheck.probe.raw import PathStat
from migcheck.xmlsafe import parse_xml
from tests.unit.factories import run, source, target

LIVE = (Path(__file__).parent / "data" / "lab-migratable-bridge.xml").read_text()
EMU = {"/usr/bin/qemu-system-x86_64": PathStat(path="/usr/bin/qemu-system-x86_64", exists=True)}
BR_DST = {"/sys/class/net/br-dst": PathStat(path="/sys/class/net/br-dst", exists=True, is_dir=True),
          "/sys/class/net/br-src": PathStat(path="/sys/class/net/br-src", exists=False)}

EDITS = {  # label -> (edit of the migratable XML, libvirt 9.0's text in the lab)
    "vcpu": (lambda t: re.sub(r"(<vcpu[^>]*>)1<", r"\g<1>2<", t), "Target domain vCPU max 2 does not match source 1"),
    "machine": (lambda t: t.replace("pc-q35-7.2", "pc-q35-7.1"),
                "Target domain machine type pc-q35-7.1 does not match source pc-q35-7.2"),
    "memory": (lambda t: t.replace("<memory unit='KiB'>65536<", "<memory unit='KiB'>131072<"),
               "Target domain max memory 131072 does not match source 65536"),
    "mac": (lambda t: re.sub(r"<mac address='[^']*'/>", "<mac address='52:54:00:12:34:99'/>", t),
            "Target network card mac 52:54:00:12:34:99 does not match source 52:54:00:b9:99:56"),
    "name": (lambda t: t.replace("<name>cpy-xml</name>", "<name>cpy-other</name>"),
             "Target domain name 'cpy-other' does not match source 'cpy-xml'"),
    "model": (lambda t: t.replace("<model type='virtio'/>", "<model type='e1000e'/>"),
              "Target network card model e1000e does not match source virtio"),
}


def to_target(text: str) -> str:
    return text.replace("'br-src'", "'br-dst'")


@pytest.mark.parametrize("label", sorted(EDITS))
def test_abi_differences_in_libvirts_words(label):
    edit, said = EDITS[label]
    assert abi_differences(parse_xml(LIVE, "live"), parse_xml(to_target(edit(LIVE)), "dest")) == [said]


@pytest.mark.parametrize("edit", [lambda t: t, lambda t: t.replace("machine='pc-q35-7.2'", "machine='q35'"),
                                  lambda t: re.sub(r"<address [^>]*/>", "", t)], ids=["bridge", "alias", "noaddr"])
def test_host_side_edits_keep_the_abi(edit):
    """Lab: the bridge edit, the machine alias and an XML without <address> elements all migrated."""
    assert abi_differences(parse_xml(LIVE, "live"), parse_xml(to_target(edit(LIVE)), "dest"),
                           machine_aliases={"q35": "pc-q35-7.2"}) == []


def _run(tmp_path, dest_text: str | None, flags: str = "--live"):
    src = source(LIVE)
    dst = target(paths=EMU | BR_DST)
    if dest_text is not None:
        f = tmp_path / "dst.xml"
        f.write_text(dest_text)
        flags += f" --xml {f}"
    return run(src, dst, flags)


def test_without_xml_the_sources_bridge_is_judged(tmp_path):
    rep = _run(tmp_path, None)
    assert ("network.bridge-missing", "block") in {(f.rule, f.severity.value) for f in rep.findings}


def test_xml_naming_the_targets_bridge_is_ok(tmp_path):
    """(The factory target's capabilities know machine 'pc' only: the other findings are not this test's.)"""
    rep = _run(tmp_path, to_target(LIVE))
    assert not {"network.bridge-missing", "flags.destination-xml"} & {f.rule for f in rep.findings}


def test_xml_changing_the_vcpus_is_blocked_with_libvirts_text(tmp_path):
    rep = _run(tmp_path, to_target(EDITS["vcpu"][0](LIVE)))
    [f] = [f for f in rep.findings if f.rule == "flags.destination-xml"]
    assert f.severity.value == "block"
    assert "unsupported configuration: Target domain vCPU max 2 does not match source 1" in f.message


def test_xml_file_missing_or_broken_is_blocked(tmp_path):
    rep = run(source(LIVE), target(paths=EMU | BR_DST), f"--live --xml {tmp_path / 'absent.xml'}")
    assert {(f.rule, f.severity.value) for f in rep.findings} >= {("flags.destination-xml", "block")}
    rep = _run(tmp_path, "<domain type='kvm'><name>x</name")  # lab: "(domain_definition):1: expected '>'"
    assert ("flags.destination-xml", "block") in {(f.rule, f.severity.value) for f in rep.findings}


def test_persistent_xml_broken_is_blocked(tmp_path):
    bad = tmp_path / "p.xml"
    bad.write_text("<domain type='kvm'><name>x</name")
    rep = run(source(LIVE), target(paths=EMU | BR_DST), f"--live --persistent --persistent-xml {bad}")
    assert ("flags.destination-xml", "block") in {(f.rule, f.severity.value) for f in rep.findings}


def test_flags_keep_the_paths():
    f = parse_flags(["--live", "--xml", "a.xml", "--persistent-xml=b.xml"])
    assert (f.xml, f.persistent_xml) == ("a.xml", "b.xml")
    assert parse_flags(f.as_args()) == f


def test_lab_error_texts_belong_to_the_check():
    for text in [t for _, t in EDITS.values()] + ["(domain_definition):1: expected '>'",
                                                 "Failed to open file 'x.xml': No such file or directory"]:
        assert "flags.destination-xml" in rules_for_error(text), text
