"""The audit history and report files under faults: two audits at once, kill -9 at random points,
a full disk. Real processes, a real SQLite file, a real (small) tmpfs; nothing is mocked."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from migcheck.audit.cli import AuditOptions, run_audit
from tests.unit.test_audit_reports import _inventory, _run
from tests.unit.fleetgen import small_fleet

REPO = Path(__file__).resolve().parents[2]


def _consistent(db_path: Path) -> list[tuple[int, int]]:
    """integrity_check passes and every recorded run is whole: its hosts rows are all there."""
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = db.execute("SELECT id, hosts FROM runs ORDER BY id").fetchall()
        for rid, hosts in runs:
            assert db.execute("SELECT COUNT(*) FROM hosts WHERE run_id = ?", (rid,)).fetchone()[0] == hosts, rid
        orphans = db.execute("SELECT COUNT(*) FROM blockers WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()[0]
        assert orphans == 0
        return runs
    finally:
        db.close()


def _audit_in_child(tmp: str, inventory: str, seed: int, barrier, out) -> None:
    fleet = small_fleet(seed=seed)
    opts = AuditOptions(inventory=inventory, flags=["--live"], db=str(Path(tmp) / "audit.sqlite"), progress=False)
    text, err = io.StringIO(), io.StringIO()
    barrier.wait()
    run_audit(opts, text, err, probe=lambda inv, options, jobs, progress, audited: fleet.hosts)
    out.put(("first run" in text.getvalue(), "CHANGES since" in text.getvalue(), err.getvalue()))


def test_two_audits_at_once_record_one_after_the_other(tmp_path) -> None:
    """Both record; exactly one is the first run and the other compares itself with it."""
    ctx = mp.get_context("fork")
    for attempt in range(3):  # the race is real on every attempt; three chances to lose it
        d = tmp_path / f"a{attempt}"
        d.mkdir()
        barrier, out = ctx.Barrier(2), ctx.Queue()
        inventory = _inventory(d, small_fleet(seed=5))  # one inventory file, written before both start
        procs = [ctx.Process(target=_audit_in_child, args=(str(d), inventory, 5, barrier, out)) for _ in range(2)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert sorted(r[0] for r in results) == [False, True], results  # one first run, not two
        assert sorted(r[1] for r in results) == [False, True], results
        assert len(_consistent(d / "audit.sqlite")) == 2


RECORDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tests.unit.test_audit_reports import _run
    from tests.unit.fleetgen import small_fleet
    tmp = Path(sys.argv[1])
    fleet = small_fleet(seed=7)
    print("ready", flush=True)
    while True:
        _run(tmp, fleet)
""")


def test_kill_9_at_random_points_leaves_whole_runs_and_true_changes(tmp_path) -> None:
    rnd = random.Random(1234)
    for i in range(6):
        p = subprocess.Popen([sys.executable, "-c", RECORDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rnd.uniform(0.05, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        _consistent(tmp_path / "audit.sqlite")
        prom = tmp_path / "prom" / "migcheck.prom"
        if prom.exists():  # never half a file: the textfile ends with its last metric line
            assert prom.read_text().endswith("\n") and "migcheck_audit_guests" in prom.read_text()
    runs = _consistent(tmp_path / "audit.sqlite")
    assert runs, "no kill left a whole run behind: the delays are too short to test anything"
    last_started = sqlite3.connect(tmp_path / "audit.sqlite").execute(
        "SELECT started_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
    # the next run compares itself with the last whole run: the same fleet, so nothing changed
    _run(tmp_path, small_fleet(seed=7))
    ch = json.loads((tmp_path / "out" / "audit.json").read_text())["changes"]
    assert ch["previous_run"] == last_started
    assert not any(v for k, v in ch.items() if k != "previous_run"), ch
    assert len(_consistent(tmp_path / "audit.sqlite")) == min(len(runs) + 1, 60)


FULL_DISK = textwrap.dedent("""
    import io, sys
    from pathlib import Path
    from migcheck.audit.cli import AuditOptions, run_audit
    from tests.unit.test_audit_reports import _inventory
    from tests.unit.fleetgen import small_fleet
    from migcheck.audit.history import History
    tmp, full = Path(sys.argv[1]), Path(sys.argv[2])
    History(sys.argv[3]).close()  # the database exists from earlier nights; tonight the disk is full
    # fill the small filesystem so that nothing more fits
    with open(full / "filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
    fleet = small_fleet(seed=1)
    opts = AuditOptions(inventory=_inventory(tmp, fleet), flags=["--live"], db=sys.argv[3],
                        prometheus_file=sys.argv[4], progress=False)
    out, err = io.StringIO(), io.StringIO()
    code = run_audit(opts, out, err, probe=lambda inv, options, jobs, progress, audited: fleet.hosts)
    sys.stdout.write(f"{code}\\n{err.getvalue()}")
""")


@pytest.mark.parametrize("what", ["history", "prometheus"])
def test_a_full_disk_is_reported_in_one_line(tmp_path, what) -> None:
    """The history database, or the Prometheus file, on a filesystem that is full: one line naming it,
    and the exit code says it unless stuck guests already do (unknown loses to stuck, as to blocked). The small tmpfs is mounted in a
    private user and mount namespace (unshare), so this needs no root and touches nothing else."""
    if not shutil.which("unshare"):
        raise RuntimeError("this machine: util-linux's unshare is missing (the Makefile installs util-linux)")
    full = tmp_path / "full"
    full.mkdir()
    db = str(full / "audit.sqlite") if what == "history" else str(tmp_path / "audit.sqlite")
    prom = str(full / "migcheck.prom") if what == "prometheus" else str(tmp_path / "migcheck.prom")
    script = (f"mount -t tmpfs -o size=512k migcheck-full {full} && "
              f"exec {sys.executable} -c \"$0\" {tmp_path} {full} {db} {prom}")
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, FULL_DISK],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    code, *err = p.stdout.splitlines()
    assert code == "1", p.stdout  # this fleet has stuck guests: exit 1 wins over unknown, as blocked does
    name = db if what == "history" else prom
    lines = [l for l in err if name in l]
    assert len(lines) == 1 and ("full" in lines[0].lower() or "space" in lines[0].lower()), err
    assert "Traceback" not in p.stdout + p.stderr
