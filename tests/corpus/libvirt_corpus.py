"""Where the libvirt test-data corpus is, what is in it, and its files parsed once.

The corpus is a read-only copy of libvirt's own test inputs and outputs (see
``PROVENANCE.txt`` in it). ``MIGCHECK_LIBVIRT_CORPUS`` points elsewhere; when
the directory does not exist the test run stops at once with one line saying
where it looked (tests/conftest.py): many unit tests build their probes from it.

Parsed results are cached per path, so a test run parses each file once even
when several tests look at it.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from pathlib import Path

from migcheck.facts.capabilities_xml import parse_capabilities_xml, parse_domain_capabilities_xml
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.facts.host import _parse_status_xml
from migcheck.facts.models import Domain, DomainCapabilities, HostCapabilities, QemuCommandLine
from migcheck.facts.qemu_cmdline import parse_qemu_argv

# ../shared/corpus/libvirt beside the checkout (as laid for sessions and for CI's fresh clone)
_BESIDE = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "libvirt"
CORPUS = Path(os.environ.get("MIGCHECK_LIBVIRT_CORPUS", str(_BESIDE)))
AVAILABLE = (CORPUS / "qemuxmlconfdata").is_dir()
MISSING_REASON = (f"the libvirt test corpus is not at {CORPUS}: put shared/corpus/libvirt beside the checkout, "
                  "or point MIGCHECK_LIBVIRT_CORPUS at a copy")


def _files(*patterns: str) -> list[Path]:
    if not AVAILABLE:
        return []
    out: set[Path] = set()
    for pattern in patterns:
        out.update(CORPUS.glob(pattern))
    return sorted(out)


DOMAIN_FILES = _files("qemuxmlconfdata/*.xml")
CAPS_FILES = _files("vircaps2xmldata/*.xml", "capabilityschemadata/*.xml")
DOMCAPS_FILES = _files("domaincapsdata/*.xml")
STATUS_FILES = _files("qemustatusxml2xmldata/*.xml")
COOKIE_FILES = _files("qemumigrationcookiexmldata/*.xml")
CPU_FILES = _files("cputestdata/*.xml")

# NAME.x86_64-latest[.abi-update].args: the QEMU command line libvirt generated
# for the domain whose formatted XML is NAME.x86_64-latest[.abi-update].xml
ARGS_PAIRS: list[tuple[Path, Path]] = [
    (args.with_suffix(".xml"), args)
    for args in _files("qemuxmlconfdata/*.x86_64-latest.args", "qemuxmlconfdata/*.x86_64-latest.*.args")
    if args.with_suffix(".xml").is_file()
]


def file_id(path: Path) -> str:
    """A readable pytest id: ``folder/file``."""
    return f"{path.parent.name}/{path.name}"


def read(path: Path) -> bytes:
    return path.read_bytes()


@functools.cache
def domain(path: Path) -> Domain:
    return parse_domain_xml(path.read_bytes())


@functools.cache
def caps(path: Path) -> HostCapabilities:
    return parse_capabilities_xml(path.read_bytes())


@functools.cache
def domcaps(path: Path) -> DomainCapabilities:
    return parse_domain_capabilities_xml(path.read_bytes())


@functools.cache
def status(path: Path) -> Domain:
    # the probe reads the status file as text
    return _parse_status_xml(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------ .args files

_ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_QEMU_BINARY = re.compile(r"(?:^|/)qemu-system-[A-Za-z0-9_-]+$")


def args_file_argv(text: str) -> list[str]:
    """A libvirt ``.args`` file -> the QEMU argv.

    The file is a shell command: ``VAR=value`` prefix lines, then the binary
    and its arguments, one per line joined by backslash-newline continuations
    (outside quotes, as libvirt writes them).
    """
    words = shlex.split(text.replace("\\\n", ""))
    for i, word in enumerate(words):
        if _QEMU_BINARY.search(word):
            prefix = words[:i]
            bad = [w for w in prefix if not _ENV_ASSIGNMENT.match(w)]
            if bad:
                raise ValueError(f"words before the QEMU binary that are not VAR=value: {bad}")
            return words[i:]
        if not _ENV_ASSIGNMENT.match(word):
            break
    raise ValueError("no qemu-system-* binary after the environment prefix")


@functools.cache
def cmdline(path: Path) -> QemuCommandLine:
    return parse_qemu_argv(args_file_argv(path.read_text(encoding="utf-8")))
