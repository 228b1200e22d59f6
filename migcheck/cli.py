"""The ``migcheck`` command line.

``migcheck SRC DST VM [virsh migrate flags]`` is short for ``migcheck check ...``.
Exit codes: migcheck.report.exit_codes (what each means, as `migcheck check --help` lists them).
The commands only: their output streams and the ending of the process are in migcheck.console.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

from migcheck.console import (diverted_lines, echo, plugin_answer, plugin_requested, run_as_process, scrub_secrets,
                              silence_broken_pipe, start_plugin_mode, trace_if_asked)
from migcheck.report.exit_codes import ExitCode

SUBCOMMANDS = {"check", "migrate", "probe", "audit", "rules", "explain", "version"}


class Format(str, Enum):
    table = "table"
    json = "json"


class ReportFormat(str, Enum):
    """The formats of a check's and an audit's report: Format's, and the monitoring plugin's."""

    table = "table"
    json = "json"
    nagios = "nagios"


def _fail(message: str, code: ExitCode) -> SystemExit:
    """The one-line error and the exit to raise (as typer.Exit(code) would end the command)."""
    echo(f"migcheck: {message}", err=True)
    return SystemExit(int(code))


MAX_TIMEOUT = 24 * 3600.0


def ssh_config_problem(path: Optional[str]) -> Optional[str]:
    """Why the --ssh-config given cannot be used, or None: a typo must not pass for "no special config"."""
    if path is None:
        return None
    from migcheck.localfile import unreadable

    why = unreadable(path)
    return f"--ssh-config {path}: cannot read it: {why}" if why else None


def _options(timeout: float, no_ssh: bool, ssh_config: Optional[str], qmp: bool = False):
    from migcheck.probe.session import ProbeOptions

    if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan; inf overflowed the thread join
        raise _fail(f"--timeout {timeout:g}: give seconds, more than 0 and at most {MAX_TIMEOUT:g}", ExitCode.USAGE)
    problem = ssh_config_problem(ssh_config)
    if problem:
        raise _fail(problem, ExitCode.USAGE)
    return ProbeOptions(timeout=timeout, connect_timeout=min(timeout, 10.0), use_ssh=not no_ssh,
                        ssh_config=ssh_config, qmp=qmp, plan=_every_check_plan)


def _every_check_plan():
    """What the probe asks: every check's questions (imported by the probe's threads, after the handshakes)."""
    from migcheck.checks.registry import probe_plan

    return probe_plan()


def _emit(report, fmt: ReportFormat, verbose: bool, started: float | None = None) -> None:
    """The report on stdout; as a monitoring plugin, also the exit (raised) with its state."""
    if fmt == ReportFormat.nagios:
        from migcheck.report.nagios import pair_state, render_pair

        duration = time.monotonic() - started if started is not None else None
        raise plugin_answer(render_pair(report, duration, verbose, diverted_lines()), pair_state(report))
    from migcheck.report.render import render_json, render_table

    echo(render_json(report) if fmt == Format.json else render_table(report, verbose), nl=fmt == Format.json)


def _parse_flags_or_fail(args: list[str]):
    from migcheck.flags import FlagError, parse_flags

    try:
        return parse_flags(args)
    except FlagError as exc:
        raise _fail(f"{exc} (flags are spelled as for virsh migrate)", ExitCode.USAGE)


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


def _check_online(source, target, vm, flags, options, fmt: ReportFormat, verbose: bool, save: Optional[Path] = None,
                  started: float | None = None):
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
    from migcheck.flags import rejected_combinations

    if rejected_combinations(flags):  # blocked whatever the hosts hold: contact neither
        from migcheck.engine import refused_flags_report

        if save:
            echo(f"migcheck: nothing saved in {save}: the flags are refused before any host is probed", err=True)
        return refused_flags_report(src.spec, dst.spec, vm, flags), None, src, dst
    import dataclasses

    options = dataclasses.replace(options, migrateuri=flags.migrateuri,
                                  resolve_target=not (flags.offline or flags.tunnelled))
    migration_xml = None
    if flags.xml or flags.persistent_xml:  # read on this machine, as virsh reads them
        from migcheck.destxml import load_migration_xml

        migration_xml = load_migration_xml(flags)
        if migration_xml.domain is not None:
            options = dataclasses.replace(options, target_xml=migration_xml.xml.text)
    pending = start_probe_pair(src, dst, vm, options)
    _import_evaluation()  # while both hosts' handshakes run
    from migcheck.engine import evaluate, unknown_report

    trace("imports done, waiting for the probe")
    try:
        pair = pending.result()
    except ProbeError as exc:
        if fmt == ReportFormat.nagios:  # the error is the status line
            _emit(unknown_report(src.spec, dst.spec, vm, flags, str(exc)), fmt, verbose, started)
        echo(f"migcheck: {exc}", err=True)
        if fmt == Format.json:
            _emit(unknown_report(src.spec, dst.spec, vm, flags, str(exc)), fmt, verbose)
        raise SystemExit(int(ExitCode.UNKNOWN))
    if save:
        from migcheck.probe.snapshot import save_pair

        save_pair(pair.source, pair.target, vm, flags.as_args(), save)
    trace("probe done")
    report = evaluate(pair.source, pair.target, vm, flags, migration_xml=migration_xml)
    trace("evaluated")
    return report, pair, src, dst


def run_check(args: list[str], source, target, vm, fmt: ReportFormat = ReportFormat.table, verbose: bool = False,
              timeout: float = 30.0, no_ssh: bool = False, ssh_config: Optional[str] = None, qmp: bool = False,
              save: Optional[Path] = None, from_snapshot: Optional[list[Path]] = None) -> None:
    """`migcheck check` (commands.check and the plain-check path of main): exits with the verdict's code.

    args: the extra arguments, virsh migrate flags.
    """
    started = time.monotonic()
    if from_snapshot:
        # positional arguments are flags here: nothing names hosts in a replay
        flags = _parse_flags_or_fail([a for a in [source, target, vm] if a] + list(args))
        report = _replay(from_snapshot, flags)
    else:
        flags = _parse_flags_or_fail(list(args))
        report, *_ = _check_online(source, target, vm, flags, _options(timeout, no_ssh, ssh_config, qmp),
                                   fmt, verbose, save, started)
    _emit(report, fmt, verbose, started)
    trace_if_asked("report written")
    raise SystemExit(report.exit_code)


DEFAULT_MISSES = Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))) / "migcheck" / "misses"


def _replay(dirs: list[Path], flags):
    from migcheck.engine import evaluate
    from migcheck.flags import FlagError, parse_flags
    from migcheck.probe.snapshot import SnapshotError, load_host, load_meta, load_side

    try:
        if len(dirs) == 1:
            meta = load_meta(dirs[0])
            if meta.get("kind") != "pair":
                raise _fail(f"{dirs[0]} holds one host; give --from-snapshot twice (source, then target)",
                            ExitCode.USAGE)
            source, target = load_host(dirs[0] / "source"), load_host(dirs[0] / "target")
            if not flags.as_args():
                try:
                    flags = parse_flags(meta.get("flags") or [])
                except FlagError as exc:
                    raise SnapshotError(f"{dirs[0] / 'snapshot.json'}: flags: {exc}; give the flags on the "
                                        "command line instead") from None
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


# ---------------------------------------------------------------- the plain check, without typer
#
# `migcheck SRC DST VM [flags]` is nearly every run, and typer costs it ~0.3 s of CPU before the
# first packet: its import, and a pydantic type adapter built for each of check's parameters on
# every run. plain_check_args reads the plain forms of that command line exactly as typer reads
# them (click's parser: options anywhere, unknown options and extra words kept in order as the
# virsh flags); anything else (--help, --save, --from-snapshot, '--', short-option clusters, a
# value typer might read differently) goes to typer as before. tests/unit/test_startup.py
# compares the two parsers on many command lines. The answer is written with echo() above,
# so a plain check never loads typer at all (~0.1 s of CPU less while the hosts answer).

_CHECK_FLAGS = {"--verbose": "verbose", "-v": "verbose", "--no-ssh": "no_ssh", "--qmp": "qmp"}
_CHECK_VALUES = {"--format": "fmt", "-f": "fmt", "--timeout": "timeout", "--ssh-config": "ssh_config"}


def _plain_value(key: str, value: str) -> bool:
    """A value that typer would read as this function does (else typer reads it itself)."""
    if key == "fmt":
        return value in ("table", "json", "nagios")
    if key == "timeout":  # digits, or digits.digits: float() and pydantic agree on these
        whole, _, frac = value.partition(".")
        return 0 < len(value) <= 12 and value.isascii() and whole.isdigit() and (frac.isdigit() or "." not in value)
    return bool(value) and not value.startswith("-")


def plain_check_args(args: list[str]) -> dict | None:
    """run_check's keyword arguments for ``check SRC DST VM ...`` in its plain forms; None: let typer parse it."""
    if not args or args[0] != "check" or os.environ.get("_MIGCHECK_COMPLETE"):
        return None
    try:
        for arg in args:
            arg.encode("utf-8")  # undecodable bytes in argv: typer's own validation decides
    except UnicodeEncodeError:
        return None
    params: dict = {"fmt": "table", "verbose": False, "timeout": "30.0", "no_ssh": False, "ssh_config": None,
                    "qmp": False}
    words: list[str] = []  # positional words and unknown options, in order
    rest = args[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _CHECK_FLAGS and not eq:
            params[_CHECK_FLAGS[name]] = True
        elif name in _CHECK_VALUES:
            if not eq:
                if i >= len(rest):
                    return None
                value = rest[i]
                i += 1
            if not _plain_value(_CHECK_VALUES[name], value):
                return None
            params[_CHECK_VALUES[name]] = value
        elif arg.startswith("--") and name not in ("--", "--help", "--save", "--from-snapshot", *_CHECK_FLAGS):
            words.append(arg)  # an option check does not know: a virsh migrate flag
        else:
            return None
    if len(words) < 3:
        return None
    params.update(source=words[0], target=words[1], vm=words[2], args=words[3:], fmt=ReportFormat(params["fmt"]),
                  timeout=float(params["timeout"]))
    return params


def _run_plain_check(params: dict) -> None:
    """run_check(**params), ended as typer ends a command in standalone mode (typer.core._main)."""
    try:
        run_check(**params)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        silence_broken_pipe()
        sys.exit(1)
    except Exception as exc:
        import typer
        from typer import core

        rich = core.HAS_RICH and core.DEFAULT_MARKUP_MODE is not None
        if isinstance(exc, typer.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, EOFError):
            typer.echo(err=True)
            exc = typer.Abort()
        if isinstance(exc, typer.Abort):
            if rich:
                from typer import rich_utils

                rich_utils.rich_abort_error()
            else:
                typer.echo("Aborted!", err=True)
            sys.exit(1)
        if isinstance(exc, core._click.ClickException):
            echo(_click_error_line(exc), err=True)
            sys.exit(exc.exit_code)
        raise


def _click_error_line(exc) -> str:
    """typer's (click's) usage error in one line, naming the command and what to do, without its boxed help."""
    from migcheck.connectors.libvirt_conn import one_line

    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "migcheck"
    return f"migcheck: {one_line(exc.format_message())} (see: {where} -h)"


def _run_app(args: list[str]) -> None:
    """The typer application, ended as in standalone mode except for usage errors: one line, exit 2."""
    import typer
    from typer import core
    from typer.main import get_command

    from migcheck.commands import app

    try:
        code = get_command(app).main(args=args, prog_name="migcheck", standalone_mode=False)
    except core._click.exceptions.NoArgsIsHelpError as exc:  # 'migcheck' alone: its help, as typer shows it
        if core.HAS_RICH and core.DEFAULT_MARKUP_MODE is not None:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except core._click.ClickException as exc:
        echo(_click_error_line(exc), err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def __getattr__(name: str):
    """``migcheck.cli.app``: the typer application, loaded on first use (see plain_check_args)."""
    if name == "app":
        from migcheck.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _edits(a: str, b: str) -> int:
    """The optimal string alignment distance: insertions, deletions, substitutions, swaps of neighbours."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def mistyped_subcommand(word: str) -> str | None:
    """The subcommand ``word`` is a typo of (one or two edits, one for a word of four letters or fewer), or None.

    Only a word of letters can be one: a word with a digit, a '-' or anything a host spec holds (a dot,
    '@', ':', '/') is a host (aud-a is two edits from audit, and a host). A host whose name of letters
    is a typo of a subcommand is named after 'check': ``migcheck check probes DST VM``.
    """
    if len(word) > 12 or not (word.isascii() and word.isalpha()):
        return None
    lowered = word.lower()
    best = min(sorted(SUBCOMMANDS), key=lambda s: _edits(lowered, s))
    allowed = 1 if len(word) <= 4 else 2
    return best if _edits(lowered, best) <= allowed else None


def main(argv: list[str] | None = None) -> None:
    # pydantic scans every installed package's metadata for plugins on its first model (~10 ms);
    # migcheck uses none. Set it yourself to have yours loaded.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:
        if mistyped_subcommand(args[0]) is None:  # else 'migcheck rulse': _run_command_line says so
            args.insert(0, "check")
    # a monitoring plugin: stdout only, exit 0-3 and a status line whatever happens
    start_plugin_mode(plugin_requested(args))
    scrub_secrets(args)
    run_as_process(lambda: _run_command_line(args), console_script=argv is None)


def _run_command_line(args: list[str]) -> None:
    """A plain check without typer, anything else through the typer application."""
    if args and not args[0].startswith("-") and args[0] not in SUBCOMMANDS:  # main left a mistyped command
        from migcheck.connectors.libvirt_conn import one_line

        word = one_line(args[0])
        echo(f"migcheck: {word!r} is not a command; did you mean 'migcheck {mistyped_subcommand(args[0])}'? "
             f"(for a host of that name: migcheck check {word} DST VM)", err=True)
        sys.exit(int(ExitCode.USAGE))
    cluster = _short_option_cluster(args)
    if cluster is not None:
        from migcheck.connectors.libvirt_conn import one_line

        echo(f"migcheck: {one_line(cluster)!r}: not an option (the short options are -f, -v and -h; "
                   "host names cannot start with '-')", err=True)
        sys.exit(int(ExitCode.USAGE))
    if _help_among_operands(args):
        # `migcheck SRC DST "$VM"` with a guest named --help must not print the help and exit 0 ("ok")
        echo("migcheck: -h/--help given with hosts or a guest: for help run it alone; a guest whose name "
                   "starts with '-' goes after '--' (migcheck SRC DST -- NAME)", err=True)
        sys.exit(int(ExitCode.USAGE))
    plain = plain_check_args(args)
    if plain is not None:
        _run_plain_check(plain)
    else:
        _run_app(args)


if __name__ == "__main__":  # pragma: no cover
    main()
