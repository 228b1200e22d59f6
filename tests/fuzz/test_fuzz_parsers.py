"""Fuzz every parser with mutated real documents.

The contract of a parser (domain, capabilities, domain capabilities, status
XML, QEMU command line): it returns its model or raises ValueError
(UnsafeOrBadXML is one). Never another exception, never a hang, and never an
expanded entity: a document with a DTD or entity declarations is refused.

Seeds are libvirt's own test documents (tests/corpus/libvirt_corpus.py), plus
a few built-in ones so the fuzzing also runs without the corpus. Mutations:
truncation, bit flips, inserted/deleted/duplicated spans, bytes that are not
UTF-8, entity declarations (inline and external), odd encodings in the XML
declaration, huge attribute values and numbers, deep nesting, splices from
other documents.

Runs ~200 examples per test by default; ``MIGCHECK_FUZZ=long`` (``make fuzz``)
runs 20000. The hypothesis profiles are applied to these tests only.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import threading
from xml.etree import ElementTree
from xml.parsers import expat
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcheck.facts.capabilities_xml import parse_capabilities_xml, parse_domain_capabilities_xml
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.facts.host import _parse_status_xml
from migcheck.facts.models import Domain, DomainCapabilities, HostCapabilities, QemuCommandLine
from migcheck.facts.qemu_cmdline import MAX_CMDLINE_BYTES, decode_proc_cmdline, parse_qemu_argv, split_qemu_opts
from migcheck.xmlsafe import MAX_NUMBER_DIGITS, MAX_XML_BYTES, MAX_XML_DEPTH, BadXMLValue, UnsafeOrBadXML
from tests.corpus import libvirt_corpus as lc

# ------------------------------------------------------------------ settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("migcheck-fuzz", max_examples=200, **_COMMON)
settings.register_profile("migcheck-fuzz-long", max_examples=20000, **_COMMON)
PROFILE = "migcheck-fuzz-long" if os.environ.get("MIGCHECK_FUZZ") == "long" else "migcheck-fuzz"
FUZZ = settings(settings.get_profile(PROFILE))

# one parse of a mutated document must finish within this (the largest seeds
# parse in milliseconds; a hang is what this catches)
PARSE_TIME_LIMIT = 20.0


class Hang(BaseException):
    """A parser ran past PARSE_TIME_LIMIT."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"parser still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------- seeds

