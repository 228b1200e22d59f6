"""migcheck's subcommands as typer defines them: the parser behind `--help` and every command line.

``migcheck.cli.main`` imports this module unless the command line is a plain check
(``cli.plain_check_args``): typer's import and the parameter types it builds on every run
cost ~0.3 s of CPU, before any host could be contacted. Keep each check option here and in
``cli.plain_check_args`` alike (tests/unit/test_startup.py compares the two parsers).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from migcheck.cli import (  # noqa: F401 - SUBCOMMANDS and MAX_TIMEOUT: kept importable from here too
    DEFAULT_MISSES,
    MAX_TIMEOUT,
    SUBCOMMANDS,
    Format,
    ReportFormat,
    _check_online,
    _emit,
    _fail,
    _options,
    _parse_flags_or_fail,
    run_check,
)
from migcheck.report.exit_codes import ExitCode, exit_codes_help

class _Command(typer.core.TyperCommand):
    """A subcommand whose --help names what a value is (SECONDS, DIR), not the Python type behind it.

    typer (0.2x) prints each parameter's annotation (<bool>, <float>, <list[Path]>) in the help;
    an option that takes a value says what it wants with its metavar, a flag and an argument
    (whose name is its metavar) say nothing more. An option without a metavar keeps typer's
    type name, which tests/unit/test_first_contact.py finds in the help.
    """

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            _plain_type(param)
        return params


class _Group(typer.core.TyperGroup):
    """The top level (``migcheck --help``), with the same help columns as its subcommands."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            _plain_type(param)
        return params


def _plain_type(param) -> None:
    takes_value = isinstance(param, typer.core.TyperOption) and not param.is_flag and not param.count
    if isinstance(param, typer.core.TyperArgument) or not takes_value:
        param.display_type_rich = lambda ctx: None
    elif param.metavar is not None:
        param.display_type_rich = lambda ctx, name=param.metavar: name


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Will this libvirt/QEMU migration work? If not, exactly why and how to fix it.\n\n"
    "'migcheck SRC DST VM FLAGS...' is short for 'migcheck check SRC DST VM FLAGS...' (FLAGS: virsh migrate's, "
    "such as --live).",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from migcheck import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print migcheck's version and exit (as 'migcheck version')"),
) -> None:
    pass

_EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
_SOURCE = typer.Argument(None, metavar="SRC", help="source host: NAME, USER@NAME or a libvirt URI")
_TARGET = typer.Argument(None, metavar="DST", help="target host: NAME, USER@NAME or a libvirt URI")
_VM = typer.Argument(None, metavar="VM", help="the guest (domain) name on the source")
_FORMAT = typer.Option(ReportFormat.table, "--format", "-f", metavar="FORMAT", help="table, json, or nagios (an Icinga/Nagios "
                       "plugin: one status line, perfdata, exit 0 ok, 1 risky, 2 blocked, 3 unknown or bad input)")
_VERBOSE = typer.Option(False, "--verbose", "-v", help="show the evidence of each finding")
_TIMEOUT = typer.Option(30.0, "--timeout", metavar="SECONDS", help="seconds allowed for probing each host")
_NO_SSH = typer.Option(False, "--no-ssh", help="use libvirt only (checks needing the QEMU command line say unknown)")
_SSH_CONFIG = typer.Option(None, "--ssh-config", metavar="FILE", help="SSH config file (default ~/.ssh/config)")
_QMP = typer.Option(False, "--qmp", help="also ask the running QEMU for its migration blockers (query-migrate); "
                    "libvirt then marks the guest 'tainted: custom-monitor'")


@app.command(cls=_Command, context_settings=_EXTRA_ARGS, help="Check whether VM can migrate from SRC to DST. Extra "
             "arguments are virsh migrate flags (--live, ...).\n\n" + exit_codes_help() + "\n\nWith --format nagios: "
             "0 ok, 1 risky, 2 blocked, 3 unknown or bad input.")
