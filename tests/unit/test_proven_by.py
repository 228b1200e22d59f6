"""A check's ``proven_by`` names lab tests that exist and exercise it.

``proven_by`` is what the README's "proven by a real migration" column says yes
from; each entry is a pytest node id under tests/lab ("file::test", a
parametrized test without its [param] part). The files are parsed with ``ast``
(not imported: the lab modules need the lab), so a renamed or deleted lab test,
or one that no longer mentions the check, goes red here without the lab.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from migcheck.checks.registry import all_checks

ROOT = Path(__file__).resolve().parents[2]
CHECKS = all_checks()
PROVEN = [c for c in CHECKS if c.proven_by]


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@cache
def _lab_tests(path: str) -> dict[str, list[str]]:
    """The module-level test functions of a lab file, each with the strings it uses: its own (decorators
    included) and those of the module-level names it reads (ADDR = "network.migration-address")."""
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    consts: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    consts[target.id] = _strings(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for name, value in zip(target.elts, node.value.elts):
                        if isinstance(name, ast.Name):
                            consts[name.id] = _strings(value)
    tests: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            used = []
            for part in (node, *node.decorator_list):
                used += _strings(part)
                used += [s for n in ast.walk(part) if isinstance(n, ast.Name) for s in consts.get(n.id, ())]
            tests[node.name] = used
    return tests


def test_some_checks_are_proven():
    assert len(PROVEN) > 30


def test_proven_by_lab_is_whether_a_test_proves_it():
    for c in CHECKS:
        assert c.proven_by_lab is bool(c.proven_by), c.id


@pytest.mark.parametrize("chk", PROVEN, ids=[c.id for c in PROVEN])
def test_each_named_lab_test_exists_and_exercises_the_check(chk):
    assert len(set(chk.proven_by)) == len(chk.proven_by), f"{chk.id}: a test named twice"
    for node_id in chk.proven_by:
        path, sep, name = node_id.partition("::")
        assert sep and name and "[" not in name and "::" not in name, \
            f"{chk.id}: {node_id!r} is not 'tests/lab/test_x.py::test_name'"
        assert path.startswith("tests/lab/test_") and path.endswith(".py"), f"{chk.id}: {node_id!r} is not a lab test"
        assert (ROOT / path).is_file(), f"{chk.id}: {path} does not exist"
        tests = _lab_tests(path)
        assert name in tests, f"{chk.id}: {path} has no test function {name}"
        assert any(chk.id in s for s in tests[name]), f"{chk.id}: {node_id} does not mention {chk.id}"