_BUILTIN_DOMAIN = b"""<?xml version="1.0" encoding="UTF-8"?>
<domain type='kvm' id='3'>
  <name>fuzz</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory unit='MiB'>2048</memory>
  <currentMemory unit='KiB'>2097152</currentMemory>
  <memoryBacking><hugepages><page size='2' unit='M' nodeset='0'/></hugepages><source type='memfd'/></memoryBacking>
  <vcpu placement='static' cpuset='0-3'>4</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='2-3'/></cputune>
  <numatune><memory mode='strict' nodeset='0'/></numatune>
  <os><type arch='x86_64' machine='pc-q35-9.1'>hvm</type><loader>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>/var/lib/nvram.fd</nvram></os>
  <features><acpi/><hyperv mode='passthrough'/></features>
  <cpu mode='host-passthrough' check='none' migratable='off'>
    <feature policy='require' name='invtsc'/>
  </cpu>
  <clock offset='utc'><timer name='tsc' frequency='2500000000' mode='native'/></clock>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='network' device='disk'><driver name='qemu' type='raw' cache='none'/>
      <source protocol='rbd' name='pool/image'><auth username='u'><secret type='ceph' uuid='1b1e0bd8-e1c1-4f35-a1b0-9b6fa0b9d2a3'/></auth></source>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='volume' device='cdrom'><source pool='p' volume='v'/><target dev='sda' bus='sata'/><readonly/></disk>
    <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><model type='virtio'/><filterref filter='clean-traffic'/></interface>
    <hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source></hostdev>
    <serial type='pty'><source path='/dev/pts/3'/></serial>
    <graphics type='vnc' port='-1'><listen type='address' address='0.0.0.0'/></graphics>
    <memory model='dimm'><target><size unit='KiB'>524288</size></target><address type='dimm' slot='0' base='0x100000000'/></memory>
    <shmem name='s'><model type='ivshmem-plain'/></shmem>
    <filesystem type='mount'><driver type='virtiofs'/><source dir='/srv'/><target dir='srv'/></filesystem>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
  </devices>
</domain>
"""
_BUILTIN_CAPS = b"""<capabilities><host><uuid>a25c794c-34ad-11b2-a85c-b030533115b8</uuid>
<cpu><arch>x86_64</arch><model>Haswell-noTSX</model><vendor>Intel</vendor><feature name='invtsc'/>
<counter name='tsc' frequency='2596991000' scaling='no'/></cpu>
<migration_features><live/><uri_transports><uri_transport>tcp</uri_transport></uri_transports></migration_features>
<topology><cells num='1'><cell id='0'><cpus num='2'><cpu id='0'/><cpu id='1'/></cpus></cell></cells></topology></host>
<guest><os_type>hvm</os_type><arch name='x86_64'><emulator>/usr/bin/qemu-system-x86_64</emulator>
<machine canonical='pc-q35-9.1'>q35</machine><domain type='qemu'/><domain type='kvm'><machine>pc</machine></domain></arch></guest>
</capabilities>"""
_BUILTIN_DOMCAPS = b"""<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>kvm</domain>
<machine>pc-q35-9.1</machine><arch>x86_64</arch><vcpu max='4096'/>
<cpu><mode name='host-passthrough' supported='yes'><enum name='hostPassthroughMigratable'><value>on</value><value>off</value></enum></mode>
<mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Rome</model><vendor>AMD</vendor><feature policy='require' name='x2apic'/></mode>
<mode name='custom' supported='yes'><model usable='yes'>qemu64</model><model usable='no'>Haswell</model>
<blockers model='Haswell'><feature name='hle'/></blockers></mode></cpu></domainCapabilities>"""
_BUILTIN_STATUS = b"<domstatus state='running' reason='booted' pid='1234'><monitor path='/m' type='unix'/>" + \
    _BUILTIN_DOMAIN.split(b"?>", 1)[1] + b"</domstatus>"
_BUILTIN_ARGV = [
    "/usr/bin/qemu-system-x86_64", "-name", "guest=fuzz,debug-threads=on", "-S",
    "-machine", "pc-q35-9.1,usb=off,dump-guest-core=off", "-accel", "kvm",
    "-cpu", "host,migratable=off,+invtsc,tsc-frequency=2500000000,vendor=a,,b",
    "-m", "size=2097152k", "-smp", "4,sockets=4,cores=1,threads=1",
]


@functools.cache
def _seed(path: Path) -> bytes:
    return path.read_bytes()


def _seeds(files: list[Path], builtin: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(builtin), st.sampled_from(files).map(_seed)) if files else st.just(builtin)


DOMAIN_SEEDS = _seeds(lc.DOMAIN_FILES, _BUILTIN_DOMAIN)
CAPS_SEEDS = _seeds(lc.CAPS_FILES, _BUILTIN_CAPS)
DOMCAPS_SEEDS = _seeds(lc.DOMCAPS_FILES, _BUILTIN_DOMCAPS)
STATUS_SEEDS = _seeds(lc.STATUS_FILES, _BUILTIN_STATUS)
ANY_SEED = st.one_of(DOMAIN_SEEDS, CAPS_SEEDS, DOMCAPS_SEEDS, STATUS_SEEDS)


@functools.cache
def _argv_seed(path: Path) -> tuple[str, ...]:
    return tuple(lc.args_file_argv(path.read_text(encoding="utf-8")))


ARGV_SEEDS = st.one_of(
    st.just(tuple(_BUILTIN_ARGV)),
    *([st.sampled_from([a for _, a in lc.ARGS_PAIRS]).map(_argv_seed)] if lc.ARGS_PAIRS else []),
)

# ----------------------------------------------------------------- mutations

ENTITY_MARKER = "MIGCHECKENTITYEXPANDED"
PASSWD_MARKER = "root:x:0:0"  # first line of /etc/passwd on about every Linux host