def check(
    ctx: typer.Context,
    source: Optional[str] = _SOURCE,
    target: Optional[str] = _TARGET,
    vm: Optional[str] = _VM,
    fmt: ReportFormat = _FORMAT,
    verbose: bool = _VERBOSE,
    timeout: float = _TIMEOUT,
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
    qmp: bool = _QMP,
    save: Optional[Path] = typer.Option(None, "--save", metavar="DIR", help="also save the probe of both hosts to this directory"),
    from_snapshot: Optional[list[Path]] = typer.Option(
        None, "--from-snapshot", metavar="DIR", help="replay offline: a pair snapshot (from --save), or a source and a target "
        "probe (from 'migcheck probe --save'); give the option once or twice"),
) -> None:
    run_check(list(ctx.args), source, target, vm, fmt, verbose, timeout, no_ssh, ssh_config, qmp, save, from_snapshot)


@app.command(cls=_Command, context_settings=_EXTRA_ARGS)
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
    misses: Path = typer.Option(DEFAULT_MISSES, "--misses-dir", metavar="DIR",
                                help="where to record a migration that failed although migcheck allowed it"),
    migrate_timeout: float = typer.Option(3600.0, "--migrate-timeout", metavar="SECONDS", help="seconds allowed for virsh migrate"),
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


