"""SSH to a hypervisor with paramiko, as strictly as OpenSSH would.

Honours ``~/.ssh/config`` (Host, HostName, User, Port, IdentityFile,
IdentitiesOnly, UserKnownHostsFile, ConnectTimeout, and Include, which
paramiko's own parser ignores), the SSH agent, and known_hosts.  Unknown and
changed host keys are refused.  Every step has a timeout.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import socket
import sys
import types
from dataclasses import dataclass

from migcheck.localfile import read_text


class _DeferredModule(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it.

    (importlib's LazyLoader does not help here: Python 3.11's ``import`` statement
    reads ``__spec__`` of a module already in sys.modules, which loads it.)
    """

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _defer_invoke_import() -> None:
    """paramiko imports ``invoke`` (35 ms: asyncio, unittest, yaml) for ``Match exec`` alone.

    With a stand-in, invoke is loaded only if an ssh_config really uses
    ``Match exec``; every migcheck run starts that much sooner.
    """
    if "invoke" not in sys.modules and importlib.util.find_spec("invoke") is not None:
        sys.modules["invoke"] = _DeferredModule("invoke")


_defer_invoke_import()
import paramiko  # noqa: E402 - after the line above, on purpose

from migcheck.connectors.files import SftpFiles
from migcheck.connectors.hostspec import SshTarget

# paramiko logs transport failures ("Exception (client): Error reading SSH protocol banner")
# and, with no handler configured, Python prints them on stderr: migcheck reports them itself,
# in its one line per host.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class SshError(Exception):
    """Could not reach the host over SSH; the message says why and what to do.

    ``unreachable``: the network said no (refused, no route, no answer), so
    trying another SSH client would only wait again.
    """

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


MAX_CONFIG_BYTES = 1024 * 1024


def _expand_includes(path: str, depth: int = 0) -> str:
    """The config text with ``Include`` lines replaced by the files they name."""
    if depth > 8:
        return ""
    try:
        lines = read_text(path, MAX_CONFIG_BYTES, errors="replace").splitlines()
    except OSError:  # as OpenSSH: an Include naming nothing readable adds nothing
        return ""
    out = []
    base = os.path.expanduser("~/.ssh")
    for line in lines:
        words = line.strip().split()
        if words and words[0].lower() == "include":
            for pattern in words[1:]:
                if pattern.startswith("#"):
                    break
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base, pattern)
                for inc in sorted(glob.glob(pattern)):
                    out.append(_expand_includes(inc, depth + 1))
        else:
            out.append(line)
    return "\n".join(out)


def load_ssh_config(path: str | None = None) -> paramiko.SSHConfig:
    path = path or os.path.expanduser("~/.ssh/config")
    return paramiko.SSHConfig.from_text(_expand_includes(path))


def uses_proxy(host: str, config_path: str | None = None) -> bool:
    """ProxyJump/ProxyCommand in ssh_config: reachable only the way OpenSSH goes, not directly."""
    hc = load_ssh_config(config_path).lookup(host)
    return bool(hc.get("proxyjump") or hc.get("proxycommand"))


@dataclass
class SshOptions:
    timeout: float = 10.0
    config_path: str | None = None


def _known_hosts_files(hc: dict) -> list[str]:
    files = []
    for entry in hc.get("userknownhostsfile", "").split() or ["~/.ssh/known_hosts"]:
        files.append(os.path.expanduser(entry))
    files.append("/etc/ssh/ssh_known_hosts")
    return [f for f in files if os.path.exists(f)]


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges every segment at once (TCP_QUICKACK, re-armed on each read).

    sshd does not set TCP_NODELAY on non-interactive sessions, so after a small
    packet it waits for our ACK before sending the next one, and Linux delays
    that ACK by up to 40 ms: the first channel of a connection then took 48 ms
    to open instead of 6 (measured in the lab).
    """

    def recv(self, bufsize: int, *flags: int) -> bytes:
        try:
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass
        return super().recv(bufsize, *flags)


def _transport(sock: socket.socket, **kwargs) -> paramiko.Transport:
    """paramiko's transport on a socket tuned for request/response traffic (few small packets)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # our side of the same 40 ms wait
        if hasattr(socket, "TCP_QUICKACK"):
            sock = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    return paramiko.Transport(sock, **kwargs)


