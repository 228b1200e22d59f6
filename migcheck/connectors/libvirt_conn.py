"""libvirt connections: read-only wherever the API allows, errors turned into one line."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libvirt

_quiet = False


def _libvirt():
    """The libvirt module, imported on first use: `migcheck SRC DST VM` opens its SSH
    connections first and libvirt's ~30 ms of import runs while the hosts answer."""
    global _quiet
    import libvirt

    if not _quiet:
        # libvirt prints every error to stderr by default; migcheck reports them itself.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _quiet = True
    return libvirt


class LibvirtError(Exception):
    """A libvirt call failed; the message names the host and the call."""


def open_readonly(uri: str) -> libvirt.virConnect:
    libvirt = _libvirt()
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(explain_connect_error(exc, uri)) from None
    if conn is None:  # pragma: no cover - old bindings
        raise LibvirtError("libvirt returned no connection")
    return conn


def open_readwrite(uri: str) -> libvirt.virConnect:
    """Only for queries libvirt refuses on read-only connections; migcheck never changes anything."""
    libvirt = _libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(explain_connect_error(exc, uri)) from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_BANNER = re.compile(r"@{5,}|\s{2,}")
MAX_LINE = 600


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """text as one printable line: control characters (CR, LF, ESC...) and runs of blanks become one space."""
    text = _BANNER.sub(" ", _CONTROL.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _host_key_error(text: str) -> str | None:
    """OpenSSH's host key refusals, in one sentence instead of its banner."""
    low = text.lower()
    m = re.search(r"host key for (\S+) has changed", text, re.I)
    if m or "remote host identification has changed" in low:
        host = m.group(1) if m else "the host"
        return (f"the SSH host key of {host} has CHANGED: refusing to connect, as OpenSSH does; if the change "
                f"is legitimate, remove the old key with: ssh-keygen -R {host}")
    m = re.search(r"no \S+ host key is known for (\S+)", text, re.I)
    if m or ("host key verification failed" in low and "known" in low):
        host = m.group(1) if m else "the host"
        return (f"the SSH host key of {host} is unknown: refusing to connect; verify the host and add its key "
                f"(ssh {host} once, or ssh-keyscan into known_hosts)")
    return None


_TRANSPORT_PORTS = {"ssh": 22, "libssh": 22, "libssh2": 22, "tls": 16514, "tcp": 16509}
_GENERIC = ("broken pipe", "end of file", "cannot recv data", "cannot write data")


def _tcp_diagnosis(uri: str) -> str:
    """When libvirt only says 'Broken pipe' (the ssh child died first), say what the network says."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    if not parts.hostname or transport not in _TRANSPORT_PORTS:
        return ""
    host, port = parts.hostname, parts.port or _TRANSPORT_PORTS[transport]
    if transport == "ssh":  # where the ssh child went: HostName and Port from ssh_config, as OpenSSH reads them
        try:
            from migcheck.connectors.ssh import load_ssh_config

            found = load_ssh_config().lookup(host)
            host, port = found.get("hostname", host), parts.port or int(found.get("port", port))
        except Exception:  # noqa: BLE001 - an unreadable ssh_config: diagnose the name as given
            pass
    try:
        with socket.create_connection((host, port), timeout=3):
            return ""
    except ConnectionRefusedError:
        return f"connection refused on port {port}: nothing listens there; is sshd (or libvirtd's port) running?"
    except socket.timeout:
        return f"no answer on port {port}"
    except OSError as exc:
        return f"port {port}: {exc.strerror or exc}"


def explain_connect_error(exc: libvirt.libvirtError, uri: str | None = None) -> str:
    raw = exc.get_error_message() or str(exc)
    host_key = _host_key_error(raw)
    if host_key:
        return f"libvirt over ssh: {host_key}"
    text = one_line(raw)
    low = text.lower()
    if "host key verification failed" in low:
        hint = "the host key is unknown or changed; verify it and fix known_hosts"
    elif "permission denied" in low and "publickey" in low:
        hint = "SSH authentication refused; load a key into the agent or set IdentityFile"
    elif "connection refused" in low:
        hint = "nothing listens there: is sshd (or libvirtd's TLS port) running?"
    elif "no such file or directory" in low and "sock" in low:
        hint = "libvirtd is not running on that host (its socket is missing)"
    elif "could not resolve" in low or "name or service not known" in low:
        hint = "the host name does not resolve"
    elif "timed out" in low:
        hint = "the host did not answer in time"
    elif uri and any(g in low for g in _GENERIC):
        hint = _tcp_diagnosis(uri)
    else:
        hint = ""
    return f"libvirt: {text}" + (f" ({hint})" if hint else "")


def error_text(exc: libvirt.libvirtError) -> str:
    return one_line(exc.get_error_message() or str(exc))
