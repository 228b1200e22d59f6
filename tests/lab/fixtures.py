"""pytest fixtures for lab tests. Use them from any conftest.py:

    from tests.lab.fixtures import lab2  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import HostSpec, Lab, missing_tools


def lab_prerequisites_missing() -> str | None:
    """What this machine lacks to run the lab (root, tools), or None."""
    if os.geteuid() != 0:
        return "lab tests need root (they create network and mount namespaces)"
    if missing := missing_tools():
        return f"lab tools missing: {', '.join(missing)} (see `make apt`)"
    return None


def lab_skip_reason() -> str | None:
    """Why lab benchmarks cannot run here, or None (tests never skip for these: see tests/conftest.py)."""
    if os.environ.get("MIGCHECK_LAB") == "0":
        return "lab tests disabled by MIGCHECK_LAB=0"
    return lab_prerequisites_missing()


def require_lab() -> None:
    """tests/conftest.py stops the run before this when the lab cannot run; this guards direct calls."""
    if reason := lab_skip_reason():
        pytest.fail(f"the lab cannot run: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def lab2() -> Iterator[Lab]:
    """Two plain lab hosts, mc-a and mc-b, for the whole test session.

    Tests share them: clean up the guests you create. A test that needs
    differently built hosts makes its own Lab with another prefix, subnet
    slice and host names (see test_lab_selfcheck.py).
    """
    require_lab()
    lab = Lab([HostSpec("mc-a"), HostSpec("mc-b")])
    with lab:
        inodes = lab.netns_inodes()
        yield lab
    left = lab.leftovers(inodes)
    assert not left, f"lab teardown left: {left}"
