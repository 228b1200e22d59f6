"""Audit history in SQLite: every run's hosts, guests and blockers, and what changed since the last run.

Schema (one database may hold several inventories; runs are compared with the previous run of
the same inventory path)::

    runs(id INTEGER PRIMARY KEY, inventory TEXT, started_at TEXT, finished_at TEXT, flags TEXT,
         exit_code INTEGER, hosts INTEGER, hosts_failed INTEGER, vms INTEGER, vms_stuck INTEGER,
         migcheck_version TEXT)
    hosts(run_id INTEGER, host TEXT, spec TEXT, state TEXT, error TEXT, vms INTEGER, evacuable TEXT)
    vms(run_id INTEGER, vm_key TEXT, vm TEXT, host TEXT, uuid TEXT, status TEXT, ok_targets INTEGER,
        targets INTEGER, error TEXT)
    blockers(run_id INTEGER, vm_key TEXT, vm TEXT, source TEXT, target TEXT, rule TEXT, severity TEXT,
             message TEXT)

``vm_key`` is the guest's UUID (``name:NAME`` without one), so a guest that moved is the same
guest. ``blockers`` holds the findings of severity block, unknown and risk of every pair;
"new" and "resolved" blockers compare those of severity block.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from migcheck.audit.result import STUCK, AuditResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  inventory TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  flags TEXT NOT NULL,
  exit_code INTEGER NOT NULL,
  hosts INTEGER NOT NULL,
  hosts_failed INTEGER NOT NULL,
  vms INTEGER NOT NULL,
  vms_stuck INTEGER NOT NULL,
  migcheck_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hosts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  host TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
  vms INTEGER NOT NULL, evacuable TEXT NOT NULL,
  PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS vms (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  vm_key TEXT NOT NULL, vm TEXT NOT NULL, host TEXT NOT NULL, uuid TEXT, status TEXT NOT NULL,
  ok_targets INTEGER NOT NULL, targets INTEGER NOT NULL, error TEXT,
  PRIMARY KEY (run_id, host, vm)
);
CREATE TABLE IF NOT EXISTS blockers (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  vm_key TEXT NOT NULL, vm TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL,
  rule TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blockers_run ON blockers (run_id);
CREATE INDEX IF NOT EXISTS runs_inventory ON runs (inventory, id);
"""


BUSY_TIMEOUT_S = 600


def default_db_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "migcheck" / "audit.sqlite"


@dataclass
class Changes:
    previous_run: str | None = None  # when the run compared with started; None: the first run
    new_hosts: list[str] = field(default_factory=list)
    vanished_hosts: list[str] = field(default_factory=list)
    failing_hosts: list[str] = field(default_factory=list)  # could be probed last time, not now
    recovered_hosts: list[str] = field(default_factory=list)
    new_vms: list[tuple[str, str]] = field(default_factory=list)  # (vm, host)
    vanished_vms: list[tuple[str, str]] = field(default_factory=list)  # (vm, host it was on)
    moved_vms: list[tuple[str, str, str]] = field(default_factory=list)  # (vm, from, to)
    new_blockers: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # vm, source, target, rule, msg
    resolved_blockers: list[tuple[str, str, str, str]] = field(default_factory=list)  # vm, source, target, rule
    newly_stuck: list[tuple[str, str]] = field(default_factory=list)
    no_longer_stuck: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__ if f != "previous_run")

    def counts(self) -> dict[str, int]:
        return {f: len(getattr(self, f)) for f in self.__dataclass_fields__ if f != "previous_run"}

    def as_json(self) -> dict:
        out: dict = {"previous_run": self.previous_run}
        for f in self.__dataclass_fields__:
            if f != "previous_run":
                out[f] = [list(x) if isinstance(x, tuple) else x for x in getattr(self, f)]
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


