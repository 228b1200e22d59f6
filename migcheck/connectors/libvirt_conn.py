"""libvirt connections: read-only wherever the API allows, errors turned into one line."""

from __future__ import annotations

import libvirt

# libvirt prints every error to stderr by default; migcheck reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class LibvirtError(Exception):
    """A libvirt call failed; the message names the host and the call."""


def open_readonly(uri: str) -> libvirt.virConnect:
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(explain_connect_error(exc)) from None
    if conn is None:  # pragma: no cover - old bindings
        raise LibvirtError("libvirt returned no connection")
    return conn


def open_readwrite(uri: str) -> libvirt.virConnect:
    """Only for queries libvirt refuses on read-only connections; migcheck never changes anything."""
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtError(explain_connect_error(exc)) from None


def explain_connect_error(exc: libvirt.libvirtError) -> str:
    text = (exc.get_error_message() or str(exc)).strip().replace("\n", " ")
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
    else:
        hint = ""
    return f"libvirt: {text}" + (f" ({hint})" if hint else "")


def error_text(exc: libvirt.libvirtError) -> str:
    return (exc.get_error_message() or str(exc)).strip().replace("\n", " ")
