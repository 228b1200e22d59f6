"""Every registered check has a documentation page, in the fixed shape, and ``migcheck explain`` prints it.

The pages live in ``migcheck/checks/docs/<ID>.md`` (packaged as package data)
and follow one outline, so ``migcheck explain`` reads the same for every check.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest
from typer.testing import CliRunner

from migcheck.checks import FAMILIES
from migcheck.checks.registry import NOT_CHECKS, all_checks
from migcheck.cli import app

SECTIONS = (
    "## What it checks",
    "## Why it matters",
    "## Example",
    "## How to fix",
    "## Evidence migcheck shows",
    "## References",
)
SEVERITY_LINE = re.compile(r"^\*\*Severity:\*\* (block|risk|warn|info) · \*\*Family:\*\* ([a-z]+)$")
MIN_LINES, MAX_LINES = 30, 60

CHECKS = all_checks()
IDS = [c.id for c in CHECKS]


def _page(check_id: str) -> str:
    return resources.files("migcheck.checks").joinpath("docs", f"{check_id}.md").read_text()


def test_registry_is_not_empty():
    assert len(CHECKS) > 40


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_page_exists_and_starts_with_id(chk):
    lines = _page(chk.id).splitlines()
    assert lines[0] == f"# {chk.id}"


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_severity_and_family_line(chk):
    line = _page(chk.id).splitlines()[1]
    m = SEVERITY_LINE.match(line)
    assert m, f"{chk.id}: second line must be '**Severity:** SEV · **Family:** FAMILY', got {line!r}"
    assert m.group(1) == chk.severity.value
    assert m.group(2) == chk.family


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_check_lives_in_the_module_of_its_id_prefix(chk):
    """flags.tls-required is in checks/flags.py and its page says Family: flags: a check is found from its ID."""
    prefix = chk.id.split(".", 1)[0]
    assert chk.fn.__module__ == f"migcheck.checks.{prefix}", f"{chk.id} is defined in {chk.fn.__module__}"
    assert chk.family == prefix
    m = SEVERITY_LINE.match(_page(chk.id).splitlines()[1])
    assert m and m.group(2) == prefix, f"{chk.id}: its page must say Family: {prefix}"


def test_every_id_prefix_is_a_loaded_family():
    assert set(FAMILIES) == {c.id.split(".", 1)[0] for c in CHECKS}


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_sections_present_in_order(chk):
    lines = _page(chk.id).splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == list(SECTIONS), f"{chk.id}: sections {headings}"
    for heading in SECTIONS:  # every section has some text under it
        i = lines.index(heading)
        body = []
        for line in lines[i + 1:]:
            if line.startswith("## "):
                break
            body.append(line)
        assert any(b.strip() for b in body), f"{chk.id}: empty section {heading}"


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_page_length(chk):
    n = len(_page(chk.id).splitlines())
    assert MIN_LINES <= n <= MAX_LINES, f"{chk.id}: {n} lines, keep pages between {MIN_LINES} and {MAX_LINES}"


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_check_doc_property_reads_its_own_page(chk):
    """Check.doc is the page of that ID (not the docstring it falls back to, not another check's page)."""
    lines = chk.doc.splitlines()
    assert lines[0] == f"# {chk.id}", f"{chk.id}: Check.doc starts with {lines[0]!r}"
    assert SEVERITY_LINE.match(lines[1]), f"{chk.id}: Check.doc is not the documentation page"


def test_no_orphan_pages():
    docs = resources.files("migcheck.checks").joinpath("docs")
    pages = {p.name[:-3] for p in docs.iterdir() if p.name.endswith(".md")}
    assert pages - set(IDS) - set(NOT_CHECKS) == set(), "pages without a registered check"
    assert set(NOT_CHECKS) <= pages, "a finding that names no check without its page"


@pytest.mark.parametrize("chk", CHECKS, ids=IDS)
def test_explain_prints_page(chk):
    result = CliRunner().invoke(app, ["explain", chk.id])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{chk.id} ({chk.severity_label}): {chk.title}\n")
    assert _page(chk.id).strip() in result.output
