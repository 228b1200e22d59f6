"""Icinga/Nagios plugin output (``--format nagios``): one status line, long text, performance data.

The Monitoring Plugins Development Guidelines (monitoring-plugins.org/doc/guidelines.html):
exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN ("invalid command line arguments were supplied to
the plugin" is UNKNOWN); print to stdout only (Icinga 2 mixes stderr into the output); the
first line is ``SERVICE STATUS: text | perfdata``; performance data is
``'label'=value[UOM];[warn];[crit];[min];[max]``, where a "label can contain any characters
except the equals sign or single quote (')", the quotes being "required if spaces are in the
label", value, min and max in "[-0-9.]", and warn and crit in the range format ("0" alerts when
the value is outside 0..0, that is above 0).

What a host or guest name may hold must not break that grammar: in text (the status line and
the long text) a '|' (where perfdata would start: Icinga 2 looks for it on every line), a
backslash, and control, format and line-separator characters are written as \\xNN / \\uNNNN
escapes; in labels every character outside the safe set becomes '_' (and a label that would
repeat one already used gets a '~N' suffix). Labels are always quoted.

Standard library only: the console imports it to print the UNKNOWN line of a command that
failed before it could answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAME = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
SERVICE = "MIGCHECK"
MAX_RULES_IN_STATUS = 3  # the status line stays short: pagers and SMS cut it
MAX_NAMES_IN_STATUS = 3

_WHITESPACE = re.compile(r"[ \t\n\r\v\f]+")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unsafe_in_text(ch: str) -> bool:
    return ch in "|\\" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def text(value: object) -> str:
    """Any string as plugin text on one line: blanks and line breaks become one space; '|', '\\',
    control and invisible format characters (bidi overrides too) become escapes."""
    s = _WHITESPACE.sub(" ", str(value)).strip()
    return "".join(_escape_char(c) if _unsafe_in_text(c) else c for c in s)


def name(value: object) -> str:
    """A host or guest name as plugin text, exactly: only a plain space stays as it is; a line
    break, a tab or any other blank or control character is an escape, as '|' and '\\' are."""
    return "".join(_escape_char(c) if _unsafe_in_text(c) or (c.isspace() and c != " ") else c for c in str(value))


def _label_char(ch: str) -> str:
    if ch in "'=|\\" or ch.isspace() or unicodedata.category(ch)[0] in "CZ":
        return "_"
    return ch


def label(value: str) -> str:
    """A performance data label, quoted: no quote, '=', '|', blank or control character inside."""
    return "'" + ("".join(_label_char(c) for c in value) or "_") + "'"


def _number(v: float | int) -> str:
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}"


@dataclass
class Perf:
    """One 'label'=value[UOM];[warn];[crit];[min];[max] item."""

    name: str
    value: float | int
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | int | None = 0
    max: float | int | None = None


def perfdata(items: list[Perf]) -> str:
    out: list[str] = []
    seen: set[str] = set()
    for p in items:
        lab = label(p.name)
        n = 2
        while lab in seen:  # two names that differ only in unsafe characters
            lab = label(f"{p.name}~{n}")
            n += 1
        seen.add(lab)
        fields = [f"{_number(p.value)}{p.uom}", p.warn, p.crit,
                  "" if p.min is None else _number(p.min), "" if p.max is None else _number(p.max)]
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()  # "trailing unfilled semicolons can be dropped"
        out.append(f"{lab}={';'.join(fields)}")
    return " ".join(out)


def output(state: int, summary: str, long_text: list[str] | None = None, perf: list[Perf] | None = None) -> str:
    """The whole plugin output: 'MIGCHECK STATE - summary | perfdata', then the long text lines.

    summary and long_text must already be plugin text (text() above); a '|' in them is refused."""
    lines = [f"{SERVICE} {STATE_NAME[state]} - {summary}"]
    lines += [line for line in (long_text or []) if line]
    if any("|" in line or "\n" in line or "\r" in line for line in lines):
        raise ValueError("plugin text with '|' or a line break: pass it through nagios.text()")
    if perf:
        lines[0] += " | " + perfdata(perf)
    return "\n".join(lines) + "\n"


def listed(names: list[str], limit: int) -> str:
    """'a, b, c (+2 more)': names already plugin text."""
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def unknown_output(message: str, notes: list[str] | None = None) -> str:
    """A command that could not answer (bad arguments, an unreadable file, a migcheck bug): UNKNOWN."""
    message = message.removeprefix("migcheck: ")
    return output(UNKNOWN, text(message) or "migcheck ended without an answer",
                  [text(n.removeprefix("migcheck: ")) for n in (notes or [])])


# ------------------------------------------------------------------------ one pair

def pair_state(report) -> int:
    """ok -> OK, risky -> WARNING, blocked -> CRITICAL, unknown -> UNKNOWN."""
    from migcheck.report.model import Verdict

    return {Verdict.OK: OK, Verdict.RISKY: WARNING, Verdict.BLOCKED: CRITICAL, Verdict.UNKNOWN: UNKNOWN}[report.verdict]


def render_pair(report, duration: float | None = None, verbose: bool = False, notes: list[str] | None = None) -> str:
    """`migcheck SRC DST VM --format nagios`: the verdict as a service state, the findings as long text."""
    from migcheck.report.model import SEVERITY_ORDER, Severity, Verdict

    state = pair_state(report)
    by_sev: dict[Severity, list[str]] = {}
    for f in report.findings:
        if f.rule not in by_sev.setdefault(f.severity, []):
            by_sev[f.severity].append(f.rule)
    who = f"vm {name(report.domain)} {name(report.source)}->{name(report.target)}"
    if report.verdict == Verdict.OK:
        summary = f"{who} ok: {report.checks_run} checks, nothing blocks"
    else:
        main_sev = {Verdict.BLOCKED: Severity.BLOCK, Verdict.RISKY: Severity.RISK,
                    Verdict.UNKNOWN: Severity.UNKNOWN}[report.verdict]
        if report.errors and report.verdict == Verdict.UNKNOWN:
            summary = f"{who} could not be checked: {text(report.errors[0])}"
        else:
            summary = f"{who} {report.verdict.value}: {listed([text(r) for r in by_sev[main_sev]], MAX_RULES_IN_STATUS)}"
        if report.verdict == Verdict.BLOCKED and by_sev.get(Severity.UNKNOWN):
            summary += f"; {len(by_sev[Severity.UNKNOWN])} check(s) unknown"
    long_text = []
    if report.flags:
        long_text.append(f"flags: {text(' '.join(report.flags))}")
    shown = sorted((f for f in report.findings if verbose or f.severity != Severity.INFO),
                   key=lambda f: SEVERITY_ORDER[f.severity])
    for f in shown:
        long_text.append(f"{f.severity.value} {text(f.rule)}: {text(f.message)}")
        if f.fix:
            long_text.append(f"  fix: {text(f.fix)}")
        if verbose:
            long_text += [f"  - {text(e)}" for e in f.evidence]
    long_text += [f"note: {text(n.removeprefix('migcheck: '))}" for n in notes or []]
    count = {s: sum(1 for f in report.findings if f.severity == s) for s in Severity}
    perf = [Perf("blocking_findings", count[Severity.BLOCK], crit="0"),
            Perf("unknown_findings", count[Severity.UNKNOWN]),
            Perf("risk_findings", count[Severity.RISK], warn="0"),
            Perf("warn_findings", count[Severity.WARN]),
            Perf("checks_run", report.checks_run)]
    if duration is not None:
        perf.append(Perf("duration", round(duration, 3), uom="s"))
    return output(state, summary, long_text, perf)