class History:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # another audit recording into the same file holds the write lock for as long as its record takes
        self.db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = FULL")  # a run recorded survives a power cut, or is not there
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def previous_run(self, inventory: str) -> int | None:
        row = self.db.execute("SELECT id FROM runs WHERE inventory = ? ORDER BY id DESC LIMIT 1", (inventory,)).fetchone()
        return row[0] if row else None

    def changes(self, result: AuditResult, inventory: str) -> Changes:
        """What changed between the previous run of this inventory and ``result`` (not yet recorded)."""
        prev = self.previous_run(inventory)
        ch = Changes()
        if prev is None:
            return ch
        db = self.db
        ch.previous_run = db.execute("SELECT started_at FROM runs WHERE id = ?", (prev,)).fetchone()[0]
        p_hosts = {h: (state) for h, state in db.execute("SELECT host, state FROM hosts WHERE run_id = ?", (prev,))}
        c_hosts = {h.name: h.state for h in result.host_rows.values()}
        ch.new_hosts = [h for h in c_hosts if h not in p_hosts]
        ch.vanished_hosts = [h for h in p_hosts if h not in c_hosts]
        ch.failing_hosts = [h for h, s in c_hosts.items() if s != "ok" and p_hosts.get(h) == "ok"]
        ch.recovered_hosts = [h for h, s in c_hosts.items() if s == "ok" and p_hosts.get(h) not in (None, "ok")]
        p_vms = {k: (vm, host, status) for k, vm, host, status in
                 db.execute("SELECT vm_key, vm, host, status FROM vms WHERE run_id = ?", (prev,))}
        c_vms = {r.key: r for r in result.rows}
        for k, r in c_vms.items():
            if k not in p_vms:
                if p_hosts.get(r.vm.host, "ok") == "ok":  # not just unseen because its host was down
                    ch.new_vms.append((r.vm.name, r.vm.host))
            else:
                vm, host, status = p_vms[k]
                if host != r.vm.host:
                    ch.moved_vms.append((r.vm.name, host, r.vm.host))
                if r.status == STUCK and status != STUCK:
                    ch.newly_stuck.append((r.vm.name, r.vm.host))
                if r.status != STUCK and status == STUCK:
                    ch.no_longer_stuck.append((r.vm.name, r.vm.host))
        for k, (vm, host, status) in p_vms.items():
            if k not in c_vms and c_hosts.get(host) == "ok":  # its host answered and it is not there
                ch.vanished_vms.append((vm, host))
        p_block = {(k, t, rule): (vm, src) for k, vm, src, t, rule in db.execute(
            "SELECT vm_key, vm, source, target, rule FROM blockers WHERE run_id = ? AND severity = 'block'", (prev,))}
        c_block: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        evaluated: set[tuple[str, str]] = set()
        for r in result.rows:
            for c in r.cells:
                if not (c.verdict.value == "unknown" and any(rule == "probe.failed" for rule, _, _ in c.blockers)):
                    evaluated.add((r.key, c.target))
                for rule, sev, msg in c.blockers:
                    if sev == "block":
                        c_block[(r.key, c.target, rule)] = (r.vm.name, r.vm.host, msg)
        for key, (vm, src, msg) in c_block.items():
            if key not in p_block:
                ch.new_blockers.append((vm, src, key[1], key[2], msg))
        for key, (vm, src) in p_block.items():
            if key not in c_block and (key[0], key[1]) in evaluated:
                ch.resolved_blockers.append((vm, c_vms[key[0]].vm.host, key[1], key[2]))
        return ch

    def record_run(self, result: AuditResult, inventory: str, keep_runs: int = 60) -> Changes:
        """Compare with the previous run and record this one, in one write transaction.

        Two audits of one inventory finishing at once are serialised by SQLite's lock: the second
        waits, then compares itself with the first (never both with the same older run), and a
        process killed at any point leaves either the whole run or nothing of it."""
        with self._write_transaction():
            changes = self.changes(result, inventory)
            self._insert(result, inventory, keep_runs)
        return changes

    def record(self, result: AuditResult, inventory: str, keep_runs: int = 60) -> int:
        """Record a run without comparing (one transaction)."""
        with self._write_transaction():
            return self._insert(result, inventory, keep_runs)

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: take the write lock before reading, so what is read stays true until COMMIT."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                self.db.execute("ROLLBACK")
            raise

    def _insert(self, result: AuditResult, inventory: str, keep_runs: int) -> int:
        from migcheck import __version__

        db = self.db
        cur = db.execute(
            "INSERT INTO runs (inventory, started_at, finished_at, flags, exit_code, hosts, hosts_failed, vms, "
            "vms_stuck, migcheck_version) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (inventory, _iso(result.started), _iso(result.finished), json.dumps(result.flags), result.exit_code,
             len(result.host_rows), len(result.failed_hosts), len(result.rows), result.count(STUCK), __version__))
        run = cur.lastrowid
        db.executemany("INSERT INTO hosts VALUES (?,?,?,?,?,?,?)",
                       [(run, h.name, h.spec, h.state, h.error, len(h.vms), h.evacuable)
                        for h in result.host_rows.values()])
        db.executemany("INSERT OR REPLACE INTO vms VALUES (?,?,?,?,?,?,?,?,?)",
                       [(run, r.key, r.vm.name, r.vm.host, r.vm.uuid, r.status,
                         sum(1 for c in r.cells if c.verdict.value == "ok"), len(r.cells), r.vm.error)
                        for r in result.rows])
        db.executemany("INSERT INTO blockers VALUES (?,?,?,?,?,?,?,?)",
                       [(run, r.key, r.vm.name, r.vm.host, c.target, rule, sev, msg)
                        for r in result.rows for c in r.cells for rule, sev, msg in c.blockers])
        old = [row[0] for row in db.execute(
            "SELECT id FROM runs WHERE inventory = ? ORDER BY id DESC LIMIT -1 OFFSET ?", (inventory, keep_runs))]
        for rid in old:
            for table in ("blockers", "vms", "hosts", "runs"):
                db.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run_id'} = ?", (rid,))
        return run
