"""Turn a host argument (``h``, ``user@h`` or a libvirt URI) into where to connect.

Names are validated here, once, so that nothing later can be tricked into
treating a host name as an option (``-oProxyCommand=...``) or a shell word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,251}[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
# URI query parameters that may carry secrets or local paths: never shown.
_SECRET_PARAMS = {"password", "passphrase", "keyfile", "pkipath", "known_hosts", "command", "proxy", "netcat"}


class HostSpecError(ValueError):
    pass


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HostTarget:
    spec: str  # a display form, with secrets removed
    uri: str  # the libvirt URI to open
    ssh: SshTarget | None  # where the SSH connector goes; None: a local URI, read local files
    secrets: tuple[str, ...] = ()  # password and secret URI parameter values: never shown

    @property
    def local(self) -> bool:
        return self.ssh is None

    def scrub(self, text: str) -> str:
        """text with this host argument's secrets replaced by ***."""
        return scrub(text, self.secrets)


def _check_host(host: str, spec: str) -> str:
    if not host or not _HOSTNAME.match(host):
        raise HostSpecError(f"'{redact(spec)}': not a valid host name or address")
    return host


def _port(parts: SplitResult, spec: str) -> int | None:
    """The URI's port, or HostSpecError: urlsplit raises a bare ValueError for ':99999' or ':-1'."""
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port <= 65535:
        written = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")[2]
        raise HostSpecError(f"'{redact(spec)}': port {written!r} is not a port number; give one from 1 to 65535")
    return port


def _split(spec: str) -> SplitResult:
    """urlsplit, or the same split done by hand where urlsplit gives up ('a://[b': "Invalid IPv6 URL").

    Redacting and finding secrets must work on any argument: they run before it is validated.
    """
    try:
        return urlsplit(spec)
    except ValueError:
        scheme, _, rest = spec.partition("://")
        rest, _, fragment = rest.partition("#")
        rest, _, query = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        return SplitResult(scheme, netloc, slash + path, query, fragment)


def redact(spec: str) -> str:
    """The host argument without passwords or URI parameters that could hold secrets."""
    if "://" not in spec:
        return spec
    parts = _split(spec)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}"
    query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)], safe="*/")
    # built by hand: urlunsplit would turn qemu:///system (empty host) into qemu:/system
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def secrets_in(spec: str) -> tuple[str, ...]:
    """What of a host argument must never be shown: its password and secret URI parameter values.

    Both as written and decoded: libvirt and ssh echo them either way in their errors
    (ssh gets libvirt's "user:password" as its login name).
    """
    if "://" not in spec:
        return ()
    parts = _split(spec.strip())
    out: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            pw = userinfo.split(":", 1)[1]
            out += [pw, unquote(pw)]
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if unquote(key).lower() in _SECRET_PARAMS and value:
            out += [value, unquote(value), unquote(value.replace("+", " "))]
    return tuple(sorted({s for s in out if s}, key=len, reverse=True))


# What in a libvirt URI has a program run: the ext transport runs command= on this machine; ssh's
# command= replaces the ssh program here; netcat= and socket= go into the shell line ssh runs there.
_PROGRAM_PARAMS = {"command": "names the program libvirt runs on this machine (instead of ssh)",
                   "netcat": "names the program run on the host, in the shell command ssh sends",
                   "socket": "is written into the shell command ssh runs on the host"}


def runs_programs(spec: str) -> str | None:
    """Why opening this host argument would run a program it names (one line), or None."""
    if "://" not in spec:
        return None
    parts = _split(spec.strip())
    if parts.scheme.partition("+")[2].lower() == "ext":
        return "the ext transport runs the program named by command= on this machine"
    for item in parts.query.split("&"):
        key = unquote(item.partition("=")[0]).strip().lower()
        if key in _PROGRAM_PARAMS:
            return f"{key}= {_PROGRAM_PARAMS[key]}"
    return None


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Replace every secret in text by ***.

    Secrets shorter than 4 characters are replaced only where they follow "user:"
    in "user:secret@", so that a one-letter password does not mangle every message.
    """
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
        else:
            text = re.sub(r"(?<=:)" + re.escape(secret) + r"(?=@)", "***", text)
    return text


def parse_host(spec: str, default_user: str = "root") -> HostTarget:
    target = _parse_host(spec, default_user)
    secrets = secrets_in(spec)
    return HostTarget(spec=scrub(target.spec, secrets), uri=target.uri, ssh=target.ssh, secrets=secrets) \
        if secrets else target


def _parse_host(spec: str, default_user: str = "root") -> HostTarget:
    spec = spec.strip()
    if not spec:
        raise HostSpecError("empty host argument")
    if "\n" in spec or "\0" in spec:
        raise HostSpecError("host argument contains a newline or NUL")
    if "://" not in spec:
        user, at, host = spec.rpartition("@")
        user = user if at else default_user
        if not _USER.match(user):
            raise HostSpecError(f"'{spec}': not a valid user name")
        host = _check_host(host, spec)
        uri = f"qemu+ssh://{user}@{host}/system?no_tty=1"
        return HostTarget(spec=spec, uri=uri, ssh=SshTarget(host=host, user=user))
    try:
        parts = urlsplit(spec)
    except ValueError as exc:  # "Invalid IPv6 URL": a '[' without its ']'
        raise HostSpecError(f"'{redact(spec)}': not a libvirt URI ({exc})") from None
    scheme = parts.scheme
    driver, _, transport = scheme.partition("+")
    if not driver:
        raise HostSpecError(f"'{redact(spec)}': not a libvirt URI")
    host = parts.hostname
    if not host:  # qemu:///system, qemu+unix:///system: this machine
        if transport not in ("", "unix"):
            raise HostSpecError(f"'{redact(spec)}': transport {transport} needs a host name")
        return HostTarget(spec=redact(spec), uri=spec, ssh=None)
    _check_host(host if ":" not in host else f"[{host}]", spec)
    port = _port(parts, spec)
    user = parts.username
    if user is not None and not _USER.match(user):
        raise HostSpecError(f"'{redact(spec)}': not a valid user name")
    uri = spec
    if transport in ("ssh", "libssh", "libssh2"):
        params = dict(parse_qsl(parts.query))
        if "no_tty" not in params and transport == "ssh":
            # never let ssh prompt for a password on a terminal: fail fast instead
            uri = urlunsplit((parts.scheme, parts.netloc, parts.path or "/system",
                              parts.query + ("&" if parts.query else "") + "no_tty=1", ""))
        ssh = SshTarget(host=host, user=user or default_user, port=port)
    else:  # tls, tcp: reach the same host over SSH for the facts libvirt does not expose
        ssh = SshTarget(host=host, user=default_user)
    return HostTarget(spec=redact(spec), uri=uri, ssh=ssh)
