"""migcheck audit end to end on generated fleets: reports, history, exit codes, HTML escaping."""

from __future__ import annotations

import io
import json
import re
import sqlite3

import pytest

from migcheck.audit.cli import AuditOptions, UsageError, run_audit
from migcheck.audit.history import History
from migcheck.probe.raw import PathStat
from tests.unit.fleetgen import small_fleet


def _inventory(tmp_path, fleet) -> str:
    lines = ["groups:"]
    for g, members in fleet.groups.items():
        lines.append(f"  {g}: [{', '.join(members)}]")
    p = tmp_path / "fleet.yml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _run(tmp_path, fleet, **kw):
    opts = AuditOptions(inventory=_inventory(tmp_path, fleet), flags=kw.pop("flags", ["--live"]),
                        db=str(tmp_path / "audit.sqlite"), html_file=str(tmp_path / "out" / "audit.html"),
                        json_file=str(tmp_path / "out" / "audit.json"),
                        prometheus_file=str(tmp_path / "prom" / "migcheck.prom"), progress=False, **kw)
    out, err = io.StringIO(), io.StringIO()
    code = run_audit(opts, out, err, probe=lambda inv, options, jobs, progress, audited: fleet.hosts)
    return code, out.getvalue(), err.getvalue()


def test_reports_and_exit_code(tmp_path) -> None:
    fleet = small_fleet(seed=1)
    code, out, err = _run(tmp_path, fleet)
    assert code == 1  # some guest is stuck
    assert "STUCK:" in out and "HOSTS NOT PROBED: 2" in out
    assert "g1-h03: could not be probed" in err  # one line naming the host and the cause
    assert "CHANGES: first run" in out
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert data["exit_code"] == 1 and data["summary"]["stuck"] >= 1
    stuck = [g for g in data["guests"] if g["status"] == "stuck"]
    assert all(all(t["verdict"] == "blocked" for t in g["targets"]) for g in stuck)
    prom = (tmp_path / "prom" / "migcheck.prom").read_text()
    assert re.search(r'^migcheck_audit_guests\{status="stuck"\} [1-9]', prom, re.M)
    assert re.search(r'^migcheck_audit_host_up\{host="g1-h03"\} 0$', prom, re.M)
    for line in prom.splitlines():  # the textfile format: comments or NAME{LABELS} VALUE
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^{}]*\})? -?[0-9.e+]+', line), line
    assert not list((tmp_path / "prom").glob(".migcheck.prom.*"))  # no temporary file left behind


def test_html_is_self_contained_and_escapes_host_strings(tmp_path) -> None:
    fleet = small_fleet(seed=1)
    _run(tmp_path, fleet)
    page = (tmp_path / "out" / "audit.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()  # the hostile guest name never becomes markup, and no JS of ours
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)  # no external assets
    assert "<style>" in page and "Stuck:" in page


def test_second_run_shows_the_changes(tmp_path) -> None:
    fleet = small_fleet(seed=2)
    code1, _, _ = _run(tmp_path, fleet)
    # overnight: a bridge appears on every host (its blockers resolve), a guest is deleted, a folder vanishes
    for h in fleet.hosts.values():
        for p, a in h.paths.items():
            if p == "/sys/class/net/br-prod" and a.value is not None:
                a.value = PathStat(path=p, exists=True, is_dir=True)
            if p == "/srv/logs" and a.value is not None:
                a.value = PathStat(path=p, exists=False)
    gone_host = next(h for h in fleet.hosts.values() if h.ok and len(h.guests) > 2)
    gone = next(iter(gone_host.guests))
    del gone_host.guests[gone]
    code2, out, _ = _run(tmp_path, fleet)
    assert "CHANGES since" in out
    assert "resolved blockers" in out and "network.bridge-missing" in out
    assert "new blockers" in out and "paths.chardev-directory" in out
    assert f"vanished guests: 1" in out and gone in out
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    page = (tmp_path / "out" / "audit.html").read_text()
    assert "Resolved blockers" in page


def test_history_keeps_the_last_runs(tmp_path) -> None:
    fleet = small_fleet(seed=3)
    for _ in range(3):
        _run(tmp_path, fleet, keep_runs=2)
    h = History(tmp_path / "audit.sqlite")
    assert h.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    assert h.db.execute("SELECT COUNT(DISTINCT run_id) FROM blockers").fetchone()[0] == 2


@pytest.mark.parametrize("kw, match", [({"flags": ["--bogus"]}, "unknown virsh migrate flag"),
                                       ({"inactive": "never"}, "--inactive"), ({"jobs": 0}, "--jobs")])
def test_usage_errors(tmp_path, kw, match) -> None:
    with pytest.raises(UsageError, match=match):
        _run(tmp_path, small_fleet(seed=1), **kw)


def test_cli_usage_error_exit_2(tmp_path) -> None:
    from migcheck.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["audit", str(tmp_path / "nope.yml"), "--no-db"])
    assert exc.value.code == 2


def test_progress_bar_only_on_a_terminal() -> None:
    from migcheck.audit.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet = io.StringIO()
    Progress(stream=quiet)("probing hosts", 1, 2)
    assert quiet.getvalue() == ""
    tty = Tty()
    p = Progress(stream=tty)
    p("probing hosts", 2, 2)
    assert "probing hosts" in tty.getvalue() and "2/2" in tty.getvalue()
    p.done()
    assert tty.getvalue().endswith("\r\x1b[K")
