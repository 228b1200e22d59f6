"""The process around a command: its output streams, and how it ends.

cli.py holds the commands; this module writes their output (echo, with secrets scrubbed from
both streams) and ends the process (a probe thread stuck in libvirt or ssh must not hold it
open, nor a migcheck bug pass for a verdict). `migcheck SRC DST VM` imports it before the SSH
handshakes start: standard library only at import (tests/unit/test_startup.py).
"""

from __future__ import annotations

import codecs
import io
import os
import re
import sys
from typing import Callable

from migcheck.report.exit_codes import ExitCode

_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")  # the ANSI codes click.echo removes


class _Plugin:
    """--format nagios: the process is a monitoring plugin (see start_plugin_mode)."""

    on = False
    answered = False  # the plugin output (status line first) has been written
    diverted: list[str] = []  # what would have gone to stderr


def start_plugin_mode(on: bool = True) -> None:
    """From now on nothing goes to stderr (Icinga 2 mixes it into the plugin output, before the
    status line): echo(err=True) keeps the lines for the plugin output to show; and the process
    ends with 0-3 and a status line even when the command could not answer (see run_as_process)."""
    _Plugin.on, _Plugin.answered, _Plugin.diverted = on, False, []


def diverted_lines() -> list[str]:
    """The stderr lines kept back so far, in plugin mode."""
    return list(_Plugin.diverted)


def plugin_answer(output: str, state: int) -> SystemExit:
    """Write the plugin output and return the exit to raise with its state (0-3)."""
    if state not in (0, 1, 2, 3):
        raise ValueError(f"plugin state {state!r}: must be 0, 1, 2 or 3")
    echo(output, nl=False)
    _Plugin.answered = True
    return SystemExit(state)


def plugin_requested(args: list[str]) -> bool:
    """`--format nagios` (-f nagios, --format=nagios, -fnagios) on a check or audit command line, before '--'."""
    if not args or args[0] not in ("check", "audit"):
        return False
    fmt = None
    words = args[: args.index("--")] if "--" in args else args
    for i, arg in enumerate(words):
        if arg in ("--format", "-f") and i + 1 < len(words):
            fmt = words[i + 1]
        elif arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg.startswith("-f") and not arg.startswith("--") and len(arg) > 2:
            fmt = arg[2:]
    return fmt == "nagios"


def _plugin_unanswered(code) -> int:
    """The command ended without its plugin output (a usage error, an internal error, --help):
    UNKNOWN, with the first line it would have printed on stderr as the status line."""
    if _Plugin.answered:
        return code if code in (0, 1, 2, 3) else int(ExitCode.UNKNOWN)
    lines = [line for line in _Plugin.diverted if line.strip()]
    if lines or code not in (0, None):
        from migcheck.report.nagios import unknown_output

        first = lines[0] if lines else f"migcheck ended with exit code {code} and no answer"
        sys.stdout.write(unknown_output(first, lines[1:]))
        sys.stdout.flush()
        _Plugin.answered = True
    return int(ExitCode.UNKNOWN)


def echo(message: str = "", err: bool = False, nl: bool = True) -> None:
    """typer.echo (click.echo) without importing typer, for the streams a command line has.

    On a text stream with UTF-8 encoding click writes the text as given, removes ANSI codes
    unless the stream is a terminal, and flushes: so does this. Any other stream goes to
    typer.echo itself (tests/unit/test_startup.py compares the two). In plugin mode a line
    for stderr is kept for the plugin output instead.
    """
    if err and _Plugin.on:
        _Plugin.diverted += [line for line in _ANSI.sub("", message).splitlines() if line.strip()]
        return
    stream = sys.stderr if err else sys.stdout
    encoding = getattr(stream, "encoding", None)
    if not (isinstance(stream, (io.TextIOWrapper, _Scrubbing)) and encoding and getattr(stream, "errors", None)
            and codecs.lookup(encoding).name == "utf-8"):
        import typer

        typer.echo(message, err=err, nl=nl)
        return
    text = message + "\n" if nl else message
    try:
        tty = stream.isatty()
    except Exception:  # noqa: BLE001 - as click: no terminal
        tty = False
    stream.write(text if tty else _ANSI.sub("", text))
    stream.flush()


def trace_if_asked(what: str) -> None:
    """A MIGCHECK_TRACE=1 timing line (probe.session.trace), loaded only when asked for."""
    if os.environ.get("MIGCHECK_TRACE") == "1":
        from migcheck.probe.session import trace

        trace(what)


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
        trace_if_asked("exit")
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


def scrub_secrets(args: list[str]) -> None:
    """Wrap stdout and stderr so that no password or secret URI parameter of a host argument gets through."""
    from migcheck.connectors.hostspec import secrets_in

    secrets = tuple(sorted({s for a in args for s in secrets_in(a)}, key=len, reverse=True))
    if secrets:
        sys.stdout, sys.stderr = _Scrubbing(sys.stdout, secrets), _Scrubbing(sys.stderr, secrets)


def silence_broken_pipe() -> None:
    """After EPIPE (the reader of our output went away): flush no more, as click's standalone mode does."""
    from typer._click.utils import PacifyFlushWrapper

    sys.stdout, sys.stderr = PacifyFlushWrapper(sys.stdout), PacifyFlushWrapper(sys.stderr)


def run_as_process(command: Callable[[], None], console_script: bool) -> None:
    """Run a command line and end the process as migcheck ends: its exit code, never a traceback.

    console_script: the installed `migcheck`, not a test calling main() in-process; only then may
    lingering probe threads be cut short with os._exit."""
    try:
        command()
    except SystemExit as exc:
        if _Plugin.on:  # 0-3 and a status line, whatever ended the command
            exc = SystemExit(_plugin_unanswered(exc.code))
        if console_script:
            _exit_now_if_threads_linger(exc.code)
        raise exc from None
    except KeyboardInterrupt:
        echo("migcheck: interrupted", err=True)
        if _Plugin.on:
            _plugin_unanswered(None)
        sys.stdout.flush()
        os._exit(int(ExitCode.UNKNOWN))
    except Exception as exc:  # a migcheck bug must not look like a verdict, nor print a traceback
        echo(f"migcheck: internal error: {type(exc).__name__}: {exc} (please report it)", err=True)
        if _Plugin.on:
            _plugin_unanswered(None)
        sys.stdout.flush()
        os._exit(int(ExitCode.UNKNOWN))
    finally:
        _Plugin.on = False  # main() called again in the same process (tests) starts afresh
