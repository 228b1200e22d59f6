"""What lets `migcheck SRC DST VM` start its network work before its heavy imports (issue 7), kept true.

Speed itself is measured by `make bench`; these tests pin the properties the
speed rests on, each of which a harmless-looking import can undo.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcheck.connectors import ssh
from migcheck.flags import FlagError, parse_flags


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_connecting_needs_neither_pydantic_nor_the_checks() -> None:
    """probe.session and probe.pair load paramiko only: libvirt and the models load while hosts answer."""
    loaded = _modules_after("import migcheck.probe.pair, migcheck.flags, migcheck.connectors.hostspec")
    assert "paramiko" in loaded
    assert not {m for m in loaded if m in ("pydantic", "libvirt")
                or m.startswith(("pydantic.", "migcheck.checks", "migcheck.facts"))}


def test_the_first_libvirt_connection_silences_libvirts_stderr_printing(capfd) -> None:
    """libvirt prints every error on stderr unless told not to; the lazy import must still tell it."""
    from migcheck.connectors.libvirt_conn import LibvirtError, open_readonly

    with pytest.raises(LibvirtError):
        open_readonly("test:///no/such/file.xml")
    assert "libvirt:" not in capfd.readouterr().err


def test_the_console_module_loads_nothing_of_migcheck_or_its_libraries() -> None:
    """cli imports console before any host is contacted: standard library and exit codes only."""
    loaded = _modules_after("import migcheck.console")
    assert not {m for m in loaded if m.split(".")[0] in ("typer", "click", "pydantic", "paramiko", "libvirt")}
    assert {m for m in loaded if m.startswith("migcheck.")} <= {"migcheck.console", "migcheck.report",
                                                                 "migcheck.report.exit_codes"}


def test_paramiko_does_not_load_invoke_until_an_ssh_config_needs_it() -> None:
    loaded = _modules_after("import migcheck.connectors.ssh, paramiko.config")
    assert "invoke.context" not in loaded and "asyncio" not in loaded


def test_match_exec_in_ssh_config_still_works(tmp_path) -> None:
    """The deferred invoke is imported the moment a `Match exec` needs it (paramiko runs the command)."""
    conf = tmp_path / "config"
    conf.write_text(textwrap.dedent("""\
        Match exec "true"
            User from-match-exec
        Match exec "false"
            Port 2222
        """))
    code = ("import json, sys, migcheck.connectors.ssh as ssh\n"
            "print(json.dumps(ssh.load_ssh_config(sys.argv[1]).lookup('somehost')))")
    out = subprocess.run([sys.executable, "-c", code, str(conf)], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, check=True)  # invoke runs the commands and reads stdin
    found = json.loads(out.stdout)
    assert found.get("user") == "from-match-exec"
    assert "port" not in found


def test_ssh_sockets_send_and_acknowledge_small_packets_at_once() -> None:
    """TCP_NODELAY and TCP_QUICKACK: without them each channel open waited ~40 ms for a delayed ACK."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    try:
        transport = ssh._transport(client)
        sock = transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        peer.sendall(b"x")
        assert sock.recv(1) == b"x"  # the subclass re-arms quick ACKs on every read
        if hasattr(socket, "TCP_QUICKACK"):
            assert isinstance(sock, ssh._QuickAckSocket)
    finally:
        for s in (peer, server):
            s.close()
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - never started
            sock.close()


@pytest.mark.parametrize("args, expected", [
    (["--live", "--parallel-connections", "4"], ["--live", "--parallel", "--parallel-connections", "4"]),
    (["--copy-storage-all", "--dname=x"], ["--copy-storage-all", "--dname", "x"]),
    (["--copy-storage-all", "--migrate-disks", "vda,vdb"], ["--copy-storage-all", "--migrate-disks", "vda,vdb"]),
    ([], []),
])
def test_flags_round_trip(args, expected) -> None:
    assert parse_flags(args).as_args() == expected


def test_migrate_disks_names_the_copied_disks() -> None:
    f = parse_flags(["--copy-storage-all", "--migrate-disks", "vda, vdc"])
    assert f.copies_disk("vda") and f.copies_disk("vdc") and not f.copies_disk("vdb")
    assert parse_flags(["--copy-storage-all"]).copies_disk("vdb")
    assert not parse_flags(["--migrate-disks", "vda"]).copies_disk("vda")  # no copy without --copy-storage-*


def test_a_non_numeric_parallel_connections_is_a_usage_error() -> None:
    with pytest.raises(FlagError, match="needs a number"):
        parse_flags(["--parallel-connections", "four"])


