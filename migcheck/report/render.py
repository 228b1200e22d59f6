"""Render a report as a table (for people) or JSON (for scripts).

Only this module knows tabulate.
"""

from __future__ import annotations

import json
import shutil
import textwrap

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


def terminal_width() -> int:
    """The width to fit: COLUMNS, else the terminal's, else 120; at least 40, at most 200 (long lines read badly)."""
    return max(40, min(shutil.get_terminal_size((120, 24)).columns, 200))


def _wrap(text: str, width: int) -> str:
    """Lines outside the table, wrapped to the width (continuations indented)."""
    return "\n".join(textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) or line
                     for line in text.splitlines())


def _fitted_table(rows: list[list[str]], width: int) -> str:
    """The findings table no wider than width: long cells wrapped, words longer than a column cut across lines.
    The finding column gives way first: a check's ID is what an operator greps for and hands to `explain`, so
    it is cut only where even a finding column of 8 leaves no room for it (narrower than about 60)."""
    check_width = max(len(r[1]) for r in rows)
    msg_width = max(8, width - check_width - 20)
    while True:
        table = tabulate(rows, headers=["severity", "check", "finding"], tablefmt="simple_grid",
                         maxcolwidths=[None, check_width, msg_width])
        over = max(len(line) for line in table.splitlines()) - width
        if over <= 0 or (msg_width <= 8 and check_width <= 8):
            return table
        if msg_width > 8:  # the columns' padding and borders, measured
            msg_width = max(8, msg_width - over)
        else:
            check_width = max(8, check_width - over)


def fitted_list(rows: list[list[str]], headers: list[str], width: int) -> str:
    """A plain table (`migcheck rules`) no wider than width: the widest columns wrapped first (the last, the
    text, keeps at least 20 characters while another column is wider than 12)."""
    cols = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    floors = [12] * (len(cols) - 1) + [20]
    while True:
        table = tabulate(rows, headers=headers, maxcolwidths=cols)
        over = max(len(line) for line in table.splitlines()) - width
        if over <= 0:
            return table
        room = [c - f for c, f in zip(cols, floors)]
        if max(room) <= 0:
            if floors == [6] * len(cols):
                return table  # narrower than any table can be
            floors = [6] * len(cols)
            continue
        k = room.index(max(room))
        cols[k] -= min(over, room[k])


def render_table(report: Report, verbose: bool = False) -> str:
    width = terminal_width()
    flags = " ".join(report.flags)
    head = _wrap(f"{report.domain}: {report.source} -> {report.target}" + (f"  [{flags}]" if flags else "")
                 + f"\nverdict: {_LABEL[report.verdict]} ({_MEANING[report.verdict]})", width)
    shown = [f for f in report.findings if verbose or f.severity != Severity.INFO]
    if not shown:
        return head + "\n" + _wrap(f"{report.checks_run} checks run, nothing found.", width) + "\n"
    rows = []
    for f in shown:
        text = f.message
        if f.fix:
            text += f"\nfix: {f.fix}"
        if verbose and f.evidence:
            text += "\n" + "\n".join(f"  - {e}" for e in f.evidence)
        rows.append([f.severity.value, f.rule, text])
    table = _fitted_table(rows, width)
    hidden = len(report.findings) - len(shown)
    tail = f"{report.checks_run} checks run" + (f", {hidden} info finding(s) hidden (-v shows them)" if hidden else "")
    if not verbose and any(f.evidence for f in shown):
        tail += "; -v shows the evidence"
    return f"{head}\n{table}\n{_wrap(tail, width)}\n"
