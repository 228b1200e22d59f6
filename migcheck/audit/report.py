"""Audit reports: text (terminal, cron mail), JSON, one self-contained HTML page, Prometheus textfile."""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from migcheck.audit.history import Changes
from migcheck.audit.result import OK, RISKY, STUCK, UNKNOWN, AuditResult, VmRow
from migcheck.connectors.libvirt_conn import one_line


def write_atomic(path: str | Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file in the same directory and rename: readers never see half a file.

    The file and the directory are synced before and after the rename, so a power cut leaves the old
    file or the new one, never an empty one (ext4 and xfs may otherwise rename before the data lands)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _why(row: VmRow) -> str:
    """The blockers of a stuck guest, each with the targets it blocks."""
    if not row.cells:
        return "no other host in its groups"
    by_rule: dict[str, list[str]] = {}
    for c in row.cells:
        for rule, sev, _ in c.blockers:
            if sev in ("block", "unknown"):
                by_rule.setdefault(rule, []).append(c.target)
    return "; ".join(f"{rule} ({', '.join(ts)})" for rule, ts in sorted(by_rule.items(), key=lambda kv: -len(kv[1])))


def _headline(res: AuditResult, stuck: list[VmRow]) -> str:
    """The audit's answer in one line, for the text and the HTML report."""
    if res.nothing_checked:
        return (f"NOTHING CHECKED: none of the {len(res.host_rows)} host(s) could be probed, so no guest was checked "
                "(see the hosts not probed)")
    if stuck:
        return f"STUCK: {len(stuck)} guest(s) cannot move anywhere"
    unprobed = len(res.unprobed_hosts)
    return ("STUCK: none, every guest checked has somewhere to go"
            + (" (see unknown below)" if res.count(UNKNOWN) else "")
            + (f"; the guests of {unprobed} host(s) not probed were not checked" if unprobed else ""))


# ------------------------------------------------------------------------ text


def render_text(res: AuditResult, changes: Changes | None, matrix: bool = False) -> str:
    out = []
    flags = " ".join(res.flags) or "(none)"
    out.append(f"migcheck audit {res.inventory.path}: {len(res.host_rows)} hosts ({len(res.failed_hosts)} not probed), "
               f"{len(res.rows)} guests, {res.pairs} guest/target pairs, flags {flags}, {res.duration:.1f}s")
    stuck = [r for r in res.rows if r.status == STUCK]
    out.append("")
    out.append(_headline(res, stuck))
    for r in stuck:
        out.append(f"  {r.vm.name} on {r.vm.host}: {_why(r)}")
    for status, label in ((UNKNOWN, "UNKNOWN: could not be checked against any target"),
                          (RISKY, "RISKY ONLY: can move only with a risk")):
        rows = [r for r in res.rows if r.status == status]
        if rows:
            out.append(f"{label}: {len(rows)}")
            for r in rows[:50]:
                out.append(f"  {r.vm.name} on {r.vm.host}: {r.vm.error or _why(r) or 'risky everywhere'}")
            if len(rows) > 50:
                out.append(f"  ... and {len(rows) - 50} more")
    if res.failed_hosts:
        out.append("")
        out.append(f"HOSTS NOT PROBED: {len(res.failed_hosts)}")
        for h in res.failed_hosts:
            what = "as a target" if h.state == "target-failed" else "at all"
            out.append(f"  {h.name}: could not be probed {what}: {one_line(h.error or '')}")
    out.append("")
    out.append("HOSTS: can they be evacuated, and where to")
    for h in res.host_rows.values():
        if h.state == "failed":
            continue
        where = ", ".join(f"{t} ({n})" for t, n in h.where_to()[:5]) or "nowhere"
        extra = f", stuck: {', '.join(r.vm.name for r in h.stuck)}" if h.stuck else ""
        out.append(f"  {h.name}: {len(h.vms)} guest(s), evacuable: {h.evacuable}{extra}; ok targets: {where}")
    if changes is not None:
        out.append("")
        out += _changes_text(changes)
    blocked = [r for r in res.rows if matrix or any(c.verdict.value != "ok" for c in r.cells)]
    if blocked:
        out.append("")
        out.append("MATRIX" + ("" if matrix else " (guests with a target that is not ok; --matrix shows all)"))
        for r in blocked:
            cells = "; ".join(f"{c.target}: {c.verdict.value}"
                              + (f" [{', '.join(sorted({b[0] for b in c.blockers if b[1] in ('block', 'unknown')}))}]"
                                 if c.verdict.value in ('blocked', 'unknown') else "")
                              for c in r.cells) or "no target"
            out.append(f"  {r.vm.name} ({r.vm.host}, {r.status}): {cells}")
    out.append("")
    out.append(f"exit {res.exit_code}")
    return "\n".join(out) + "\n"


def _changes_text(ch: Changes) -> list[str]:
    if ch.previous_run is None:
        return ["CHANGES: first run of this inventory, nothing to compare with"]
    if ch.empty:
        return [f"CHANGES since {ch.previous_run}: none"]
    out = [f"CHANGES since {ch.previous_run}:"]
    for label, items, fmt in (
        ("new blockers", ch.new_blockers, lambda x: f"{x[0]} ({x[1]}) -> {x[2]}: {x[3]}"),
        ("resolved blockers", ch.resolved_blockers, lambda x: f"{x[0]} ({x[1]}) -> {x[2]}: {x[3]}"),
        ("newly stuck", ch.newly_stuck, lambda x: f"{x[0]} on {x[1]}"),
        ("no longer stuck", ch.no_longer_stuck, lambda x: f"{x[0]} on {x[1]}"),
        ("new guests", ch.new_vms, lambda x: f"{x[0]} on {x[1]}"),
        ("vanished guests", ch.vanished_vms, lambda x: f"{x[0]} (was on {x[1]})"),
        ("moved guests", ch.moved_vms, lambda x: f"{x[0]}: {x[1]} -> {x[2]}"),
        ("new hosts", ch.new_hosts, str), ("vanished hosts", ch.vanished_hosts, str),
        ("hosts now failing", ch.failing_hosts, str), ("hosts answering again", ch.recovered_hosts, str),
    ):
        if items:
            out.append(f"  {label}: {len(items)}")
            out += [f"    {fmt(x)}" for x in items[:30]]
            if len(items) > 30:
                out.append(f"    ... and {len(items) - 30} more")
    return out


# ------------------------------------------------------------------------ JSON


def render_json(res: AuditResult, changes: Changes | None) -> str:
    from migcheck import __version__

    data = {
        "migcheck_version": __version__,
        "inventory": res.inventory.path,
        "started": _when(res.started),
        "duration_seconds": round(res.duration, 3),
        "flags": res.flags,
        "exit_code": res.exit_code,
        "summary": {"hosts": len(res.host_rows), "hosts_not_probed": len(res.failed_hosts), "guests": len(res.rows),
                    "pairs": res.pairs, "stuck": res.count(STUCK), "unknown": res.count(UNKNOWN),
                    "risky_only": res.count(RISKY), "ok": res.count(OK)},
        "hosts": [{"name": h.name, "spec": h.spec, "state": h.state, "error": h.error, "groups": h.groups,
                   "guests": len(h.vms), "evacuable": h.evacuable, "stuck": [r.vm.name for r in h.stuck],
                   "ok_targets": [{"host": t, "guests": n} for t, n in h.where_to()]}
                  for h in res.host_rows.values()],
        "guests": [{"name": r.vm.name, "host": r.vm.host, "uuid": r.vm.uuid, "running": r.vm.running,
                    "flags": r.vm.flags, "status": r.status, "error": r.vm.error,
                    "targets": [{"host": c.target, "verdict": c.verdict.value,
                                 "findings": [{"rule": rule, "severity": sev, "message": msg}
                                              for rule, sev, msg in c.blockers]} for c in r.cells]}
                   for r in res.rows],
        "changes": changes.as_json() if changes is not None else None,
    }
    return json.dumps(data, indent=2) + "\n"


# ------------------------------------------------------------------ Prometheus


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(res: AuditResult, changes: Changes | None) -> str:
    lines: list[str] = []

    def metric(name: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {value:g}" if lab else f"{name} {value:g}")

    metric("migcheck_audit_last_run_timestamp_seconds", "When the last fleet audit finished.", [({}, res.finished)])
    metric("migcheck_audit_duration_seconds", "How long the last fleet audit took.", [({}, round(res.duration, 3))])
    metric("migcheck_audit_exit_code", "Exit code of the last audit (0 ok, 1 stuck guests, 3 hosts not probed, "
           "4 risky only).", [({}, res.exit_code)])
    states = Counter(h.state for h in res.host_rows.values())
    metric("migcheck_audit_hosts", "Hosts by probe state.",
           [({"state": s}, states.get(s, 0)) for s in ("ok", "failed", "target-failed")])
    metric("migcheck_audit_guests", "Guests by where they can go: ok (some target ok), risky (only risky targets), "
           "unknown, stuck (blocked everywhere).", [({"status": s}, res.count(s)) for s in (OK, RISKY, UNKNOWN, STUCK)])
    metric("migcheck_audit_host_up", "1 if the host could be probed (as source and target).",
           [({"host": h.name}, 1 if h.state == "ok" else 0) for h in res.host_rows.values()])
    metric("migcheck_audit_host_guests", "Guests on the host.", [({"host": h.name}, len(h.vms))
                                                                  for h in res.host_rows.values()])
    metric("migcheck_audit_host_stuck_guests", "Guests on the host that cannot move anywhere.",
           [({"host": h.name}, len(h.stuck)) for h in res.host_rows.values()])
    metric("migcheck_audit_host_evacuable", "1 if every guest of the host has a target whose verdict is ok.",
           [({"host": h.name}, 1 if h.evacuable == "yes" else 0) for h in res.host_rows.values()])
    metric("migcheck_audit_guest_stuck", "A guest that cannot move anywhere (only stuck guests are listed).",
           [({"host": r.vm.host, "guest": r.vm.name}, 1) for r in res.rows if r.status == STUCK])
    blocked = Counter(rule for r in res.rows for c in r.cells for rule, sev, _ in c.blockers if sev == "block")
    metric("migcheck_audit_blocked_pairs", "Guest/target pairs a check blocks.",
           [({"check": rule}, n) for rule, n in sorted(blocked.items())])
    if changes is not None and changes.previous_run is not None:
        metric("migcheck_audit_changes", "What changed since the previous audit of this inventory.",
               [({"kind": k}, n) for k, n in changes.counts().items()])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:16px 24px}header h1{margin:0;font-size:20px}
header .meta{opacity:.8;font-size:13px;margin-top:4px}main{padding:16px 24px;max-width:1600px}
.badges{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}.badge{border-radius:8px;padding:12px 18px;color:#fff;
min-width:120px}.badge b{display:block;font-size:28px}.b-stuck{background:#c62828}.b-ok{background:#2e7d32}
.b-unknown{background:#6d6d6d}.b-risky{background:#ef6c00}.b-hosts{background:#37474f}
section{background:#fff;border-radius:8px;padding:12px 18px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{margin:0 0 8px;font-size:16px}.stuck{border-left:8px solid #c62828}.good{border-left:8px solid #2e7d32}
table{border-collapse:collapse}td,th{padding:3px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #eceff1}
th{font-weight:600;background:#fafafa}.vm{font-weight:600}.muted{color:#6b7280}
.m td,.m th{text-align:center;border:1px solid #fff;padding:2px 4px;min-width:26px}.m th.v{text-align:left}
.m th.t{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;height:auto;font-weight:500}
.c-ok{background:#a5d6a7}.c-risky{background:#ffcc80}.c-blocked{background:#ef9a9a}.c-unknown{background:#cfd8dc}
.c-self{background:#eceff1}.s-stuck{color:#c62828;font-weight:700}.s-ok{color:#2e7d32}.s-risky{color:#ef6c00}
.s-unknown{color:#6d6d6d}.e-yes{color:#2e7d32;font-weight:600}.e-no{color:#c62828;font-weight:700}
.e-risk{color:#ef6c00}.e-unknown{color:#6d6d6d}.legend span{display:inline-block;padding:1px 8px;margin-right:6px;
border-radius:3px}code{font-size:12px}details summary{cursor:pointer}ul{margin:4px 0;padding-left:20px}
"""

_MARK = {"ok": "✓", "risky": "!", "blocked": "✗", "unknown": "?"}
MAX_MATRIX_CELLS = 40_000


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(res: AuditResult, changes: Changes | None) -> str:
    stuck = [r for r in res.rows if r.status == STUCK]
    p: list[str] = []
    p.append("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>migcheck fleet audit: {len(stuck)} stuck</title><style>{_CSS}</style></head><body>")
    p.append(f"<header><h1>migcheck fleet audit</h1><div class='meta'>{_e(res.inventory.path)} · "
             f"{_e(_when(res.started))} · {res.duration:.1f}s · flags {_e(' '.join(res.flags) or '(none)')} · "
             f"exit {res.exit_code}</div></header><main>")
    p.append("<div class='badges'>"
             f"<div class='badge b-stuck'><b>{len(stuck)}</b>stuck guests</div>"
             f"<div class='badge b-ok'><b>{res.count(OK)}</b>can move</div>"
             f"<div class='badge b-risky'><b>{res.count(RISKY)}</b>only with risk</div>"
             f"<div class='badge b-unknown'><b>{res.count(UNKNOWN)}</b>unknown</div>"
             f"<div class='badge b-hosts'><b>{len(res.host_rows) - len(res.failed_hosts)}/{len(res.host_rows)}</b>"
             "hosts probed</div></div>")
    if stuck:
        p.append(f"<section class='stuck'><h2>Stuck: {len(stuck)} guest(s) cannot move anywhere</h2>"
                 "<table><tr><th>guest</th><th>host</th><th>why (check: targets it blocks)</th></tr>")
        for r in stuck:
            p.append(f"<tr><td class='vm'>{_e(r.vm.name)}</td><td>{_e(r.vm.host)}</td><td>{_e(_why(r))}</td></tr>")
        p.append("</table></section>")
    elif res.nothing_checked or res.unprobed_hosts:
        p.append(f"<section class='stuck'><h2>{_e(_headline(res, stuck))}</h2></section>")
    else:
        p.append("<section class='good'><h2>No stuck guest: every guest checked has a target</h2></section>")
    if res.failed_hosts:
        p.append(f"<section class='stuck'><h2>{len(res.failed_hosts)} host(s) could not be probed</h2><table>")
        for h in res.failed_hosts:
            what = "as a target" if h.state == "target-failed" else "at all"
            p.append(f"<tr><td class='vm'>{_e(h.name)}</td><td>{_e(what)}</td><td>{_e(h.error)}</td></tr>")
        p.append("</table></section>")
    if changes is not None:
        p.append(_changes_html(changes))
    p.append("<section><h2>Hosts: can they be evacuated, and where to</h2><table><tr><th>host</th><th>guests</th>"
             "<th>evacuable</th><th>stuck guests</th><th>targets (guests each accepts)</th></tr>")
    for h in res.host_rows.values():
        if h.state == "failed":
            p.append(f"<tr><td class='vm'>{_e(h.name)}</td><td>?</td><td class='e-unknown'>not probed</td>"
                     "<td></td><td></td></tr>")
            continue
        where = ", ".join(f"{_e(t)} ({n})" for t, n in h.where_to()) or "<span class='muted'>nowhere</span>"
        p.append(f"<tr><td class='vm'>{_e(h.name)}</td><td>{len(h.vms)}</td><td class='e-{_e(h.evacuable)}'>"
                 f"{_e(h.evacuable)}</td><td>{_e(', '.join(r.vm.name for r in h.stuck))}</td><td>{where}</td></tr>")
    p.append("</table></section>")
    p.append(_matrix_html(res))
    p.append("</main></body></html>\n")
    return "".join(p)


def _changes_html(ch: Changes) -> str:
    if ch.previous_run is None:
        return "<section><h2>Changes</h2><p class='muted'>First run of this inventory: nothing to compare.</p></section>"
    if ch.empty:
        return f"<section><h2>Changes since {_e(ch.previous_run)}</h2><p class='muted'>None.</p></section>"
    parts = [f"<section><h2>Changes since {_e(ch.previous_run)}</h2>"]
    for label, items, fmt in (
        ("New blockers", ch.new_blockers, lambda x: f"{x[0]} ({x[1]}) → {x[2]}: <code>{_e(x[3])}</code> {_e(x[4])}"),
        ("Resolved blockers", ch.resolved_blockers, lambda x: f"{x[0]} ({x[1]}) → {x[2]}: <code>{_e(x[3])}</code>"),
        ("Newly stuck", ch.newly_stuck, lambda x: f"{x[0]} on {x[1]}"),
        ("No longer stuck", ch.no_longer_stuck, lambda x: f"{x[0]} on {x[1]}"),
        ("New guests", ch.new_vms, lambda x: f"{x[0]} on {x[1]}"),
        ("Vanished guests", ch.vanished_vms, lambda x: f"{x[0]} (was on {x[1]})"),
        ("Moved guests", ch.moved_vms, lambda x: f"{x[0]}: {x[1]} → {x[2]}"),
        ("New hosts", ch.new_hosts, lambda x: x), ("Vanished hosts", ch.vanished_hosts, lambda x: x),
        ("Hosts now failing", ch.failing_hosts, lambda x: x), ("Hosts answering again", ch.recovered_hosts, lambda x: x),
    ):
        if items:
            parts.append(f"<details open><summary>{label}: {len(items)}</summary><ul>")
            for x in items[:200]:
                esc = tuple(_e(v) for v in x) if isinstance(x, tuple) else _e(x)
                if label.endswith("blockers"):  # fmt escapes the rule and message itself
                    esc = tuple(_e(v) for v in x[:3]) + tuple(x[3:])
                parts.append(f"<li>{fmt(esc)}</li>")
            parts.append("</ul></details>")
    parts.append("</section>")
    return "".join(parts)


def _matrix_html(res: AuditResult) -> str:
    groups = res.inventory.groups
    total = res.pairs
    only_problems = total > MAX_MATRIX_CELLS
    out = ["<section><h2>Guest × host matrix</h2><p class='legend'><span class='c-ok'>✓ ok</span>"
           "<span class='c-risky'>! risky</span><span class='c-blocked'>✗ blocked</span>"
           "<span class='c-unknown'>? unknown</span><span class='c-self'>its host</span> · hover a cell for the "
           "findings" + (f" · {total} pairs: only guests with a target that is not ok are shown" if only_problems
                         else "") + "</p>"]
    rows_by_host: dict[str, list[VmRow]] = {}
    for r in res.rows:
        rows_by_host.setdefault(r.vm.host, []).append(r)
    for gname, members in groups.items():
        rows = [r for h in members for r in rows_by_host.get(h, [])
                if not only_problems or r.status != OK or any(c.verdict.value != "ok" for c in r.cells)]
        if not rows:
            continue
        out.append(f"<h3>{_e(gname)}</h3><table class='m'><tr><th class='v'>guest</th><th class='v'>host</th>"
                   "<th class='v'>status</th>")
        out += [f"<th class='t'>{_e(h)}</th>" for h in members]
        out.append("</tr>")
        for r in sorted(rows, key=lambda r: ({STUCK: 0, UNKNOWN: 1, RISKY: 2, OK: 3}[r.status], r.vm.host, r.vm.name)):
            cells = {c.target: c for c in r.cells}
            out.append(f"<tr><th class='v vm'>{_e(r.vm.name)}</th><td>{_e(r.vm.host)}</td>"
                       f"<td class='s-{r.status}'>{_e(r.status)}</td>")
            for h in members:
                if h == r.vm.host:
                    out.append("<td class='c-self'></td>")
                    continue
                c = cells.get(h)
                if c is None:
                    out.append("<td></td>")
                    continue
                v = c.verdict.value
                tip = "\n".join(f"{sev}: {rule}: {msg}" for rule, sev, msg in c.blockers) or v
                out.append(f"<td class='c-{v}' title='{_e(tip)}'>{_MARK[v]}</td>")
            out.append("</tr>")
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


# ------------------------------------------------------------------ Icinga/Nagios

MAX_HOST_PERFDATA = 100  # per-host performance data for at most this many hosts (output buffers are finite)
MAX_LONG_ROWS = 50


def nagios_state(res: AuditResult, unwritten: bool = False) -> int:
    """The audit as a service state, as an operator who must be able to evacuate any host wants it:

    CRITICAL  some guest is stuck: every target blocks it, or it has none (whatever else is true);
    UNKNOWN   the audit answered nothing: no host could be probed, or no guest could be checked
              against any target; or an output it was told to write (--json, --html, --prometheus,
              the history database) could not be written;
    WARNING   every guest checked has somewhere to go, but not all is known to be well: a host
              could not be probed (its guests were not checked, and it takes no guests), a guest
              could not be checked, or a guest can move only with a risk;
    OK        every host answered and every guest has a target whose verdict is ok.

    Hosts that do not answer are WARNING, not UNKNOWN: the plugin guidelines keep UNKNOWN for
    "invalid command line arguments" and failures inside the plugin, and say that "higher-level
    errors (such as name resolution errors, socket timeouts, etc) ... should generally NOT be
    reported as UNKNOWN"; the rest of the fleet was checked, and an UNKNOWN would hide that
    answer (many sites send UNKNOWN to whoever runs the monitoring, not to the hypervisors' team).
    """
    from migcheck.report import nagios

    if res.count(STUCK):
        return nagios.CRITICAL
    if res.nothing_checked or (res.rows and all(r.status == UNKNOWN for r in res.rows)) or unwritten:
        return nagios.UNKNOWN
    if res.failed_hosts or res.count(UNKNOWN) or res.count(RISKY):
        return nagios.WARNING
    return nagios.OK


def render_nagios(res: AuditResult, changes: Changes | None, notes: list[str] | None = None,
                  unwritten: bool = False) -> tuple[str, int]:
    """`migcheck audit INV --format nagios`: (the plugin output, its state)."""
    from migcheck.report import nagios
    from migcheck.report.nagios import Perf, listed, name, text

    state = nagios_state(res, unwritten)
    guests, hosts = len(res.rows), len(res.host_rows)
    stuck = [r for r in res.rows if r.status == STUCK]
    failed = res.failed_hosts
    n_unknown, n_risky = res.count(UNKNOWN), res.count(RISKY)
    where = f"audit {name(Path(res.inventory.path).name)}"
    unprobed = f"{len(failed)} of {hosts} host(s) not probed" if failed else ""
    if stuck:
        names = [f"{name(r.vm.name)} on {name(r.vm.host)}" for r in stuck]
        summary = f"{where}: {len(stuck)} of {guests} guest(s) stuck: {listed(names, nagios.MAX_NAMES_IN_STATUS)}"
        summary += f"; {unprobed}" if unprobed else ""
    elif res.nothing_checked:
        summary = f"{where}: none of the {hosts} host(s) could be probed, no guest was checked"
    elif state == nagios.UNKNOWN and guests and n_unknown == guests:
        summary = f"{where}: none of the {guests} guest(s) could be checked against any target"
    else:
        parts = [p for p in (unprobed, f"{n_unknown} guest(s) unknown" if n_unknown else "",
                             f"{n_risky} guest(s) only risky" if n_risky else "") if p]
        summary = f"{where}: no guest stuck" + (f"; {', '.join(parts)}" if parts else
                                                f", every one of {guests} guest(s) can move")
        if unwritten:
            summary += "; an output could not be written"
    long_text: list[str] = []
    for label, rows in (("stuck", stuck), ("unknown", [r for r in res.rows if r.status == UNKNOWN]),
                        ("risky only", [r for r in res.rows if r.status == RISKY])):
        for r in rows[:MAX_LONG_ROWS]:
            why = r.vm.error or _why(r) or "risky everywhere"
            long_text.append(f"{label}: {name(r.vm.name)} on {name(r.vm.host)}: {text(why)}")
        if len(rows) > MAX_LONG_ROWS:
            long_text.append(f"{label}: ... and {len(rows) - MAX_LONG_ROWS} more")
    for h in failed:
        what = "as a target" if h.state == "target-failed" else "at all"
        long_text.append(f"not probed {what}: {name(h.name)}: {text(h.error or '')}")
    if changes is not None and changes.previous_run is not None and not changes.empty:
        counts = ", ".join(f"{k.replace('_', ' ')}: {n}" for k, n in changes.counts().items() if n)
        long_text.append(f"changes since {text(changes.previous_run)}: {text(counts)}")
    long_text += [f"note: {text(n)}" for n in notes or []]
    long_text.append(f"inventory: {text(res.inventory.path)}; flags: {text(' '.join(res.flags) or '(none)')}")
    perf = [Perf("stuck_guests", len(stuck), crit="0", max=guests),
            Perf("unknown_guests", n_unknown, warn="0", max=guests),
            Perf("risky_only_guests", n_risky, warn="0", max=guests),
            Perf("ok_guests", res.count(OK), max=guests),
            Perf("guests", guests),
            Perf("unreachable_hosts", len(failed), warn="0", max=hosts),
            Perf("hosts", hosts),
            Perf("pairs", res.pairs),
            Perf("duration", round(res.duration, 3), uom="s")]
    probed = [h for h in res.host_rows.values() if h.state != "failed"]
    for h in probed[:MAX_HOST_PERFDATA]:
        perf.append(Perf(f"stuck_guests:{h.name}", len(h.stuck), crit="0", max=len(h.vms)))
    if len(probed) > MAX_HOST_PERFDATA:
        long_text.append(f"per-host performance data for the first {MAX_HOST_PERFDATA} of {len(probed)} hosts")
    return nagios.output(state, summary, long_text, perf), state
