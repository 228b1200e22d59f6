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


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_the_probe_imports_no_check() -> None:
    """The probe asks what the checks declare (probe/plan.py); it knows no check module, lazily or not."""
    modules = sorted((PACKAGE / "probe").glob("*.py"))
    assert len(modules) >= 5
    offenders = {m.name: sorted(i for i in _imported_modules(m) if i.startswith("migcheck.checks"))
                 for m in modules}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_import_rule_sees_a_lazy_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from migcheck.checks.paths import boot_files\n    return boot_files\n")
    assert "migcheck.checks.paths" in _imported_modules(bad)


def test_every_path_question_is_answered_by_the_probe_plan() -> None:
    """A check that stats target paths declares it: the plan of every check asks for what the checks read."""
    from migcheck.checks.registry import all_checks, probe_plan
    from migcheck.probe.plan import TARGET_PATHS

    asking = {c.id for c in all_checks() for q in c.asks if q.kind == TARGET_PATHS}
    assert {"platform.emulator-missing", "storage.missing-on-target", "paths.boot-files", "paths.nvram",
            "devices.tpm-emulator", "flags.tls-certificates", "network.bridge-missing"} <= asking
    assert len(probe_plan().questions[TARGET_PATHS]) >= len(asking)
