"""What lets `migcheck SRC DST VM` start its network work before its heavy imports (issue 7), kept true.

Speed itself is measured by `make bench`; these tests pin the properties the
speed rests on, each of which a harmless-looking import can undo.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

from migcheck.connectors import ssh
from migcheck.flags import FlagError, parse_flags


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_connecting_needs_neither_pydantic_nor_the_checks() -> None:
    """probe.session and probe.pair load paramiko and libvirt only: the models load while hosts answer."""
    loaded = _modules_after("import migcheck.probe.pair, migcheck.flags, migcheck.connectors.hostspec")
    assert "paramiko" in loaded and "libvirt" in loaded
    assert not {m for m in loaded if m == "pydantic" or m.startswith(("pydantic.", "migcheck.checks", "migcheck.facts"))}


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
