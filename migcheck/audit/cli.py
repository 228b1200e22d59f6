"""``migcheck audit INVENTORY [virsh migrate flags]``: the nightly fleet audit."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from migcheck.audit.result import EXIT_STUCK, EXIT_UNKNOWN, EXIT_USAGE


class UsageError(Exception):
    pass


@dataclass
class AuditOptions:
    inventory: str
    flags: list[str]
    groups: list[str] | None = None
    jobs: int = 16
    timeout: float = 120.0
    use_ssh: bool = True
    ssh_config: str | None = None
    inactive: str = "offline"
    fmt: str = "text"
    matrix: bool = False
    json_file: str | None = None
    html_file: str | None = None
    prometheus_file: str | None = None
    db: str | None = None  # None: no history
    keep_runs: int = 60
    progress: bool | None = None  # None: when stderr is a terminal
    check_jobs: int | None = None  # worker processes for the checking step; None: one per core
    allow_uri_commands: bool = False  # inventory URIs may run programs (qemu+ext://, ?command=...)


def run_audit(opts: AuditOptions, out, err, probe=None) -> int:
    """Run the audit; print to ``out`` (report) and ``err`` (one-line problems); return the exit code.

    ``probe(inventory, options, jobs, progress, audited)`` replaces the online probe (tests).
    """
    from migcheck.audit.evaluate import AuditPlan, check_fleet
    from migcheck.audit.inventory import InventoryError, load_inventory
    from migcheck.audit.probe import probe_fleet
    from migcheck.audit.progress import Progress
    from migcheck.audit.report import render_html, render_json, render_prometheus, render_text, write_atomic
    from migcheck.audit.result import AuditResult
    from migcheck.checks.registry import all_checks
    from migcheck.cli import ssh_config_problem
    from migcheck.flags import FlagError, parse_flags, rejected_combinations
    from migcheck.probe.gather import ProbeOptions

    if opts.inactive not in ("offline", "skip", "same"):
        raise UsageError(f"--inactive must be offline, skip or same, not {opts.inactive!r}")
    if opts.fmt not in ("text", "json", "nagios"):
        raise UsageError(f"--format must be text, json or nagios, not {opts.fmt!r}")
    plugin = opts.fmt == "nagios"
    notes: list[str] = []  # as a monitoring plugin: what would go to stderr, for the long text
    if plugin:  # a plugin writes nothing on stderr (Icinga 2 shows it as output): no progress bar either
        err = _Notes(notes)
    if opts.jobs < 1 or opts.timeout <= 0:
        raise UsageError("--jobs must be at least 1 and --timeout positive")
    problem = ssh_config_problem(opts.ssh_config)
    if problem:
        raise UsageError(problem)
    try:
        flags = parse_flags(opts.flags)
    except FlagError as exc:
        raise UsageError(f"{exc} (flags are spelled as for virsh migrate)") from None
    refused = rejected_combinations(flags)
    if refused:  # every guest migrated with them would be blocked: say so before contacting a host
        raise UsageError(f"{' '.join(flags.as_args())}: libvirt refuses these flags: {'; '.join(refused)}; "
                         "change the virsh migrate flags")
    try:
        inv = load_inventory(opts.inventory, opts.groups, opts.allow_uri_commands)
    except InventoryError as exc:
        raise UsageError(str(exc)) from None
    for w in inv.warnings:
        err.write(f"migcheck: {w}\n")
    history = None
    if opts.db:
        from migcheck.audit.history import History

        try:
            history = History(opts.db)
        except Exception as exc:  # noqa: BLE001 - an unusable database is the user's to fix, before probing
            raise UsageError(f"cannot open the history database {opts.db}: {exc}") from None

    progress = Progress(enabled=False if plugin else opts.progress)
    started = time.time()
    plan = AuditPlan(candidates={h: inv.candidates(h) for h in inv.hosts}, flags=flags, inactive=opts.inactive)

    def audited(g) -> bool:
        return g.raw is None or plan.guest_flags(g) is not None

    options = ProbeOptions(timeout=opts.timeout, connect_timeout=min(opts.timeout, 10.0), use_ssh=opts.use_ssh,
                           ssh_config=opts.ssh_config, migrateuri=flags.migrateuri,
                           resolve_target=not (flags.offline or flags.tunnelled))
    hosts = (probe or probe_fleet)(inv, options, opts.jobs, progress, audited)
    for name, h in hosts.items():
        if plugin:  # the plugin output names these hosts itself
            break
        if h.error:
            err.write(f"migcheck: {name}: could not be probed: {h.error}\n")
        elif h.target_error:
            err.write(f"migcheck: {name}: could not answer as a target: {h.target_error}\n")
    vms = check_fleet(hosts, plan, opts.check_jobs, progress)
    progress.done()
    result = AuditResult(inventory=inv, hosts=hosts, vms=vms, flags=flags.as_args(), started=started,
                         finished=time.time(), checks_run=len(all_checks()))
    changes = None
    inv_key = str(Path(opts.inventory).resolve())
    if history is not None:
        try:
            changes = history.record_run(result, inv_key, opts.keep_runs)
        except Exception as exc:  # noqa: BLE001 - the audit itself is done: say so, and exit 3
            err.write(f"migcheck: the history database {opts.db}: {type(exc).__name__}: {exc}\n")
            changes = None
            history = None
    if not plugin:
        out.write(render_json(result, changes) if opts.fmt == "json" else render_text(result, changes, opts.matrix))
    unwritten = False
    for path, render in ((opts.json_file, render_json), (opts.html_file, render_html),
                         (opts.prometheus_file, render_prometheus)):
        if path:
            try:
                write_atomic(path, render(result, changes))
            except OSError as exc:
                err.write(f"migcheck: cannot write {path}: {exc.strerror or exc}\n")
                unwritten = True
    # an output that could not be written is "unknown"; stuck guests (exit 1) still win, as blocked
    # wins over unknown for one pair: the line on stderr names what was not written
    code = result.exit_code
    if unwritten or (opts.db and history is None):
        code = code if code == EXIT_STUCK else EXIT_UNKNOWN
    if plugin:  # the state follows from the result and from what could not be written (named in the notes)
        from migcheck.audit.report import render_nagios

        text, state = render_nagios(result, changes, notes, unwritten or bool(opts.db and history is None))
        out.write(text)
        return state
    return code


class _Notes:
    """A stderr stand-in for the audit as a monitoring plugin: keeps the lines for the long text."""

    def __init__(self, notes: list[str]):
        self.notes = notes

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.notes.append(line.removeprefix("migcheck: "))
        return len(text)

    def flush(self) -> None:
        pass


__all__ = ["AuditOptions", "UsageError", "run_audit", "EXIT_USAGE"]
