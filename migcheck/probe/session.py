"""The connections to one host: SSH (paramiko), libvirt read-only and read-write, SFTP.

Kept apart from :mod:`migcheck.probe.gather` so that opening them needs only
paramiko (libvirt is imported by the first libvirt connection, which follows
the SSH one): ``migcheck SRC DST VM`` starts both hosts' handshakes first and
imports libvirt, the fact models and the checks while they run
(:mod:`migcheck.probe.pair`).

Also here: the daemon-thread worker every host probe runs in, with its
deadline and its one-line failure.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from migcheck.connectors.files import HostFiles, LocalFiles
from migcheck.connectors.hostspec import HostTarget
from migcheck.connectors.libvirt_conn import LibvirtError, one_line, open_readonly, open_readwrite
from migcheck.connectors.ssh import SshConnection, SshError, SshOptions, uses_proxy
from migcheck.connectors.tunnel import LibvirtTunnel, remote_uri

if TYPE_CHECKING:
    import libvirt  # imported by the first connection (connectors.libvirt_conn), after SSH's

    from migcheck.probe.plan import ProbePlan


class ProbeError(Exception):
    """The host could not be probed at all (unreachable, VM not found, timeout)."""

    def __init__(self, host: str, message: str):
        message = one_line(message)  # a guest name or an ssh banner must not break the one line
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message


@dataclass
class ProbeOptions:
    timeout: float = 30.0  # the whole probe of one host
    connect_timeout: float = 10.0
    use_ssh: bool = True
    ssh_config: str | None = None
    qmp: bool = False  # ask the running QEMU (query-migrate); taints the guest "custom-monitor"
    # The migration's --migrateuri, --tunnelled and --offline: the source is asked to resolve the name its
    # QEMU will connect to (the --migrateuri host, or the target's migration_host or hostname)
    migrateuri: str | None = None
    resolve_target: bool = True
    # the --xml definition (text, parsed on this machine already): the target's paths and bridges are its
    target_xml: str | None = None
    # libvirt over migcheck's own SSH connection (connectors/tunnel.py); MIGCHECK_NO_TUNNEL=1 for A/B benchmarks
    tunnel: bool = field(default_factory=lambda: os.environ.get("MIGCHECK_NO_TUNNEL") != "1")
    # what to ask the hosts for the guest, from the checks' declarations (probe.plan): a function giving the
    # plan, called by the probe's threads once their handshakes are under way (it imports the checks)
    plan: Callable[[], ProbePlan] | None = None


@dataclass
class HostSession:
    """The open connections to one host."""

    target: HostTarget
    options: ProbeOptions
    conn: libvirt.virConnect | None = None
    conn_rw: libvirt.virConnect | None = None
    rw_error: str | None = None
    ssh: SshConnection | None = None
    ssh_error: str | None = None
    ssh_unreachable: bool = False
    _local_files: LocalFiles = field(default_factory=LocalFiles)
    _tunnels: list[LibvirtTunnel] = field(default_factory=list)

    def open(self) -> "HostSession":
        """Open the SSH connection and the read-only and read-write libvirt connections.

        For plain qemu+ssh URIs, SSH (paramiko) comes first and both libvirt
        connections run through it (connectors/tunnel.py): one handshake per
        host.  Otherwise, or if that fails, libvirt uses its own transport and
        the three connections are opened in parallel.

        The read-write connection is used only for the queries libvirt refuses
        on a read-only one (getDomainCapabilities, compareHypervisorCPU, and the
        opt-in QEMU monitor question of --qmp); none changes anything on the host.
        """
        ssh_wanted = self.options.use_ssh and self.target.ssh is not None
        if not self.options.use_ssh:
            self.ssh_error = "SSH disabled (--no-ssh)"
        remote = None
        if ssh_wanted and self.options.tunnel and not uses_proxy(self.target.ssh.host, self.options.ssh_config):
            remote = remote_uri(self.target.uri)
        if remote is not None:
            stage("opening the SSH connection")
            self._open_ssh()
            if self.ssh is not None and self._open_tunnelled(remote):
                stage("gathering facts")
                return self
            if self.ssh_unreachable:  # libvirt's own ssh would only wait for the same silence
                raise ProbeError(self.target.spec, self.target.scrub(self.ssh_error or "unreachable"))
        threads = []
        if ssh_wanted and self.ssh is None and self.ssh_error is None:
            threads.append(threading.Thread(target=self._open_ssh, daemon=True))
        threads.append(threading.Thread(target=self._open_rw, daemon=True))
        for t in threads:
            t.start()
        stage("opening the libvirt connection")
        try:
            self.conn = open_readonly(self.target.uri)
        except LibvirtError as exc:
            raise ProbeError(self.target.spec, str(exc)) from None
        stage("opening the SSH connection")
        for t in threads:
            t.join(self.options.connect_timeout + 2)
        stage("gathering facts")
        if self.ssh is None and self.ssh_error is None and ssh_wanted:
            self.ssh_error = f"SSH: no answer within {self.options.connect_timeout:g}s"
        return self

    def _open_tunnelled(self, remote: str) -> bool:
        """Both libvirt connections over the SSH connection; False (nothing left open) if that fails."""
        transport = self.ssh.client.get_transport() if self.ssh and self.ssh.client else None
        if transport is None:
            return False
        stage("opening the libvirt connection")
        try:
            self._tunnels = [LibvirtTunnel(transport, remote, readonly, self.options.connect_timeout)
                             for readonly in (True, False)]
        except OSError:
            return False
        # each channel costs the host a session setup: open all three at once
        side = [threading.Thread(target=self._open_rw, args=(self._tunnels[1].uri,), daemon=True),
                threading.Thread(target=lambda: self.files, daemon=True)]
        for t in side:
            t.start()
        try:
            self.conn = open_readonly(self._tunnels[0].uri)
        except LibvirtError:
            self.conn = None
        for t in side:
            t.join(self.options.connect_timeout + 2)
        if self.conn is None:
            self._close_libvirt()
            return False
        return True

    def _open_rw(self, uri: str | None = None) -> None:
        try:
            self.conn_rw = open_readwrite(uri or self.target.uri)
        except LibvirtError as exc:
            self.rw_error = str(exc)

    @property
    def query_conn(self) -> libvirt.virConnect:
        """The connection for domain capabilities and CPU comparison (read-write, see open())."""
        if self.conn_rw is None:
            raise LibvirtError(self.rw_error or "no read-write libvirt connection")
        return self.conn_rw

    def _open_ssh(self) -> None:
        try:
            self.ssh = SshConnection(self.target.ssh, SshOptions(self.options.connect_timeout,
                                                                 self.options.ssh_config)).connect()
        except SshError as exc:
            self.ssh_error = str(exc)
            self.ssh_unreachable = exc.unreachable
        except Exception as exc:  # paramiko can raise odd things on garbage servers
            self.ssh_error = f"SSH failed: {type(exc).__name__}: {exc}"

    @property
    def files(self) -> HostFiles | None:
        if self.target.local:
            return self._local_files
        if self.ssh is None:
            return None
        try:
            return self.ssh.files
        except SshError as exc:
            self.ssh_error = str(exc)
            self.ssh = None
            return None

    def _close_libvirt(self) -> None:
        import libvirt

        for conn in (self.conn, self.conn_rw):
            if conn is not None:
                try:
                    conn.close()
                except libvirt.libvirtError:
                    pass
        self.conn = self.conn_rw = None
        for tunnel in self._tunnels:
            tunnel.close()
        self._tunnels = []

    def close(self) -> None:
        """Best effort, often in a daemon thread as migcheck ends: a connection the host already dropped must
        not print a traceback over migcheck's one-line answer."""
        try:
            self._close_libvirt()
        except Exception:  # noqa: BLE001
            pass
        if self.ssh is not None:
            try:
                self.ssh.close()
            except Exception:  # noqa: BLE001
                pass