@app.command(cls=_Command)
def probe(
    host: str = typer.Argument(..., metavar="HOST", help="NAME, USER@NAME or a libvirt URI"),
    vm: Optional[str] = typer.Argument(None, metavar="VM", help="also gather this guest's facts"),
    save: Optional[Path] = typer.Option(None, "--save", metavar="DIR", help="write the probe to this directory"),
    timeout: float = typer.Option(30.0, "--timeout", metavar="SECONDS", help="seconds allowed for probing the host"),
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
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


@app.command(cls=_Command, context_settings=_EXTRA_ARGS)
def audit(
    ctx: typer.Context,
    inventory: str = typer.Argument(..., metavar="INVENTORY", help="inventory: migcheck YAML (groups:), or an Ansible inventory (INI or YAML)"),
    group: Optional[list[str]] = typer.Option(None, "--group", "-g", metavar="GROUP", help="migration group(s) to use, each with the "
                                              "hosts of its children (default: every group that lists hosts)"),
    jobs: int = typer.Option(16, "--jobs", "-j", metavar="N", help="hosts probed at the same time"),
    timeout: float = typer.Option(120.0, "--timeout", metavar="SECONDS", help="seconds allowed for each host, in each probe phase"),
    no_ssh: bool = _NO_SSH,
    ssh_config: Optional[str] = _SSH_CONFIG,
    inactive: str = typer.Option("offline", "--inactive", metavar="MODE", help="shut-off guests: offline (check --offline "
                                 "--persistent), skip, or same (the given flags)"),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", metavar="FORMAT", help="table (text), json, or nagios (an "
                                     "Icinga/Nagios plugin: 2 stuck guests, 1 risky/unknown/hosts not probed, 3 "
                                     "nothing checked or bad input), on stdout"),
    matrix: bool = typer.Option(False, "--matrix", help="list every pair in the text report, not only problems"),
    json_file: Optional[str] = typer.Option(None, "--json", metavar="FILE", help="also write the JSON report to this file"),
    html_file: Optional[str] = typer.Option(None, "--html", metavar="FILE", help="also write a self-contained HTML report"),
    prometheus: Optional[str] = typer.Option(None, "--prometheus", metavar="FILE", help="write node_exporter textfile metrics (atomically)"),
    db: Optional[str] = typer.Option(None, "--db", metavar="FILE", help="history database (default ~/.local/state/migcheck/audit.sqlite)"),
    no_db: bool = typer.Option(False, "--no-db", help="keep no history (and show no changes)"),
    keep_runs: int = typer.Option(60, "--keep-runs", metavar="N", help="runs of this inventory kept in the history"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="progress bar (default: when "
                                            "stderr is a terminal)"),
    allow_uri_commands: bool = typer.Option(False, "--allow-uri-commands", help="let the inventory's URIs run the "
                                            "programs they name (qemu+ext://, ?command=, ?netcat=, ?socket=)"),
) -> None:
    """Audit a fleet: every guest against every other host of its groups. Extra arguments are virsh migrate flags.

    Exit codes: 0 every guest can move somewhere and every host was probed; 1 some guest is stuck (no target);
    3 some host could not be probed (or a guest not checked); 4 some guest can only move with a risk; 2 usage.
    With --format nagios: 2 some guest is stuck; 1 a host not probed, a guest unknown or only risky; 3 nothing
    could be checked, an output could not be written, or bad input; 0 all is well.
    """
    from migcheck.audit.cli import AuditOptions, UsageError, run_audit
    from migcheck.audit.history import default_db_path

    opts = AuditOptions(inventory=inventory, flags=list(ctx.args), groups=group or None, jobs=jobs, timeout=timeout,
                        use_ssh=not no_ssh, ssh_config=ssh_config, inactive=inactive,
                        fmt={"json": "json", "nagios": "nagios"}.get(fmt.value, "text"), matrix=matrix, json_file=json_file,
                        html_file=html_file, prometheus_file=prometheus,
                        db=None if no_db else (db or str(default_db_path())), keep_runs=keep_runs, progress=progress,
                        allow_uri_commands=allow_uri_commands)
    if opts.fmt == "nagios":  # the plugin output in one piece, its state as the exit code
        import io

        from migcheck.console import plugin_answer

        out = io.StringIO()
        try:
            code = run_audit(opts, out, sys.stderr)
        except UsageError as exc:
            raise _fail(str(exc), ExitCode.USAGE)  # UNKNOWN, this line as its status line
        raise plugin_answer(out.getvalue(), code)
    try:
        code = run_audit(opts, sys.stdout, sys.stderr)
    except UsageError as exc:
        raise _fail(str(exc), ExitCode.USAGE)
    raise typer.Exit(code)


@app.command(cls=_Command)
def rules(
    fmt: Format = typer.Option(Format.table, "--format", "-f", metavar="FORMAT", help="table or json"),
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

        # "rule": the key a finding names its check by in the pair and audit reports (report.model.Finding)
        typer.echo(json.dumps([{"rule": c.id, "severity": c.severity.value, "also": [v.value for v in c.also], "title": c.title, "family": c.family,
                                "proven_by_lab": c.proven_by_lab} for c in checks], indent=2))
        return
    from migcheck.report.render import fitted_list, terminal_width

    typer.echo(fitted_list([[c.id, c.severity_label, c.title] for c in checks], ["check", "severity", "finds"],
                           terminal_width()))


@app.command(cls=_Command)
def explain(rule: str = typer.Argument(..., metavar="CHECK-ID", help="a check ID, as 'migcheck rules' lists them")) -> None:
    """Show a check's documentation."""
    from migcheck.checks.registry import NOT_CHECKS, all_checks, not_check_doc

    by_id = {c.id: c for c in all_checks()}
    chk = by_id.get(rule)
    if chk is None and rule in NOT_CHECKS:  # a finding of the probe or the engine, not of a check
        typer.echo(f"{rule} (unknown): {NOT_CHECKS[rule]}\n")
        typer.echo(not_check_doc(rule))
        return
    if chk is None:
        near = [i for i in [*by_id, *NOT_CHECKS] if rule.split(".")[-1] in i]
        raise _fail(f"no check '{rule}'" + (f"; did you mean {', '.join(near[:3])}?" if near else
                                            "; 'migcheck rules' lists them"), ExitCode.USAGE)
    typer.echo(f"{chk.id} ({chk.severity_label}): {chk.title}\n")
    typer.echo(chk.doc)


@app.command(cls=_Command)
def version() -> None:
    """Print migcheck's version."""
    from migcheck import __version__

    typer.echo(__version__)
