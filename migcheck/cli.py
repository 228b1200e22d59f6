"""The ``migcheck`` command line.

``migcheck SRC DST VM [virsh migrate flags]`` is short for ``migcheck check ...``.
Exit codes: 0 ok, 1 blocked, 2 usage error, 3 could not check, 4 risky.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from migcheck.report.exit_codes import ExitCode

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Will this libvirt/QEMU migration work? If not, exactly why and how to fix it.\n\n"
    "migcheck SRC DST VM [virsh migrate flags] is short for 'migcheck check SRC DST VM ...'.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

SUBCOMMANDS = {"check", "migrate", "probe", "audit", "rules", "explain", "version"}


class Format(str, Enum):
    table = "table"
    json = "json"


def _fail(message: str, code: ExitCode) -> "typer.Exit":
    typer.echo(f"migcheck: {message}", err=True)
    return typer.Exit(int(code))


MAX_TIMEOUT = 24 * 3600.0


def _options(timeout: float, no_ssh: bool, ssh_config: Optional[str], qmp: bool = False):
    from migcheck.probe.session import ProbeOptions

    if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan; inf overflowed the thread join
        raise _fail(f"--timeout {timeout:g}: give seconds, more than 0 and at most {MAX_TIMEOUT:g}", ExitCode.USAGE)
    return ProbeOptions(timeout=timeout, connect_timeout=min(timeout, 10.0), use_ssh=not no_ssh,
                        ssh_config=ssh_config, qmp=qmp)


def _emit(report, fmt: Format, verbose: bool) -> None:
    from migcheck.report.render import render_json, render_table

    typer.echo(render_json(report) if fmt == Format.json else render_table(report, verbose), nl=fmt == Format.json)


_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
_SOURCE = typer.Argument(None, help="source host: NAME, USER@NAME or a libvirt URI")
_TARGET = typer.Argument(None, help="target host: NAME, USER@NAME or a libvirt URI")
_VM = typer.Argument(None, help="the guest (domain) name on the source")
_FORMAT = typer.Option(Format.table, "--format", "-f", help="table or json")
_VERBOSE = typer.Option(False, "--verbose", "-v", help="show the evidence of each finding")
_TIMEOUT = typer.Option(30.0, "--timeout", help="seconds allowed for probing each host")
_NO_SSH = typer.Option(False, "--no-ssh", help="use libvirt only (checks needing the QEMU command line say unknown)")
_SSH_CONFIG = typer.Option(None, "--ssh-config", help="SSH config file (default ~/.ssh/config)")
_QMP = typer.Option(False, "--qmp", help="also ask the running QEMU for its migration blockers (query-migrate); "
                    "libvirt then marks the guest 'tainted: custom-monitor'")


def _parse_flags_or_fail(args: list[str]):
    from migcheck.flags import FlagError, parse_flags

    try:
        return parse_flags(args)
    except FlagError as exc:
        raise _fail(f"{exc} (flags are spelled as for virsh migrate)", ExitCode.USAGE)


def _trace(what: str) -> None:
    if os.environ.get("MIGCHECK_TRACE") == "1":
        from migcheck.probe.session import trace

        trace(what)


def _import_evaluation() -> None:
    """What evaluates and renders a probe's answers: ~0.1 s of imports (pydantic models, the checks).

    Done while the probe waits on the network (its worker threads need the
    same modules, and take them from here), instead of before it starts.
    """
    import migcheck.probe.gather  # noqa: F401 - first: the probe's workers wait for this one
    from migcheck.checks import load_all
    import migcheck.engine  # noqa: F401
    import migcheck.report.render  # noqa: F401

    load_all()


def _check_online(source, target, vm, flags, options, fmt: Format, verbose: bool, save: Optional[Path] = None):
    """Probe both hosts and evaluate; on a probe failure print one line and exit 3."""
    from migcheck.connectors.hostspec import HostSpecError, parse_host
    from migcheck.probe.pair import start_probe_pair
    from migcheck.probe.session import ProbeError, trace

    if not (source and target and vm):
        raise _fail("usage: migcheck SRC DST VM [virsh migrate flags]  (see migcheck --help)", ExitCode.USAGE)
    try:
        src, dst = parse_host(source), parse_host(target)
    except HostSpecError as exc:
        raise _fail(str(exc), ExitCode.USAGE)
    pending = start_probe_pair(src, dst, vm, options)
    _import_evaluation()  # while both hosts' handshakes run
    from migcheck.engine import evaluate, unknown_report

    trace("imports done, waiting for the probe")
    try:
        pair = pending.result()
    except ProbeError as exc:
        typer.echo(f"migcheck: {exc}", err=True)
        if fmt == Format.json:
            _emit(unknown_report(src.spec, dst.spec, vm, flags, str(exc)), fmt, verbose)
        raise typer.Exit(int(ExitCode.UNKNOWN))
    if save:
        from migcheck.probe.snapshot import save_pair

        save_pair(pair.source, pair.target, vm, flags.as_args(), save)
    trace("probe done")
    report = evaluate(pair.source, pair.target, vm, flags)
    trace("evaluated")
    return report, pair, src, dst


@app.command(context_settings=_EXTRA_ARGS)
def check(
    ctx: typer.Context,
    source: Optional[str] = _SOURCE,
    target: Optional[str] = _TARGET,
    vm: Optional[str] = _VM,
    fmt: Format = _FORMAT,
    verbose: bool = _VERBOSE,
    timeout: float = _TIMEOUT,
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
    qmp: bool = _QMP,
    save: Optional[Path] = typer.Option(None, "--save", help="also save the probe of both hosts to this directory"),
    from_snapshot: Optional[list[Path]] = typer.Option(
        None, "--from-snapshot", help="replay offline: a pair snapshot (from --save), or a source and a target "
        "probe (from 'migcheck probe --save'); give the option once or twice"),
) -> None:
    """Check whether VM can migrate from SOURCE to TARGET. Extra arguments are virsh migrate flags (--live, ...)."""
    if from_snapshot:
        # positional arguments are flags here: nothing names hosts in a replay
        flags = _parse_flags_or_fail([a for a in [source, target, vm] if a] + list(ctx.args))
        report = _replay(from_snapshot, flags)
    else:
        flags = _parse_flags_or_fail(list(ctx.args))
        report, *_ = _check_online(source, target, vm, flags, _options(timeout, no_ssh, ssh_config, qmp),
                                   fmt, verbose, save)
    _emit(report, fmt, verbose)
    _trace("report written")
    raise typer.Exit(report.exit_code)


DEFAULT_MISSES = Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))) / "migcheck" / "misses"


@app.command(context_settings=_EXTRA_ARGS)
def migrate(
    ctx: typer.Context,
    source: Optional[str] = _SOURCE,
    target: Optional[str] = _TARGET,
    vm: Optional[str] = _VM,
    verbose: bool = _VERBOSE,
    timeout: float = _TIMEOUT,
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
    qmp: bool = _QMP,
    allow_risky: bool = typer.Option(False, "--allow-risky", help="also migrate when the verdict is risky"),
    misses: Path = typer.Option(DEFAULT_MISSES, "--misses-dir",
                                help="where to record a migration that failed although migcheck allowed it"),
    migrate_timeout: float = typer.Option(3600.0, "--migrate-timeout", help="seconds allowed for virsh migrate"),
) -> None:
    """Check, and only if the verdict is ok (or risky with --allow-risky) run the real virsh migrate with the same flags.

    Exit codes: those of check when it refuses; 0 when the migration succeeded; 5 when it failed anyway.
    """
    flags = _parse_flags_or_fail(list(ctx.args))
    report, pair, src, dst = _check_online(source, target, vm, flags, _options(timeout, no_ssh, ssh_config, qmp),
                                           Format.table, verbose)
    _emit(report, Format.table, verbose)
    allowed = {"ok"} | ({"risky"} if allow_risky else set())
    if report.verdict.value not in allowed:
        typer.echo(f"migcheck: not migrating {vm}: verdict {report.verdict.value}"
                   + ("" if report.verdict.value != "risky" else " (--allow-risky to go ahead)"), err=True)
        raise typer.Exit(report.exit_code)
    from migcheck.migrate import run_virsh_migrate

    outcome = run_virsh_migrate(src, dst, vm, list(ctx.args), migrate_timeout)
    if outcome.ok:
        typer.echo(f"migcheck: {vm} migrated from {src.spec} to {dst.spec}", err=True)
        raise typer.Exit(0)
    from migcheck.migrate import record_miss

    where = record_miss(misses, pair, report, outcome)
    typer.echo(f"migcheck: the migration failed although migcheck said {report.verdict.value}: {outcome.error_line}",
               err=True)
    typer.echo(f"migcheck: {outcome.explanation}; recorded in {where}", err=True)
    raise typer.Exit(int(ExitCode.MIGRATION_FAILED))


def _replay(dirs: list[Path], flags):
    from migcheck.engine import evaluate
    from migcheck.flags import parse_flags
    from migcheck.probe.snapshot import SnapshotError, load_host, load_meta, load_side

    try:
        if len(dirs) == 1:
            meta = load_meta(dirs[0])
            if meta.get("kind") != "pair":
                raise _fail(f"{dirs[0]} holds one host; give --from-snapshot twice (source, then target)",
                            ExitCode.USAGE)
            source, target = load_host(dirs[0] / "source"), load_host(dirs[0] / "target")
            if not flags.as_args():
                flags = parse_flags(meta.get("flags") or [])
            domain = meta.get("domain") or "?"
        elif len(dirs) == 2:
            source, target = load_side(dirs[0]), load_side(dirs[1])
            if source.domain is None:
                raise _fail(f"{dirs[0]}: the source probe has no guest; probe it with: migcheck probe HOST VM --save DIR",
                            ExitCode.USAGE)
            domain = source.domain.name
        else:
            raise _fail("--from-snapshot takes one pair snapshot or two host probes", ExitCode.USAGE)
    except SnapshotError as exc:
        raise _fail(str(exc), ExitCode.USAGE)
    return evaluate(source, target, domain, flags)


@app.command()
def probe(
    host: str = typer.Argument(..., help="NAME, USER@NAME or a libvirt URI"),
    vm: Optional[str] = typer.Argument(None, help="also gather this guest's facts"),
    save: Optional[Path] = typer.Option(None, "--save", help="write the probe to this directory"),
    timeout: float = typer.Option(30.0, "--timeout"),
    no_ssh: bool = typer.Option(False, "--no-ssh"),
    ssh_config: Optional[str] = typer.Option(None, "--ssh-config"),
) -> None:
    """Gather one host's facts (and a guest's); print them as JSON or save them for offline replay."""
    import json

    from migcheck.connectors.hostspec import HostSpecError, parse_host
    from migcheck.facts.host import build_host_facts
    from migcheck.probe.gather import ProbeError, probe_host

    try:
        target = parse_host(host)
    except HostSpecError as exc:
        raise _fail(str(exc), ExitCode.USAGE)
    try:
        raw = probe_host(target, vm, _options(timeout, no_ssh, ssh_config))
    except ProbeError as exc:
        raise _fail(str(exc), ExitCode.UNKNOWN)
    if save:
        from migcheck.probe.snapshot import save_single

        save_single(raw, save)
        typer.echo(f"saved to {save}/", err=True)
    else:
        typer.echo(json.dumps(build_host_facts(raw).model_dump(mode="json", exclude={"raw"}), indent=2))
    if raw.errors:
        for fact, why in sorted(raw.errors.items()):
            typer.echo(f"migcheck: {target.spec}: could not gather {fact}: {why}", err=True)


@app.command(context_settings=_EXTRA_ARGS)
def audit(
    ctx: typer.Context,
    inventory: str = typer.Argument(..., help="inventory: migcheck YAML (groups:), or an Ansible inventory (INI or YAML)"),
    group: Optional[list[str]] = typer.Option(None, "--group", "-g", help="migration group(s) to use, each with the "
                                              "hosts of its children (default: every group that lists hosts)"),
    jobs: int = typer.Option(16, "--jobs", "-j", help="hosts probed at the same time"),
    timeout: float = typer.Option(120.0, "--timeout", help="seconds allowed for each host, in each probe phase"),
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
    inactive: str = typer.Option("offline", "--inactive", help="shut-off guests: offline (check --offline "
                                 "--persistent), skip, or same (the given flags)"),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table (text) or json, on stdout"),
    matrix: bool = typer.Option(False, "--matrix", help="list every pair in the text report, not only problems"),
    json_file: Optional[str] = typer.Option(None, "--json", help="also write the JSON report to this file"),
    html_file: Optional[str] = typer.Option(None, "--html", help="also write a self-contained HTML report"),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", help="write node_exporter textfile metrics (atomically)"),
    db: Optional[str] = typer.Option(None, "--db", help="history database (default ~/.local/state/migcheck/audit.sqlite)"),
    no_db: bool = typer.Option(False, "--no-db", help="keep no history (and show no changes)"),
    keep_runs: int = typer.Option(60, "--keep-runs", help="runs of this inventory kept in the history"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="progress bar (default: when "
                                            "stderr is a terminal)"),
) -> None:
    """Audit a fleet: every guest against every other host of its groups. Extra arguments are virsh migrate flags.

    Exit codes: 0 every guest can move somewhere and every host was probed; 1 some guest is stuck (no target);
    3 some host could not be probed (or a guest not checked); 4 some guest can only move with a risk; 2 usage.
    """
    from migcheck.audit.cli import AuditOptions, UsageError, run_audit
    from migcheck.audit.history import default_db_path

    opts = AuditOptions(inventory=inventory, flags=list(ctx.args), groups=group or None, jobs=jobs, timeout=timeout,
                        use_ssh=not no_ssh, ssh_config=ssh_config, inactive=inactive,
                        fmt="json" if fmt == Format.json else "text", matrix=matrix, json_file=json_file,
                        html_file=html_file, prometheus_file=prometheus,
                        db=None if no_db else (db or str(default_db_path())), keep_runs=keep_runs, progress=progress)
    try:
        code = run_audit(opts, sys.stdout, sys.stderr)
    except UsageError as exc:
        raise _fail(str(exc), ExitCode.USAGE)
    raise typer.Exit(code)


@app.command()
def rules(
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    markdown: bool = typer.Option(False, "--markdown", help="the README's check table"),
) -> None:
    """List every check: ID, severity, and what it finds."""
    from migcheck.checks.registry import all_checks, markdown_table

    checks = all_checks()
    if markdown:
        typer.echo(markdown_table(checks), nl=False)
        return
    if fmt == Format.json:
        import json

        typer.echo(json.dumps([{"id": c.id, "severity": c.severity.value, "title": c.title, "family": c.family,
                                "proven_by_lab": c.proven_by_lab} for c in checks], indent=2))
        return
    from tabulate import tabulate

    typer.echo(tabulate([[c.id, c.severity.value, c.title] for c in checks], headers=["check", "severity", "finds"]))


@app.command()
def explain(rule: str = typer.Argument(..., help="a check ID, as 'migcheck rules' lists them")) -> None:
    """Show a check's documentation."""
    from migcheck.checks.registry import all_checks

    by_id = {c.id: c for c in all_checks()}
    chk = by_id.get(rule)
    if chk is None:
        near = [i for i in by_id if rule.split(".")[-1] in i]
        raise _fail(f"no check '{rule}'" + (f"; did you mean {', '.join(near[:3])}?" if near else
                                            "; 'migcheck rules' lists them"), ExitCode.USAGE)
    typer.echo(f"{chk.id} ({chk.severity.value}): {chk.title}\n")
    typer.echo(chk.doc)