class SshConnection:
    """One authenticated SSH connection to a host, reused for every file read."""

    def __init__(self, target: SshTarget, options: SshOptions):
        self.target = target
        self.options = options
        self.client: paramiko.SSHClient | None = None
        self._files: SftpFiles | None = None

    def connect(self) -> "SshConnection":
        t = self.target
        hc = load_ssh_config(self.options.config_path).lookup(t.host)
        hostname = hc.get("hostname", t.host)
        port = t.port or int(hc.get("port", 22))
        user = t.user or hc.get("user") or "root"
        timeout = min(float(hc.get("connecttimeout", self.options.timeout)), self.options.timeout)
        client = paramiko.SSHClient()
        for known in _known_hosts_files(hc):
            try:
                client.load_system_host_keys(known)
            except (OSError, paramiko.SSHException):
                continue
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        keys = [os.path.expanduser(k) for k in hc.get("identityfile", [])]
        keys = [k for k in keys if os.path.exists(k)]
        identities_only = hc.get("identitiesonly", "no").lower() == "yes"
        where = f"{user}@{t.host}" + (f" ({hostname}:{port})" if hostname != t.host or port != 22 else "")
        try:
            client.connect(
                hostname, port=port, username=user, key_filename=keys or None,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout,
                allow_agent=not identities_only, look_for_keys=not (identities_only and keys),
                transport_factory=_transport,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise SshError(f"{where}: the host key has CHANGED (expected {exc.expected_key.get_name()} "
                           f"{exc.expected_key.get_base64()[:16]}...): refusing to connect, as OpenSSH does; "
                           "if the change is legitimate, remove the old key with ssh-keygen -R") from None
        except paramiko.AuthenticationException:
            client.close()
            raise SshError(f"{where}: authentication refused; load a key into the agent or set IdentityFile "
                           "in ~/.ssh/config") from None
        except paramiko.SSHException as exc:
            client.close()
            text = str(exc)
            if "not found in known_hosts" in text:
                raise SshError(f"{where}: unknown host key, refusing to connect; verify the host and add its key "
                               f"with: ssh {user}@{t.host} (or ssh-keyscan into known_hosts)") from None
            raise SshError(f"{where}: SSH failed: {text or type(exc).__name__} (timeout {timeout:g}s)") from None
        except socket.timeout:
            client.close()
            raise SshError(f"{where}: no answer within {timeout:g}s", unreachable=True) from None
        except OSError as exc:
            client.close()
            causes = getattr(exc, "errors", None) or {}  # paramiko's NoValidConnectionsError wraps the OSErrors
            why = "; ".join(sorted({(e.strerror or str(e)) for e in causes.values()})) or exc.strerror or str(exc)
            raise SshError(f"{where}: cannot connect: {why}", unreachable=True) from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(max(1, int(timeout)))
        self.client = client
        return self

    @property
    def files(self) -> SftpFiles:
        if self._files is None:
            if self.client is None:
                raise SshError(f"{self.target.host}: not connected")
            try:
                self._files = SftpFiles(self.client.open_sftp(), self.options.timeout)
            except (paramiko.SSHException, OSError) as exc:
                raise SshError(f"{self.target.host}: the SFTP subsystem is not available ({exc}); "
                               "enable 'Subsystem sftp' in sshd_config") from None
        return self._files

    def run(self, argv: list[str], timeout: float, limit: int = 64 * 1024) -> tuple[int, str]:
        """Run one read-only command on the host: (exit status, stdout, at most ``limit`` bytes).

        SSH carries a command line, which the remote login shell splits: every word is quoted
        here, so no name reaches that shell as anything but one argument. The caller passes
        argv of fixed programs and validated names only; the whole run is bounded by ``timeout``.
        """
        import shlex
        import time

        if self.client is None:
            raise SshError(f"{self.target.host}: not connected")
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise SshError(f"{self.target.host}: the SSH connection is closed")
        chan = transport.open_session(timeout=timeout)
        try:
            chan.settimeout(timeout)
            chan.exec_command(" ".join(shlex.quote(a) for a in argv))
            chan.shutdown_write()
            end = time.monotonic() + timeout
            out = b""
            while len(out) <= limit:
                chunk = chan.recv(32768)
                if not chunk:
                    break
                out += chunk
                if time.monotonic() > end:
                    raise SshError(f"{self.target.host}: {argv[0]} gave no complete answer within {timeout:g}s")
            if len(out) > limit:
                raise SshError(f"{self.target.host}: {argv[0]} printed more than {limit} bytes")
            if not chan.status_event.wait(max(0.0, end - time.monotonic())):
                raise SshError(f"{self.target.host}: {argv[0]} did not exit within {timeout:g}s")
            return chan.recv_exit_status(), out.decode("utf-8", "replace")
        except socket.timeout:
            raise SshError(f"{self.target.host}: {argv[0]} gave no answer within {timeout:g}s") from None
        finally:
            chan.close()

    def close(self) -> None:
        try:
            if self._files is not None:
                self._files.close()
        except Exception:
            pass
        if self.client is not None:
            self.client.close()