# ---- the plain check's own parser (cli.plain_check_args) reads a command line exactly as typer does

TOKENS = ["src1", "dst1", "vm1", "a b", "é", "", "-", "--live", "--persistent", "--dname=x", "--dname", "-x",
          "--verbose", "-v", "--verbose=1", "-f", "--format", "--format=json", "--format=JSON", "json", "table",
          "nagios", "--format=nagios", "-fnagios",
          "--timeout", "--timeout=7", "5", "1.5", "05", "1e3", "inf", ".5", "--no-ssh", "--qmp", "--qmp=1",
          "--ssh-config", "--ssh-config=", "/tmp/cfg", "--", "--help", "-h", "--save", "--from-snapshot", "-vf",
          "--verb", "--no-verbose"]


def _typer_reading(args: list[str]) -> dict | None:
    """What typer hands to `check` for this command line (parameters and extra args); None if it refuses it."""
    from typer.main import get_command

    from migcheck.commands import app

    group = get_command(app)
    try:
        ctx = group.make_context("migcheck", list(args))
        name, cmd, rest = group.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        sub = cmd.make_context(name, rest, parent=ctx)
    except Exception:  # noqa: BLE001 - usage errors, --help's Exit
        return None
    params = {**sub.params, "args": list(sub.args)}
    assert params.pop("save") is None and not params.pop("from_snapshot")
    return params


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=9))
def test_the_plain_check_parser_agrees_with_typer(words) -> None:
    from migcheck.cli import plain_check_args

    args = ["check", *words]
    plain = plain_check_args(args)
    if plain is not None:
        assert plain == _typer_reading(args), args


@pytest.mark.parametrize("args", [
    ["src1", "dst1", "vm1"], ["src1", "dst1", "vm1", "--live"], ["src1", "dst1", "vm1", "--live", "-f", "json"],
    ["src1", "dst1", "vm1", "--live", "--copy-storage-all", "--format=json", "-v", "--timeout", "5"],
    ["-v", "src1", "dst1", "vm1", "--live", "--persistent", "--dname=x", "--no-ssh", "--qmp", "--ssh-config", "/c"],
    ["src1", "dst1", "--live", "vm1"],  # typer reads '--live' as the guest, and so does the plain parser
])
def test_plain_check_command_lines_skip_typer(args) -> None:
    from migcheck.cli import plain_check_args

    plain = plain_check_args(["check", *args])
    assert plain is not None and plain == _typer_reading(["check", *args])


def test_a_plain_check_contacts_the_hosts_before_importing_typer_or_pydantic() -> None:
    code = textwrap.dedent("""
        import os, sys
        import migcheck.probe.pair as pair

        def started(*args, **kwargs):  # the probe's threads would start here
            print(sorted(m for m in ("typer", "pydantic", "migcheck.commands") if m in sys.modules))
            sys.stdout.flush()
            os._exit(0)

        pair.start_probe_pair = started
        from migcheck.cli import main
        main(["src1", "dst1", "vm1", "--live", "--format", "json"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


class _Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("text", ["verdict: OK", "a\x1b[31mred\x1b[0m guest \x1b]0;title\x07 é ✓", "", "two\nlines"])
@pytest.mark.parametrize("nl", [True, False])
@pytest.mark.parametrize("stream_type", [io.TextIOWrapper, _Terminal])
def test_cli_echo_writes_what_typer_echo_writes(monkeypatch, text, nl, stream_type) -> None:
    """console.echo stands in for typer.echo on a plain check: the same bytes, ANSI codes removed unless on a terminal."""
    import typer

    from migcheck import console

    def written(fn, err: bool) -> bytes:
        stream = stream_type(io.BytesIO(), encoding="utf-8", errors="strict")
        monkeypatch.setattr(sys, "stderr" if err else "stdout", stream)
        fn(text, nl=nl, err=err)
        monkeypatch.undo()
        return stream.buffer.getvalue()

    for err in (False, True):
        assert written(console.echo, err) == written(typer.echo, err)


def test_a_plain_check_never_loads_typer() -> None:
    """Both hosts refuse the connection: the one-line error, the JSON report and exit 3, all without typer."""
    code = textwrap.dedent("""
        import sys
        from migcheck.cli import main

        uri = "qemu+ssh://root@127.0.0.1:1/system"  # nothing listens on port 1
        try:
            main([uri, uri, "vm1", "--live", "--format", "json"])
        except SystemExit as exc:
            print("exit", exc.code, "typer" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.rstrip().endswith("exit 3 False"), out.stdout + out.stderr
    assert '"verdict": "unknown"' in out.stdout and "Connection refused" in out.stderr