@app.command()
def version() -> None:
    """Print migcheck's version."""
    from migcheck import __version__

    typer.echo(__version__)


class _Scrubbing:
    """A text stream that never lets a host argument's password or secret URI parameters through.

    libvirt and ssh quote them in their errors (ssh gets "user:password" as its login name);
    this is the last line of defence behind HostTarget.scrub.
    """

    def __init__(self, stream, secrets: tuple[str, ...]):
        self._stream = stream
        self._secrets = secrets

    def write(self, text):
        from migcheck.connectors.hostspec import scrub

        return self._stream.write(scrub(text, self._secrets) if isinstance(text, str) else text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _exit_now_if_threads_linger(code) -> None:
    """A host's probe may be stuck in a libvirt or ssh call in a daemon thread: do not wait for it at exit."""
    import threading

    if isinstance(code, (int, type(None))) and any(t.is_alive() for t in threading.enumerate()
                                                    if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        _end_own_children()
        _trace("exit")
        os._exit(code or 0)


def _end_own_children() -> None:
    """SIGTERM this process's own children: the ssh that libvirt's qemu+ssh transport started for a
    host that never answered would otherwise outlive migcheck, as long as that host holds the connection."""
    import signal

    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = fh.read().rsplit(")", 1)[1].split()[1]
            if ppid == me:
                os.kill(int(entry), signal.SIGTERM)
        except (OSError, IndexError):
            continue


def _short_option_cluster(args: list[str]) -> str | None:
    """A word like '-oProxyCommand=x' where a host or flag was expected.

    The option parser reads it as the short options -o -P -r ... and finds -h in it
    ("touch"): it printed the help and exited 0, which a script reads as "ok".
    """
    for arg in args:
        if arg == "--":
            return None
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and not arg.startswith("-f"):
            return arg
    return None


def _help_among_operands(args: list[str]) -> bool:
    """-h/--help together with positional words (hosts, a guest) for check or probe."""
    words = args[: args.index("--")] if "--" in args else args
    if not any(w in ("-h", "--help") for w in words) or not words or words[0] not in ("check", "probe"):
        return False
    return any(not w.startswith("-") for w in words[1:])


def main(argv: list[str] | None = None) -> None:
    # pydantic scans every installed package's metadata for plugins on its first model (~10 ms);
    # migcheck uses none. Set it yourself to have yours loaded.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
        args.insert(0, "check")
    cluster = _short_option_cluster(args)
    if cluster is not None:
        from migcheck.connectors.libvirt_conn import one_line

        typer.echo(f"migcheck: {one_line(cluster)!r}: not an option (the short options are -f, -v and -h; "
                   "host names cannot start with '-')", err=True)
        sys.exit(int(ExitCode.USAGE))
    if _help_among_operands(args):
        # `migcheck SRC DST "$VM"` with a guest named --help must not print the help and exit 0 ("ok")
        typer.echo("migcheck: -h/--help given with hosts or a guest: for help run it alone; a guest whose name "
                   "starts with '-' goes after '--' (migcheck SRC DST -- NAME)", err=True)
        sys.exit(int(ExitCode.USAGE))
    from migcheck.connectors.hostspec import secrets_in

    secrets = tuple(sorted({s for a in args for s in secrets_in(a)}, key=len, reverse=True))
    if secrets:
        sys.stdout, sys.stderr = _Scrubbing(sys.stdout, secrets), _Scrubbing(sys.stderr, secrets)
    try:
        app(args=args, prog_name="migcheck", standalone_mode=True)
    except SystemExit as exc:
        if argv is None:  # the console script, not a test calling main() in-process
            _exit_now_if_threads_linger(exc.code)
        raise
    except KeyboardInterrupt:
        typer.echo("migcheck: interrupted", err=True)
        sys.stdout.flush()
        os._exit(int(ExitCode.UNKNOWN))
    except Exception as exc:  # a migcheck bug must not look like a verdict, nor print a traceback
        typer.echo(f"migcheck: internal error: {type(exc).__name__}: {exc} (please report it)", err=True)
        sys.stdout.flush()
        os._exit(int(ExitCode.UNKNOWN))


if __name__ == "__main__":  # pragma: no cover
    main()