_ENTITY_DECLS = [
    f'<!DOCTYPE domain [<!ENTITY a "{ENTITY_MARKER}">]>',
    f'<!DOCTYPE x [<!ENTITY a "{ENTITY_MARKER}"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    '<!DOCTYPE domain [<!ENTITY a SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>',
    '<!DOCTYPE domain SYSTEM "file:///etc/passwd">',
    '<!DOCTYPE domain PUBLIC "-//x//y" "http://127.0.0.1:1/x.dtd">',
    '<!DOCTYPE domain [<!ENTITY a SYSTEM "http://127.0.0.1:1/x">]>',
    '<!DOCTYPE domain [<!ENTITY a PUBLIC "-//x" "file:///etc/passwd" NDATA png>]>',
    "<!DOCTYPE domain>",
]
_ENCODINGS = ["UTF-8", "utf-16", "UTF-16LE", "utf-32", "latin-1", "ascii", "cp1252", "utf-7", "shift_jis",
              "bogus", "rot13", "base64", "idna", "punycode", "undefined", "hz", "utf-8-sig", ""]
_NOT_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80",
             b"\x00", b"\x1b[31m", "\ufeff".encode(), "é".encode("latin-1")]
_NUMBERS = [b"0", b"-1", b"-9223372036854775809", b"18446744073709551616", b"9" * 400, b"9" * 5000,
            b"1e9", b"0x10", b"1_000", b" 12 ", b"", "²".encode(), "١٢".encode(), b"nan", b"inf"]
_UNITS = [b"b", b"bytes", b"KB", b"k", b"KiB", b"MB", b"M", b"GB", b"G", b"TB", b"TiB", b"PB", b"EiB", b"", b"x"]
_UNIT = re.compile(rb"""unit=(['"])[^'"]*\1""")
_SIZED = re.compile(rb"""unit=(['"])[^'"]*\1([^>]*>)[^<]*<""")  # <memory unit='KiB'>2048<
_ATTR = re.compile(rb"""=(['"])[^'"]*\1""")
_DIGITS = re.compile(rb"[0-9]+")
_TAG_START = re.compile(rb"<[A-Za-z]")


def _pos(draw, doc: bytearray) -> int:
    return draw(st.integers(0, len(doc)))


def _after_prolog(doc: bytearray) -> int:
    m = re.match(rb"\s*<\?xml[^>]*\?>", bytes(doc))
    return m.end() if m else 0


def _truncate(draw, doc):
    return doc[: _pos(draw, doc)]


def _flip(draw, doc):
    if doc:
        i = draw(st.integers(0, len(doc) - 1))
        doc[i] ^= 1 << draw(st.integers(0, 7))
    return doc


def _insert_bytes(draw, doc):
    i = _pos(draw, doc)
    return doc[:i] + draw(st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(_NOT_UTF8))) + doc[i:]


def _delete_span(draw, doc):
    i = _pos(draw, doc)
    return doc[:i] + doc[i + draw(st.integers(1, 64)):]


def _duplicate_span(draw, doc):
    i, j, k = sorted(draw(st.lists(st.integers(0, len(doc)), min_size=3, max_size=3)))
    return doc[:k] + doc[i:j] + doc[k:]


def _entity(draw, doc):
    decl = draw(st.sampled_from(_ENTITY_DECLS)).encode()
    head = _after_prolog(doc)
    doc = doc[:head] + decl + doc[head:]
    tags = [m.end() for m in re.finditer(rb">", bytes(doc[head + len(decl):]))]
    if tags:  # reference it inside the document too
        at = head + len(decl) + draw(st.sampled_from(tags))
        doc = doc[:at] + draw(st.sampled_from([b"&a;", b"&b;", b"&a;&a;"])) + doc[at:]
    return doc


def _encoding(draw, doc):
    decl = f'<?xml version="1.0" encoding="{draw(st.sampled_from(_ENCODINGS))}"?>'.encode()
    return bytearray(decl) + doc[_after_prolog(doc):]