# ----------------------------------------------------------------- host workers


class HostWorker(threading.Thread):
    """Runs one host's probe in a daemon thread, so a hung host cannot hang migcheck."""

    def __init__(self, fn: Callable[[], object], host: str | None = None):
        super().__init__(daemon=True, name=f"migcheck-{host}" if host else None)
        self.fn = fn
        self.host = host  # the host argument (only for MIGCHECK_TRACE)
        self.result: object | None = None
        self.error: BaseException | None = None
        self.stage = "starting"  # what it was doing, for the timeout message

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc


def _process_age() -> float:
    """Seconds since this process started (to 10 ms), so trace times include Python's own start-up."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


_TRACE_START = time.perf_counter() - _process_age() if os.environ.get("MIGCHECK_TRACE") == "1" else None


def stage(what: str) -> None:
    """Note what this host's worker is doing now: named if the host misses its deadline.

    With MIGCHECK_TRACE=1 each stage is also printed to stderr with its time, for
    finding where a slow check spends it (``make bench`` shows the same for one run).
    """
    worker = threading.current_thread()
    if isinstance(worker, HostWorker):
        worker.stage = what
    if _TRACE_START is not None:
        trace(what)


def trace(what: str) -> None:
    """One MIGCHECK_TRACE=1 line: milliseconds since migcheck started, the thread, what."""
    if _TRACE_START is not None:
        import sys

        worker = threading.current_thread()
        who = getattr(worker, "host", None) or worker.name
        # one write per line: print() writes the text and its newline apart, and two threads tracing at
        # once left a line holding both texts and an empty line after it
        sys.stderr.write(f"migcheck trace {1000 * (time.perf_counter() - _TRACE_START):7.1f} ms  "
                         f"(cpu {1000 * time.process_time():5.0f} ms)  {who:<12} {what}\n")
        sys.stderr.flush()


def deadline_join(workers: list[tuple[HostWorker, HostTarget]], timeout: float, started: float | None = None) -> None:
    """Wait for the workers until ``timeout`` seconds after ``started`` (time.monotonic(); default: now)."""
    end = (time.monotonic() if started is None else started) + timeout
    for worker, target in workers:
        worker.join(max(0.0, end - time.monotonic()))
        if worker.is_alive():
            worker.error = ProbeError(target.spec, f"no complete answer within {timeout:g}s, still {worker.stage} "
                                                   "(use --timeout to allow more)")


def raise_failure(worker: HostWorker, target: HostTarget) -> None:
    """The worker's failure as one ProbeError naming the host, without the host argument's secrets."""
    err = worker.error
    if err is None:
        return
    if isinstance(err, ProbeError):
        raise ProbeError(err.host, target.scrub(err.message)) from None
    raise ProbeError(target.spec, target.scrub(f"probe failed: {type(err).__name__}: {err}")) from None


def scrubbed(raw, target: HostTarget):
    """Per-fact errors echo libvirt's and ssh's messages, which may quote a password or key path."""
    raw.errors = {k: target.scrub(v) for k, v in raw.errors.items()}
    return raw
