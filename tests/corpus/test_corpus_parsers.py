"""Every parser against libvirt's own test data: nothing in it may crash them.

Besides "parses without an exception", each kind has checks that the parser
really read the documents (facts found somewhere in the corpus, -in/-out
round trips agreeing), and documents of the wrong kind are refused with a
ValueError naming what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migcheck.facts.capabilities_xml import parse_capabilities_xml, parse_domain_capabilities_xml
from migcheck.facts.domain_xml import parse_cpu, parse_domain_xml
from migcheck.facts.host import _parse_status_xml
from migcheck.facts.models import Domain, DomainCapabilities, GuestCpu, HostCapabilities
from migcheck.xmlsafe import parse_xml
from tests.corpus import libvirt_corpus as lc


CPU_MODES = {"custom", "host-model", "host-passthrough", "maximum"}


def _params(files: list[Path]):
    return [pytest.param(p, id=lc.file_id(p)) for p in files]


# ------------------------------------------------------------------ domain XML


@pytest.mark.parametrize("path", _params(lc.DOMAIN_FILES))
def test_domain_xml_parses(path: Path) -> None:
    dom = lc.domain(path)
    assert isinstance(dom, Domain)
    assert dom.name, "every libvirt domain has a <name>"
    assert dom.vcpus >= 1
    assert dom.memory_kib >= 0 and dom.current_memory_kib >= 0
    assert dom.cpu.mode in CPU_MODES
    for policy in dom.cpu.features.values():
        assert policy in {"require", "force", "optional", "disable", "forbid"}


def test_domain_corpus_size_and_content() -> None:
    """The parser finds, somewhere in the corpus, every kind of fact it extracts."""
    doms = [lc.domain(p) for p in lc.DOMAIN_FILES]
    assert len(doms) >= 1500, f"only {len(doms)} domain XMLs in {lc.CORPUS}"
    seen = {
        "kvm": sum(d.virt_type == "kvm" for d in doms),
        "qemu": sum(d.virt_type == "qemu" for d in doms),
        "host-passthrough": sum(d.cpu.mode == "host-passthrough" for d in doms),
        "host-model": sum(d.cpu.mode == "host-model" for d in doms),
        "named model": sum(bool(d.cpu.model) for d in doms),
        "tsc timer": sum(d.tsc is not None and d.tsc.frequency is not None for d in doms),
        "machine": sum(bool(d.machine) for d in doms),
        "memory": sum(d.memory_kib > 0 for d in doms),
        "disks": sum(bool(d.disks) for d in doms),
        "network disk": sum(any(x.protocol for x in d.disks) for d in doms),
        "interfaces": sum(bool(d.interfaces) for d in doms),
        "hostdevs": sum(bool(d.hostdevs) for d in doms),
        "chardevs": sum(bool(d.chardevs) for d in doms),
        "graphics": sum(bool(d.graphics) for d in doms),
        "hugepages": sum(bool(d.hugepages) for d in doms),
        "memory devices": sum(bool(d.memory_devices) for d in doms),
        "filesystems": sum(bool(d.filesystems) for d in doms),
        "tpms": sum(bool(d.tpms) for d in doms),
        "shmems": sum(bool(d.shmems) for d in doms),
        "features": sum(bool(d.features) for d in doms),
        "emulator": sum(bool(d.emulator) for d in doms),
    }
    assert all(seen.values()), f"never found in the corpus: {[k for k, v in seen.items() if not v]}"


_MEMORY = re.compile(rb"<memory unit=['\"](?P<unit>\w+)['\"]>(?P<value>[0-9]+)</memory>")


def test_memory_units_are_scaled() -> None:
    """A sample of <memory unit=...> spellings in the corpus, against libvirt's own scaling."""
    expected_kib = {"B": 1 / 1024, "bytes": 1 / 1024, "KiB": 1, "K": 1, "kiB": 1, "KB": 1000 / 1024,
                    "M": 1024, "MiB": 1024, "mib": 1024, "GiB": 1024**2}
    checked = 0
    for path in lc.DOMAIN_FILES:
        m = _MEMORY.search(path.read_bytes())
        if m is None or m["unit"].decode() not in expected_kib:
            continue
        assert lc.domain(path).memory_kib == int(int(m["value"]) * expected_kib[m["unit"].decode()]), path.name
        checked += 1
    assert checked >= 100


# ---------------------------------------------------------------- capabilities


@pytest.mark.parametrize("path", _params(lc.CAPS_FILES))
def test_capabilities_xml_parses(path: Path) -> None:
    caps = lc.caps(path)
    assert isinstance(caps, HostCapabilities)
    for guest in caps.guests:
        assert guest.arch
    for cell, cpus in caps.numa_cells.items():
        assert cell >= 0 and all(c >= 0 for c in cpus)


def test_capabilities_corpus_content() -> None:
    all_caps = [lc.caps(p) for p in lc.CAPS_FILES]
    assert len(all_caps) >= 10
    assert any(c.cpu.arch for c in all_caps)
    assert any(c.cpu.model and c.cpu.features for c in all_caps)
    assert any(c.cpu.tsc_frequency for c in all_caps)
    assert any(c.numa_cells for c in all_caps)
    assert any(g.machines and g.domain_types for c in all_caps for g in c.guests)
    assert any(c.migration_transports for c in all_caps)


# --------------------------------------------------------- domain capabilities