def _huge_attribute(draw, doc):
    spans = [m.span() for m in _ATTR.finditer(bytes(doc))]
    if not spans:
        return doc
    start, end = draw(st.sampled_from(spans))
    size = draw(st.sampled_from([1000, 65536, 1 << 20]))
    fill = draw(st.sampled_from([b"A", b"9", b"&amp;", b"\xc3\xa9", b"&#x10FFFF;"]))
    return doc[:start] + b"='" + fill * (size // len(fill)) + b"'" + doc[end:]


def _number(draw, doc):
    spans = [m.span() for m in _DIGITS.finditer(bytes(doc))]
    if not spans:
        return doc
    start, end = draw(st.sampled_from(spans))
    return doc[:start] + draw(st.sampled_from(_NUMBERS)) + doc[end:]


def _unit(draw, doc):
    spans = [m.span() for m in _UNIT.finditer(bytes(doc))]
    if not spans:
        return doc
    start, end = draw(st.sampled_from(spans))
    return doc[:start] + b"unit='" + draw(st.sampled_from(_UNITS)) + b"'" + doc[end:]


def _sized_value(draw, doc):
    spans = [m.span() for m in _SIZED.finditer(bytes(doc))]
    if not spans:
        return doc
    start, end = draw(st.sampled_from(spans))
    m = _SIZED.match(bytes(doc), start)
    unit, number = draw(st.sampled_from(_UNITS)), draw(st.sampled_from(_NUMBERS))
    return doc[:start] + b"unit='" + unit + b"'" + m.group(2) + number + b"<" + doc[end:]


def _deep(draw, doc):
    spans = [m.start() for m in _TAG_START.finditer(bytes(doc))]
    at = draw(st.sampled_from(spans)) if spans else 0
    depth = draw(st.sampled_from([10, 127, 129, 1000, 5000]))
    return doc[:at] + b"<a>" * depth + b"</a>" * depth + doc[at:]


def _splice(draw, doc):
    other = draw(ANY_SEED)
    i, j = sorted(draw(st.lists(st.integers(0, len(other)), min_size=2, max_size=2)))
    k = _pos(draw, doc)
    return doc[:k] + other[i:j] + doc[k:]


def _wrap(draw, doc):
    body = doc[_after_prolog(doc):]
    outer = draw(st.sampled_from([b"domstatus", b"domain", b"capabilities", b"domainCapabilities", b"x:y"]))
    attrs = draw(st.sampled_from([b"", b" xmlns='urn:x'", b" xmlns:x='urn:x'"]))
    return b"<" + outer + attrs + b">" + body + b"</" + outer + b">"


MUTATIONS: list[Callable] = [
    _truncate, _flip, _insert_bytes, _delete_span, _duplicate_span, _entity, _encoding,
    _huge_attribute, _number, _unit, _sized_value, _deep, _splice, _wrap,
]


@st.composite
def mutated(draw, seeds: st.SearchStrategy[bytes]) -> bytes:
    doc = bytearray(draw(seeds))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
        doc = bytearray(mutation(draw, doc))
    return bytes(doc)


def as_input(draw_text: bool, doc: bytes) -> str | bytes:
    """Parsers get bytes from files and str from libvirt-python: feed both."""
    return doc.decode("utf-8", errors="replace") if draw_text else doc


# ------------------------------------------------------------------ contract


class _Stop(Exception):
    pass


def declares_dtd(doc: str | bytes) -> bool:
    """Oracle: plain expat reaches a <!DOCTYPE> before the root element."""
    seen: list[bool] = []

    def on_doctype(*_args):
        seen.append(True)
        raise _Stop

    def on_root(*_args):
        raise _Stop

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = on_doctype
    parser.StartElementHandler = on_root
    try:
        parser.Parse(doc, True)
    except Exception:  # _Stop, or anything expat itself does not like
        pass
    return bool(seen)


class _DepthAndRoot:
    """ElementTree target for the oracle: the deepest nesting, the root tag, the root's child tags."""

    def __init__(self) -> None:
        self.depth = self.max_depth = 0
        self.root: str | None = None
        self.children: set[str] = set()

    def start(self, tag, attrs):
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        if self.root is None:
            self.root = tag
        elif self.depth == 2:
            self.children.add(tag)

    def end(self, tag):
        self.depth -= 1

    def data(self, text):
        pass

    def close(self):
        return None


def _root_is(*tags: str) -> Callable[[_DepthAndRoot], bool]:
    return lambda t: t.root in tags


def _status_root(t: _DepthAndRoot) -> bool:
    return t.root == "domain" or "domain" in t.children


def expected_refusal(doc: str | bytes, root_ok: Callable[[_DepthAndRoot], bool]) -> str | None:
    """Oracle, independent of migcheck's parsing: why a parser must refuse `doc`, or None.

    Refusing is right only for a document that is too large, declares a DTD,
    is not well-formed XML (plain expat says so), nests deeper than the limit,
    or has the wrong root element. A parser that refuses anything else fails
    the property, so a parser refusing everything cannot pass.
    """
    if len(doc) > MAX_XML_BYTES:
        return "too large"
    if declares_dtd(doc):
        return "declares a DTD"
    target = _DepthAndRoot()
    try:
        parser = ElementTree.XMLParser(target=target)
        parser.feed(doc)
        parser.close()
    except (ElementTree.ParseError, LookupError, ValueError) as exc:
        return f"not well-formed ({exc})"
    if target.max_depth > MAX_XML_DEPTH:
        return "nested too deep"
    if not root_ok(target):
        return f"root element <{target.root}>"
    return None


def values_in(doc: str | bytes) -> Iterator[str]:
    """Every attribute value and text of a well-formed document, entities resolved (`&amp;` is `&`)."""
    for element in ElementTree.fromstring(doc).iter():
        yield from element.attrib.values()
        yield element.text or ""
        yield element.tail or ""


def check_contract(parse: Callable, doc: str | bytes, model: type, root_ok: Callable[[_DepthAndRoot], bool]):
    """Return the model, or None when the parser refused with ValueError, and only where it must."""
    reason = expected_refusal(doc, root_ok)
    try:
        with time_limit(PARSE_TIME_LIMIT):
            result = parse(doc)
    except BadXMLValue as exc:  # a value the checks need is not a number: it must really be there
        assert reason is None, (reason, exc)
        digits = exc.value.strip()
        assert any(exc.value in value for value in values_in(doc)), exc
        assert not (digits.isascii() and digits.isdigit()) or len(digits) > MAX_NUMBER_DIGITS, exc
        return None
    except ValueError as exc:
        assert str(exc), "a refusal must say why"
        assert reason is not None, f"refused a document the oracle accepts: {exc}"
        if reason == "declares a DTD":  # entities are refused, never expanded
            assert isinstance(exc, UnsafeOrBadXML) and "DTD or entities" in str(exc), exc
        return None
    assert reason is None, f"accepted a document that must be refused: {reason}"
    assert isinstance(result, model)
    dumped = result.model_dump_json()
    assert PASSWD_MARKER not in dumped  # no external entity was fetched
    if isinstance(result, Domain):
        result.cpu.exposes("invtsc")
    return result


@FUZZ
@given(doc=mutated(DOMAIN_SEEDS), text=st.booleans())
def test_fuzz_domain_xml(doc: bytes, text: bool) -> None:
    check_contract(parse_domain_xml, as_input(text, doc), Domain, _root_is("domain"))


@FUZZ
@given(doc=mutated(CAPS_SEEDS), text=st.booleans())
def test_fuzz_capabilities_xml(doc: bytes, text: bool) -> None:
    check_contract(parse_capabilities_xml, as_input(text, doc), HostCapabilities, _root_is("capabilities"))


@FUZZ
@given(doc=mutated(DOMCAPS_SEEDS), text=st.booleans())
def test_fuzz_domain_capabilities_xml(doc: bytes, text: bool) -> None:
    check_contract(parse_domain_capabilities_xml, as_input(text, doc), DomainCapabilities,
                   _root_is("domainCapabilities"))


@FUZZ
@given(doc=mutated(STATUS_SEEDS), text=st.booleans())
def test_fuzz_status_xml(doc: bytes, text: bool) -> None:
    check_contract(_parse_status_xml, as_input(text, doc), Domain, _status_root)


_ALL_PARSERS = [
    (parse_domain_xml, Domain, _root_is("domain")),
    (parse_capabilities_xml, HostCapabilities, _root_is("capabilities")),
    (parse_domain_capabilities_xml, DomainCapabilities, _root_is("domainCapabilities")),
    (_parse_status_xml, Domain, _status_root),
]


@FUZZ
@given(doc=mutated(ANY_SEED), text=st.booleans())
def test_fuzz_every_parser_with_every_kind(doc: bytes, text: bool) -> None:
    for parse, model, root_ok in _ALL_PARSERS:
        check_contract(parse, as_input(text, doc), model, root_ok)


# ------------------------------------------------------------- command line


def check_cmdline(cmd: QemuCommandLine) -> None:
    """What the checks read from a parsed command line must not raise either."""
    assert isinstance(cmd, QemuCommandLine)
    cmd.invtsc_exposed()
    if cmd.cpu is not None:
        cmd.cpu.migratable
        cmd.cpu.tsc_frequency
        for name in cmd.cpu.props:
            cmd.cpu.flag(name)
    cmd.model_dump_json()


def cmdline_refusal(raw: bytes) -> str | None:
    """Oracle: why /proc/PID/cmdline bytes must be refused (too long, empty, not UTF-8), or None."""
    if len(raw) > MAX_CMDLINE_BYTES:
        return "too long"
    if not raw:
        return "empty"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def check_raw_cmdline(raw: bytes, decode: Callable[[bytes], list[str]] = decode_proc_cmdline) -> None:
    reason = cmdline_refusal(raw)
    try:
        with time_limit(PARSE_TIME_LIMIT):
            argv = decode(raw)
    except ValueError as exc:
        assert str(exc)
        assert reason is not None, f"refused a command line the oracle accepts: {exc}"
        return
    assert reason is None, f"accepted a command line that must be refused: {reason}"
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    with time_limit(PARSE_TIME_LIMIT):
        cmd = parse_qemu_argv(argv)  # any argv parses: a command line is never refused
    check_cmdline(cmd)


@st.composite
def mutated_cmdline(draw) -> bytes:
    argv = list(draw(ARGV_SEEDS))
    raw = bytearray("\0".join(argv).encode() + b"\0")
    for mutation in draw(st.lists(st.sampled_from([_truncate, _flip, _insert_bytes, _delete_span,
                                                   _duplicate_span, _number]), min_size=1, max_size=4)):
        raw = bytearray(mutation(draw, raw))
    return bytes(raw)


@FUZZ
@given(raw=st.one_of(mutated_cmdline(), st.binary(max_size=512)))
def test_fuzz_proc_cmdline_bytes(raw: bytes) -> None:
    check_raw_cmdline(raw)


_OPTIONS = ["-cpu", "--cpu", "-machine", "--machine", "-M", "-accel", "--accel", "-enable-kvm", "--enable-kvm"]
_CPU_PIECES = ["host", "max", "Haswell", "migratable=off", "migratable=on", "migratable", "+invtsc", "-invtsc",
               "invtsc=on", "invtsc=off", "invtsc", "tsc-frequency=2500000000", "tsc_freq=1", "tsc-frequency=²",
               "tsc-frequency=", "=", "", ",", "+", "-", "accel=kvm:tcg", "type=q35", "accel="]


@FUZZ
@given(
    argv=st.lists(
        st.one_of(
            st.sampled_from(_OPTIONS),
            st.lists(st.one_of(st.sampled_from(_CPU_PIECES), st.text(max_size=8)), max_size=6).map(",".join),
            st.text(),
        ),
        max_size=12,
    )
)
def test_fuzz_parse_qemu_argv(argv: list[str]) -> None:
    with time_limit(PARSE_TIME_LIMIT):
        cmd = parse_qemu_argv(argv)  # any argv parses: what it cannot read stays unset
    check_cmdline(cmd)


@FUZZ
@given(parts=st.lists(st.text(min_size=1).filter(lambda p: not p.startswith(",")), min_size=1, max_size=8))
def test_split_qemu_opts_undoes_comma_escaping(parts: list[str]) -> None:
    """QEMU escapes ',' in a value as ',,': splitting undoes joining (for parts that
    are non-empty and do not start with ',', where the escaping is unambiguous)."""
    assert split_qemu_opts(",".join(p.replace(",", ",,") for p in parts)) == parts


# ------------------------------------------------- entities: refused, explicitly

_PARSER_IDS = ["domain", "capabilities", "domcaps", "status"]


def _billion_laughs(root: str) -> str:
    lines = ['<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?>\n<!DOCTYPE {root} [\n' + "\n".join(lines) + f"\n]>\n<{root}><name>&lol9;</name></{root}>"


_ROOTS = {"domain": "domain", "capabilities": "capabilities", "domcaps": "domainCapabilities", "status": "domstatus"}

_HOSTILE = {
    "billion-laughs": _billion_laughs,
    "quadratic-blowup": lambda root: (
        f'<!DOCTYPE {root} [<!ENTITY a "{"x" * 50000}">]><{root}><name>{"&a;" * 50000}</name></{root}>'
    ),
    "external-entity-file": lambda root: (
        f'<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><{root}><name>&xxe;</name></{root}>'
    ),
    "external-parameter-entity": lambda root: (
        f'<!DOCTYPE {root} [<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;]><{root}/>'
    ),
    "external-dtd": lambda root: f'<!DOCTYPE {root} SYSTEM "file:///etc/passwd"><{root}/>',
    "remote-dtd": lambda root: f'<!DOCTYPE {root} PUBLIC "-//x//y" "http://127.0.0.1:9/x.dtd"><{root}/>',
    "unparsed-entity": lambda root: (
        f'<!DOCTYPE {root} [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "file:///etc/passwd" NDATA n>]><{root}/>'
    ),
    "plain-doctype": lambda root: f"<!DOCTYPE {root}><{root}/>",
}


@pytest.mark.parametrize("text", [True, False], ids=["str", "bytes"])
@pytest.mark.parametrize("attack", list(_HOSTILE))
@pytest.mark.parametrize("parser", range(len(_ALL_PARSERS)), ids=_PARSER_IDS)
def test_entity_declarations_are_refused(parser: int, attack: str, text: bool) -> None:
    parse = _ALL_PARSERS[parser][0]
    doc = _HOSTILE[attack](_ROOTS[_PARSER_IDS[parser]])
    if attack in ("billion-laughs", "quadratic-blowup", "external-entity-file"):
        assert "&" in doc  # the document does use its entities
    with time_limit(5), pytest.raises(UnsafeOrBadXML, match="DTD or entities"):
        parse(doc if text else doc.encode())


def _entity_in_real_document(path: Path | None, builtin: bytes) -> bytes:
    doc = _seed(path) if path is not None else builtin
    m = re.match(rb"\s*(<\?xml[^>]*\?>)?", doc)
    head = m.end()
    decl = b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    body = doc[head:]
    body = re.sub(rb"(<name>)", rb"\1&xxe;", body, count=1) if b"<name>" in body else body
    return doc[:head] + decl + body


@pytest.mark.parametrize(
    ("parser", "files", "builtin"),
    [
        pytest.param(0, lc.DOMAIN_FILES, _BUILTIN_DOMAIN, id="domain"),
        pytest.param(1, lc.CAPS_FILES, _BUILTIN_CAPS, id="capabilities"),
        pytest.param(2, lc.DOMCAPS_FILES, _BUILTIN_DOMCAPS, id="domcaps"),
        pytest.param(3, lc.STATUS_FILES, _BUILTIN_STATUS, id="status"),
    ],
)
def test_external_entity_in_a_real_document_is_refused(parser: int, files: list[Path], builtin: bytes) -> None:
    parse = _ALL_PARSERS[parser][0]
    for path in (files[:20] or [None]):
        with pytest.raises(UnsafeOrBadXML, match="DTD or entities"):
            parse(_entity_in_real_document(path, builtin))


def test_xinclude_is_not_processed() -> None:
    doc = (
        "<domain xmlns:xi='http://www.w3.org/2001/XInclude'><name>g</name>"
        "<devices><emulator><xi:include href='file:///etc/passwd' parse='text'/></emulator></devices></domain>"
    )
    dom = parse_domain_xml(doc)
    assert dom.emulator is None
    assert PASSWD_MARKER not in dom.model_dump_json()


# ------------------------------------------------ regressions found by fuzzing


@pytest.mark.parametrize("parser", range(len(_ALL_PARSERS)), ids=_PARSER_IDS)
def test_oversized_document_is_refused_before_parsing(parser: int) -> None:
    parse = _ALL_PARSERS[parser][0]
    doc = b"<domain>" + b" " * MAX_XML_BYTES + b"</domain>"
    with time_limit(5), pytest.raises(UnsafeOrBadXML, match="more than"):
        parse(doc)


@pytest.mark.parametrize("depth", [129, 1000, 100_000])
@pytest.mark.parametrize("parser", range(len(_ALL_PARSERS)), ids=_PARSER_IDS)
def test_deep_nesting_is_refused(parser: int, depth: int) -> None:
    """Was RecursionError from to_text() (parse_cpu, status XML) past ~1000 levels."""
    parse = _ALL_PARSERS[parser][0]
    root = _ROOTS[_PARSER_IDS[parser]]
    inner = "<cpu>" + "<a>" * depth + "</a>" * depth + "</cpu>"
    doc = f"<{root}><domain><name>g</name>{inner}</domain></{root}>" if root == "domstatus" else f"<{root}>{inner}</{root}>"
    with pytest.raises(UnsafeOrBadXML, match="deep"):
        parse(doc)


def test_nesting_within_the_limit_still_parses() -> None:
    inner = "<a>" * 100 + "</a>" * 100
    dom = _parse_status_xml(f"<domstatus><domain><name>g</name><cpu mode='custom'>{inner}</cpu></domain></domstatus>")
    assert dom.name == "g"


@pytest.mark.parametrize("encoding", ["bogus", "rot13", "base64", "utf-7", "idna", "undefined", "shift_jis"])
def test_odd_encoding_declaration_is_a_clear_refusal(encoding: str) -> None:
    """Was LookupError (not a ValueError) for unknown or non-text codecs."""
    doc = f'<?xml version="1.0" encoding="{encoding}"?><domain><name>g</name></domain>'.encode()
    with pytest.raises(UnsafeOrBadXML):
        parse_domain_xml(doc)


def test_lone_surrogate_in_str_is_a_clear_refusal() -> None:
    with pytest.raises(UnsafeOrBadXML):
        parse_domain_xml("<domain><name>\ud800</name></domain>")


@pytest.mark.parametrize("unit", ["b", "KiB", "MB", "GB", "TB", "TiB"])
def test_huge_memory_value_does_not_overflow(unit: str) -> None:
    """Was OverflowError: the decimal units multiplied a huge int by a float. Past
    MAX_NUMBER_DIGITS the value is refused by name (int() itself stops at 4300 digits)."""
    dom = parse_domain_xml(f"<domain><name>g</name><memory unit='{unit}'>{'9' * MAX_NUMBER_DIGITS}</memory></domain>")
    assert dom.memory_kib > 10**(MAX_NUMBER_DIGITS - 5)
    with pytest.raises(BadXMLValue, match="<memory> holds .* a number of 5000 digits"):
        parse_domain_xml(f"<domain><name>g</name><memory unit='{unit}'>{'9' * 5000}</memory></domain>")


def test_unicode_digits_are_not_numbers() -> None:
    """'²'.isdigit() is true but int('²') raises: such values are absent, not a crash."""
    caps = parse_capabilities_xml("<capabilities><host><cpu><counter name='tsc' frequency='²'/></cpu></host></capabilities>")
    assert caps.cpu.tsc_frequency is None
    assert parse_domain_capabilities_xml("<domainCapabilities><vcpu max='²'/></domainCapabilities>").max_vcpus is None
    assert parse_qemu_argv(["qemu-system-x86_64", "-cpu", "host,tsc-frequency=²"]).cpu.tsc_frequency is None


def test_tsc_frequency_with_thousands_of_digits_is_absent() -> None:
    """Was int()'s 'Exceeds the limit (4300 digits)' ValueError raised from the property."""
    cmd = parse_qemu_argv(["qemu-system-x86_64", "-cpu", "host,tsc-frequency=" + "9" * 5000])
    assert cmd.cpu.tsc_frequency is None


def test_the_contract_fails_a_parser_that_refuses_everything() -> None:
    """The properties above can fail: refusing a good document is caught, and so is accepting a bad one."""
    def refuse(doc):
        raise ValueError("refused")

    with pytest.raises(AssertionError, match="oracle accepts"):
        check_contract(refuse, _BUILTIN_DOMAIN, Domain, _root_is("domain"))
    with pytest.raises(AssertionError, match="must be refused"):
        check_contract(lambda doc: parse_domain_xml(_BUILTIN_DOMAIN), b"<capabilities/>", Domain, _root_is("domain"))
    with pytest.raises(AssertionError, match="oracle accepts"):
        check_raw_cmdline(b"qemu\0-S\0", decode=refuse)


def test_a_number_that_is_not_one_is_refused_by_name() -> None:
    doc = _BUILTIN_DOMAIN.replace(b"<memory unit='MiB'>2048</memory>", b"<memory unit='MiB'>2\xc2\xb2</memory>")
    with pytest.raises(BadXMLValue, match="<memory> holds '2²'"):
        parse_domain_xml(doc)
