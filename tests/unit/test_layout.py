"""Where knowledge lives: checks read typed facts only (issue 13: one engine, checks declare their needs)."""

from __future__ import annotations

import ast
from pathlib import Path

import migcheck

PACKAGE = Path(migcheck.__file__).parent


def _attribute_reads(path: Path, name: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == name]


def test_no_check_reads_a_raw_answer() -> None:
    """HostFacts.raw is what the probe brought back; checks read the facts built from it (facts/), so a
    new host file is parsed once, in facts/, and the audit can tell which facts a check reads."""
    modules = sorted((PACKAGE / "checks").glob("*.py"))
    assert len(modules) > 10
    offenders = [where for m in modules for where in _attribute_reads(m, "raw")]
    assert offenders == []


def test_the_layout_rule_sees_a_raw_read(tmp_path: Path) -> None:
    """The rule above can fail: a check body reading ctx.target.raw.files is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(ctx):\n    return ctx.target.raw.files.get('/proc/meminfo')\n")
    assert _attribute_reads(bad, "raw") == ["bad.py:2"]
