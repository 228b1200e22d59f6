"""libvirt RPC over migcheck's own SSH connection: one handshake per host instead of three.

libvirt's qemu+ssh transport starts an ``ssh`` process (a full handshake) for
every connection, and migcheck needs two per host (read-only, and read-write
for the two queries libvirt refuses read-only).  Here each libvirt connection
is instead a channel on the already authenticated paramiko transport, running
``virt-ssh-helper`` (what libvirt itself runs remotely) and bridged to a local
Unix socket in a private directory that libvirt-python connects to.

Used only for plain ``qemu+ssh`` URIs; anything else, or any failure, falls
back to libvirt's own transport.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import tempfile
import threading
from urllib.parse import parse_qsl, urlsplit

import paramiko

_TUNNELABLE_PARAMS = {"no_tty"}


def remote_uri(uri: str) -> str | None:
    """The URI virt-ssh-helper should open on the host (qemu:///system), or None if not tunnelable."""
    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    if transport != "ssh" or driver != "qemu":
        return None
    if any(k not in _TUNNELABLE_PARAMS for k, _ in parse_qsl(parts.query)):
        return None  # keyfile=, socket=, proxy= ...: let libvirt handle what it was asked to
    path = parts.path or "/system"
    if path not in ("/system", "/session"):
        return None
    return f"{driver}://{path}"


class LibvirtTunnel:
    """A local Unix socket whose every connection becomes a virt-ssh-helper channel on ``transport``."""

    def __init__(self, transport: paramiko.Transport, remote: str, readonly: bool, timeout: float):
        self._transport = transport
        self._command = "virt-ssh-helper " + ("-r " if readonly else "") + shlex.quote(remote)
        self._timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="migcheck-")  # mode 0700: no other local user can connect
        self.path = os.path.join(self._dir, "libvirt.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(4)
        self._closed = False
        self._channels: list[paramiko.Channel] = []
        threading.Thread(target=self._accept, daemon=True, name="migcheck-tunnel").start()

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.path}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                local, _ = self._server.accept()
            except OSError:
                return
            try:
                chan = self._transport.open_session(timeout=self._timeout)
                chan.exec_command(self._command)
            except (paramiko.SSHException, OSError):
                local.close()
                continue
            self._channels.append(chan)
            threading.Thread(target=_pump, args=(local.recv, chan.sendall, local, chan), daemon=True).start()
            threading.Thread(target=_pump, args=(chan.recv, local.sendall, local, chan), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        for chan in self._channels:
            _close_quietly(chan)
        try:
            self._server.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def _pump(read, write, local: socket.socket, chan: paramiko.Channel) -> None:
    try:
        while True:
            data = read(65536)
            if not data:
                break
            write(data)
    except Exception:  # noqa: BLE001 - either side closing ends the pump; nothing to report from a thread
        pass
    finally:
        try:
            local.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        _close_quietly(chan)


def _close_quietly(chan: paramiko.Channel) -> None:
    """Close a channel whose transport may be gone already (the probe closes sessions as it ends):
    paramiko then raises EOFError from a daemon thread, which Python prints as a traceback."""
    try:
        chan.close()
    except (EOFError, OSError, paramiko.SSHException):
        pass