@pytest.mark.parametrize("path", _params(lc.DOMCAPS_FILES))
def test_domain_capabilities_xml_parses(path: Path) -> None:
    caps = lc.domcaps(path)
    assert isinstance(caps, DomainCapabilities)
    assert caps.arch, "every domainCapabilities names its <arch>"
    for model in caps.custom_models:
        assert model.name
        assert model.usable in {"yes", "no", "unknown"}
    if caps.host_passthrough_migratable:
        assert caps.host_passthrough


def test_empty_domain_capabilities_is_valid_and_empty() -> None:
    """domaincapsdata/empty.xml is a real answer (nothing supported), not an error."""
    path = lc.CORPUS / "domaincapsdata" / "empty.xml"
    if not path.is_file():
        pytest.skip("empty.xml not in this copy of the corpus")
    caps = lc.domcaps(path)
    assert caps.domain_type == "kvm" and caps.arch == "x86_64"
    assert not caps.host_passthrough and not caps.host_passthrough_migratable
    assert caps.host_model is None and caps.custom_models == []
    assert caps.max_vcpus is None


def test_domain_capabilities_corpus_content() -> None:
    all_caps = [lc.domcaps(p) for p in lc.DOMCAPS_FILES]
    assert len(all_caps) >= 50
    assert any(c.host_passthrough_migratable for c in all_caps)
    assert any(c.host_passthrough and not c.host_passthrough_migratable for c in all_caps)
    assert any(c.host_model and c.host_model.model and c.host_model.features for c in all_caps)
    assert any(any(m.usable == "no" for m in c.custom_models) for c in all_caps)
    assert any(c.max_vcpus for c in all_caps)


# ----------------------------------------------------------------- status XML


@pytest.mark.parametrize("path", _params(lc.STATUS_FILES))
def test_status_xml_parses(path: Path) -> None:
    dom = lc.status(path)
    assert isinstance(dom, Domain)
    assert dom.name


def _in_out_pairs(files: list[Path]):
    return [
        pytest.param(p, p.with_name(p.name.replace("-in.xml", "-out.xml")), id=p.name.replace("-in.xml", ""))
        for p in files
        if p.name.endswith("-in.xml") and p.with_name(p.name.replace("-in.xml", "-out.xml")) in files
    ]


@pytest.mark.parametrize(("src", "dst"), _in_out_pairs(lc.STATUS_FILES))
def test_status_xml_round_trip_keeps_the_facts(src: Path, dst: Path) -> None:
    """libvirt reads NAME-in.xml and writes NAME-out.xml: both describe the same guest."""
    assert lc.status(src) == lc.status(dst)


@pytest.mark.parametrize("path", _params(lc.COOKIE_FILES))
def test_migration_cookie_embedded_domain(path: Path) -> None:
    """A migration cookie wraps a <domain> like the status XML does, or has none."""
    text = path.read_text(encoding="utf-8")
    has_domain = parse_xml(text).find("domain") is not None
    if has_domain:
        assert lc.status(path).name
    else:
        with pytest.raises(ValueError, match="no <domain>"):
            _parse_status_xml(text)


# ------------------------------------------------------------------- CPU XML


@pytest.mark.parametrize("path", _params(lc.CPU_FILES))
def test_cpu_test_data_parses(path: Path) -> None:
    """cputestdata: <cpu> documents (guest and host CPUs), <cpuTest> lists of them;
    <cpudata> CPUID dumps are not something migcheck reads and are only parsed as XML."""
    root = parse_xml(path.read_bytes())
    cpus = [root] if root.tag == "cpu" else root.findall("cpu") if root.tag == "cpuTest" else []
    assert cpus or root.tag == "cpudata", root.tag
    for elem in cpus:
        cpu = parse_cpu(elem)
        assert isinstance(cpu, GuestCpu)
        assert cpu.mode in CPU_MODES
        named = [f for f in elem.findall("feature") if f.get("name")]
        assert set(cpu.features) == {f.get("name") for f in named}
        for feat in named:
            assert cpu.features[feat.get("name")] == feat.get("policy", "require")


# ------------------------------------------------------- wrong kind of document

_PARSERS = {
    "domain": (parse_domain_xml, "<domain>"),
    "capabilities": (parse_capabilities_xml, "<capabilities>"),
    "domcaps": (parse_domain_capabilities_xml, "<domainCapabilities>"),
}
_SAMPLES = {
    "domain": lc.DOMAIN_FILES[:1],
    "capabilities": lc.CAPS_FILES[:1],
    "domcaps": lc.DOMCAPS_FILES[:1],
    "status": lc.STATUS_FILES[:1],
    "cpu": lc.CPU_FILES[:1],
}


@pytest.mark.parametrize(
    ("parser", "path"),
    [
        pytest.param(parser, path, id=f"{parser}<-{kind}")
        for parser in _PARSERS
        for kind, files in _SAMPLES.items()
        if kind != parser
        for path in files
    ],
)
def test_wrong_kind_of_document_is_a_value_error(parser: str, path: Path) -> None:
    fn, expected = _PARSERS[parser]
    with pytest.raises(ValueError, match=f"expected {expected}"):
        fn(path.read_bytes())


def test_status_parser_refuses_a_document_without_domain() -> None:
    if not lc.CAPS_FILES:
        pytest.skip("no capabilities file")
    with pytest.raises(ValueError, match="no <domain>"):
        _parse_status_xml(lc.CAPS_FILES[0].read_text(encoding="utf-8"))
