"""Render a report as a table (for people) or JSON (for scripts).

Only this module knows tabulate.
"""

from __future__ import annotations

import json
import shutil

from tabulate import tabulate

from migcheck import __version__
from migcheck.report.model import Report, Severity, Verdict

_LABEL = {Verdict.OK: "OK", Verdict.RISKY: "RISKY", Verdict.BLOCKED: "BLOCKED", Verdict.UNKNOWN: "UNKNOWN"}
_MEANING = {
    Verdict.OK: "the migration is expected to work",
    Verdict.RISKY: "it may fail or endanger data, depending on what migcheck cannot see",
    Verdict.BLOCKED: "the migration will fail",
    Verdict.UNKNOWN: "migcheck could not check everything; do not rely on this as a pass",
}


def render_json(report: Report) -> str:
    data = report.model_dump(mode="json")
    data["exit_code"] = report.exit_code
    data["migcheck_version"] = __version__
    return json.dumps(data, indent=2)


def render_table(report: Report, verbose: bool = False) -> str:

    width = max(80, min(shutil.get_terminal_size((120, 24)).columns, 200))
    flags = " ".join(report.flags)
    head = (f"{report.domain}: {report.source} -> {report.target}" + (f"  [{flags}]" if flags else "")
            + f"\nverdict: {_LABEL[report.verdict]} ({_MEANING[report.verdict]})")
    shown = [f for f in report.findings if verbose or f.severity != Severity.INFO]
    if not shown:
        return head + f"\n{report.checks_run} checks run, nothing found.\n"
    rows = []
    for f in shown:
        text = f.message
        if f.fix:
            text += f"\nfix: {f.fix}"
        if verbose and f.evidence:
            text += "\n" + "\n".join(f"  - {e}" for e in f.evidence)
        rows.append([f.severity.value, f.rule, text])
    msg_width = max(40, width - 50)
    table = tabulate(rows, headers=["severity", "check", "finding"], tablefmt="simple_grid",
                     maxcolwidths=[None, 34, msg_width])
    hidden = len(report.findings) - len(shown)
    tail = f"{report.checks_run} checks run" + (f", {hidden} info finding(s) hidden (-v shows them)" if hidden else "")
    if not verbose and any(f.evidence for f in shown):
        tail += "; -v shows the evidence"
    return f"{head}\n{table}\n{tail}\n"
