"""The README's check table is the registry's (regenerate with: migcheck rules --markdown)."""

import re
from pathlib import Path

from migcheck.checks.registry import all_checks, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_check_table_matches_the_registry():
    text = README.read_text()
    m = re.search(r"<!-- checks:begin[^>]*-->\n(.*?)<!-- checks:end -->", text, re.S)
    assert m, "README has no generated check table"
    assert m.group(1) == markdown_table(all_checks()), \
        "README check table is stale: paste the output of 'migcheck rules --markdown'"
