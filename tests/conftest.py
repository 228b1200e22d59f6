"""Rules for the whole suite: nothing is skipped silently.

- The libvirt test corpus (``../shared/corpus/libvirt`` beside the checkout, or
  ``MIGCHECK_LIBVIRT_CORPUS``) is a required input: without it the run stops
  with one line saying where it looked.
- Lab tests run unless the caller sets ``MIGCHECK_LAB=0``. When lab tests are
  selected and a prerequisite is missing (root, a tool), the run stops with one
  line naming it, instead of skipping the lab and staying green.
- A lab test may skip only for a reason of this machine that the summary shows:
  KVM-only tests under TCG (reason starting "needs KVM") and scenarios that need
  something this machine's CPU or QEMU does not have (reason starting "this
  machine:"). Any other skip in a lab test counts as a failure. The terminal
  summary prints how many lab tests ran, and what was skipped and why.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

LAB_DIR = Path(__file__).parent / "lab"
ALLOWED_LAB_SKIPS = ("needs KVM", "this machine:")

_lab_ran: list[str] = []
_lab_skipped: Counter[str] = Counter()
_lab_deselected = 0


def _is_lab(item: pytest.Item) -> bool:
    return LAB_DIR in Path(str(item.fspath)).parents


def pytest_configure(config: pytest.Config) -> None:
    from tests.corpus import libvirt_corpus as lc

    if not lc.AVAILABLE:
        raise pytest.UsageError(lc.MISSING_REASON)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _lab_deselected
    lab_items = [i for i in items if _is_lab(i)]
    if not lab_items:
        return
    if os.environ.get("MIGCHECK_LAB") == "0":
        _lab_deselected = len(lab_items)
        items[:] = [i for i in items if not _is_lab(i)]
        config.hook.pytest_deselected(items=lab_items)
        return
    from tests.lab.fixtures import lab_prerequisites_missing

    if missing := lab_prerequisites_missing():
        raise pytest.UsageError(
            f"the lab cannot run here: {missing}. `make test` installs what it needs (as root); "
            "set MIGCHECK_LAB=0 to run without the lab tests")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if not _is_lab(item) or report.when not in ("setup", "call"):
        return
    if report.skipped:
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(ALLOWED_LAB_SKIPS):
            _lab_skipped[reason] += 1
        else:
            report.outcome = "failed"
            report.longrepr = (f"a lab test may skip only for a reason of this machine (one of "
                               f"{ALLOWED_LAB_SKIPS}); this one skipped: {reason}")
    elif report.when == "call" and report.passed:
        _lab_ran.append(item.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    tr = terminalreporter
    if _lab_deselected:
        tr.write_line(f"lab: {_lab_deselected} lab tests not run (MIGCHECK_LAB=0)")
        return
    if not (_lab_ran or _lab_skipped):
        return
    from tests.lab.lab import MIGRATIONS

    tr.write_line(f"lab: {len(MIGRATIONS)} real virsh migrate runs: {sum(MIGRATIONS)} succeeded, "
                  f"{len(MIGRATIONS) - sum(MIGRATIONS)} failed")
    kvm = sum(n for r, n in _lab_skipped.items() if r.startswith("needs KVM"))
    tr.write_line(f"lab: {len(_lab_ran)} lab tests passed, {kvm} KVM-only tests skipped under TCG, "
                  f"{sum(_lab_skipped.values()) - kvm} skipped for this machine")
    for reason, n in sorted(_lab_skipped.items()):
        tr.write_line(f"lab:   {n} x skipped: {reason}")
