"""One lab host: a network + mount + UTS namespace with its own libvirtd and sshd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._cmd import CLEAN_ENV, LabCommandError, LabError, run
from .spec import HostSpec

# Folders every host gets its own copy of (host-dir subfolder -> mount point).
PRIVATE_DIRS = {
    "etc-libvirt": "/etc/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}
# Paths that are already private inside a host, so a dir below them needs no overlay.
PRIVATE_ROOTS = (*PRIVATE_DIRS.values(), "/run", "/root")


@dataclass
class LabHost:
    """A running lab host. Commands given to it run inside its namespaces."""

    spec: HostSpec
    ip: str
    netns: str
    veth: str
    dir: Path  # the host's folder in the lab state dir
    pid: int = 0  # the holder process whose namespaces are the host
    # Hosts with a HostSpec.root: where that root is mounted inside the host
    # (an overlay on the cached root, in the host's mount namespace only).
    # Commands given to the host then run chrooted there.
    chroot: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uri(self) -> str:
        """The libvirt URI that reaches this host from the root namespace."""
        return f"qemu+ssh://root@{self.name}/system"

    # ---- using the host -------------------------------------------------

    def nsenter_argv(self, argv: Sequence[str], *, outside: bool = False) -> list[str]:
        """argv inside the host's namespaces, chrooted into its own root if it has one.

        outside=True: this machine's root filesystem as the host's mount namespace
        sees it (for the lab's own setup steps).
        """
        if not self.pid:
            raise LabError(f"{self.name}: host is not running")
        chroot = ["chroot", str(self.chroot)] if self.chroot and not outside else []
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "--", *chroot, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout: float = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run argv inside the host (no shell). Output is text and captured.

        check=True raises LabCommandError (a CalledProcessError) naming the host.
        """
        if isinstance(argv, str):
            raise TypeError("run() takes an argv list, not a shell string")
        return run(
            self.nsenter_argv(argv), check=check, timeout=timeout, input=input,
            env=CLEAN_ENV, where=self.name,
        )

    def virsh(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """`virsh -c qemu:///system ARGS` inside the host. Raises on failure by default."""
        return self.run(["virsh", "-c", "qemu:///system", *args], check=check, timeout=timeout)

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Write a file as seen inside the host's mount namespace (parents created)."""
        if not path.startswith("/"):
            raise ValueError(f"{path!r}: absolute path required")
        payload = data.encode() if isinstance(data, str) else data
        argv = self.nsenter_argv(["install", "-D", "-m", f"{mode:o}", "/dev/stdin", path])
        try:
            proc = subprocess.run(argv, input=payload, capture_output=True, timeout=60, env=CLEAN_ENV)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name}: writing {path} timed out") from exc
        if proc.returncode != 0:
            raise LabError(f"{self.name}: writing {path} failed: {proc.stderr.decode(errors='replace')}")

    def read_file(self, path: str) -> str:
        """Read a text file as seen inside the host."""
        return self.run(["cat", "--", path], check=True).stdout

    def alive(self) -> bool:
        return bool(self.pid) and _pid_in_netns(self.pid, self.netns)

    def log_tail(self, lines: int = 30) -> str:
        """The host's daemon logs, for error messages."""
        out = []
        for rel in ("holder.log", "log/libvirtd.log", "log/virtlogd.log", "sshd.log", "daemons.log"):
            p = self.dir / rel
            tail = p.read_text(errors="replace").splitlines()[-lines:] if p.exists() else []
            if any(line.strip() for line in tail):
                out.append(f"--- {self.name}: {rel} ---\n" + "\n".join(tail))
        return "\n".join(out) or f"({self.name}: no logs)"

    # ---- bringing it up (called by Lab) --------------------------------

    def start_holder(self, timeout: float = 10) -> None:
        """Start `sleep infinity` in fresh net (existing netns), mount and UTS namespaces.

        The holder's PID is the handle for nsenter; killing the netns' PIDs stops the host.
        """
        with open(self.dir / "holder.log", "ab") as log:
            self._proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns,
                 "unshare", "--mount", "--uts", "--propagation", "private",
                 "sleep", "infinity"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env=CLEAN_ENV, close_fds=True,
            )
        self.pid = self._proc.pid
        own_mnt = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise LabError(f"{self.name}: namespace holder exited\n{self.log_tail()}")
            try:
                comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
                mnt = os.readlink(f"/proc/{self.pid}/ns/mnt")
            except OSError:
                comm, mnt = "", own_mnt
            if comm == "sleep" and mnt != own_mnt:
                return
            time.sleep(0.02)
        raise LabError(f"{self.name}: namespace holder did not start in {timeout}s")

    def mount_root(self, lower: Path, state_dir: Path) -> None:
        """The host's own root (HostSpec.root) at self.chroot: an overlay on the cached root.

        The cached root is never written (writes land in <host dir>/root-upper).
        Inside it: /proc, the netns's /sys, /dev, and the state dir at its own
        path (sshd's config and the ssh client config name files there). All of
        it lives in the host's mount namespace and dies with it.
        """
        sh = self._must
        r = str(self.chroot)
        upper, work = self.dir / "root-upper", self.dir / "root-work"
        for d in (self.chroot, upper, work):
            d.mkdir(parents=True, exist_ok=True)
        sh(["mount", "-t", "overlay", "lab-root-" + self.name,
            "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", r])
        sh(["mount", "-t", "proc", "lab-proc", r + "/proc"])
        sh(["mount", "-t", "sysfs", "lab-sysfs", r + "/sys"])
        sh(["mount", "--rbind", "/dev", r + "/dev"])
        sh(["mkdir", "-p", r + str(state_dir), r + "/root/.ssh", *(r + t for t in PRIVATE_DIRS.values())])
        sh(["touch", r + "/etc/hosts"])
        sh(["mount", "--bind", str(state_dir), r + str(state_dir)])

    def setup_namespace(self, hosts_file: Path, ssh_dir: Path, overlays: dict[str, Path]) -> None:
        """Hostname, private mounts, loopback and extra bridges, inside the host.

        For a host with its own root (mount_root first) the mounts go inside that root.
        """
        sh = self._must
        r = str(self.chroot or "")
        sh(["hostname", self.name])
        # Overlays first: the lab's own bind mounts may then sit on top of them.
        for lower, base in overlays.items():
            upper, work = base / "upper", base / "work"
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            sh(["mount", "-t", "overlay", "lab-" + self.name,
                "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", lower])
        sh(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "lab-run", r + "/run"])
        sh(["mkdir", "-p", "-m", "0755", r + "/run/sshd", r + "/run/libvirt"])
        sh(["mkdir", "-p", "-m", "1777", r + "/run/lock"])
        for sub, target in PRIVATE_DIRS.items():
            sh(["mount", "--bind", str(self.dir / sub), r + target])
        sh(["mount", "--bind", str(hosts_file), r + "/etc/hosts"])
        if not r:
            # root's home as on a fresh Debian host (/etc/skel), not this machine's: every SSH
            # session runs the login shell, which reads ~/.bashrc, and a developer's .bashrc
            # (pyenv init here: +75 ms per session) would make each lab "host" slow in its way.
            home = self.dir / "root-home"
            (home / ".ssh").mkdir(parents=True, exist_ok=True)
            for name in (".bashrc", ".profile"):
                if Path("/etc/skel", name).exists() and not (home / name).exists():
                    shutil.copyfile(Path("/etc/skel", name), home / name)
            sh(["mount", "--bind", str(home), "/root"])
        sh(["mount", "--bind", str(ssh_dir), r + "/root/.ssh"])
        for br in self.spec.bridges:
            sh(["ip", "link", "add", br, "type", "bridge"])
            sh(["ip", "link", "set", br, "up"])
        for d in self.spec.dirs:
            sh(["mkdir", "-p", r + d])

    def mount_hugetlbfs(self) -> None:
        r = str(self.chroot or "")
        sh = self._must
        if r:
            sh(["mkdir", "-p", r + "/dev/hugepages"])
        sh(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "lab-hugetlbfs", r + "/dev/hugepages"])

    def start_daemons(self, sshd_config: Path) -> None:
        """virtlogd, libvirtd (pinned to CPU 0, see LAB.md) and sshd; all daemonize."""
        if self.spec.start_libvirtd:
            self._daemon(["virtlogd", "-d"])
            self._daemon(["taskset", "-c", "0", "libvirtd", "-d"])
        if self.spec.start_sshd:
            self._daemon(["/usr/sbin/sshd", "-f", str(sshd_config), "-E", str(self.dir / "sshd.log")])

    def readiness_problem(self, registered: bool, timeout: float = 20) -> str | None:
        """None when the host is ready, else what is still missing.

        Ready means: from the root namespace `virsh -c qemu+ssh://root@NAME/system
        version` works (when both daemons run and the host key is registered);
        otherwise each started daemon answers on its own.
        """
        if not self.alive():
            return "namespace holder is gone"
        s = self.spec
        if s.start_libvirtd and s.start_sshd and registered:
            p = run(["virsh", "-c", self.uri, "version"], check=False, timeout=timeout, where="root-ns")
            return None if p.returncode == 0 else (p.stderr.strip() or p.stdout.strip())
        if s.start_libvirtd:
            p = self.virsh("version", check=False, timeout=timeout)
            if p.returncode != 0:
                return p.stderr.strip() or "virsh version failed"
        if s.start_sshd:
            if registered:
                p = run(["ssh", self.name, "true"], check=False, timeout=timeout)
                if p.returncode != 0:
                    return p.stderr.strip() or "ssh failed"
            elif not _ssh_banner(self.ip, min(timeout, 3)):
                return f"sshd not answering on {self.ip}:22"
        return None

    def destroy_guests(self, timeout: float = 20) -> None:
        """Best effort: stop every running guest through libvirt before the kill."""
        if not self.spec.start_libvirtd or not self.alive():
            return
        p = self.virsh("list", "--name", check=False, timeout=timeout)
        for vm in p.stdout.split() if p.returncode == 0 else []:
            self.virsh("destroy", vm, check=False, timeout=timeout)

    def _must(self, argv: list[str], timeout: float = 30) -> None:
        """A setup step, run with this machine's tools (outside the host's own root)."""
        try:
            run(self.nsenter_argv(argv, outside=True), check=True, timeout=timeout, env=CLEAN_ENV, where=self.name)
        except LabCommandError as exc:
            raise LabError(f"{self.name}: setup step failed: {exc}") from None

    def _daemon(self, argv: list[str], timeout: float = 60) -> None:
        # Output to a file, not a pipe: a daemon that kept our pipe open would
        # make us wait for it forever.
        with open(self.dir / "daemons.log", "ab") as log:
            try:
                rc = subprocess.run(
                    self.nsenter_argv(argv), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log, timeout=timeout, env=CLEAN_ENV,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = 124
        if rc != 0:
            raise LabError(f"{self.name}: {' '.join(argv)} exited {rc}\n{self.log_tail()}")


def netns_pids(netns: str) -> list[int]:
    p = run(["ip", "netns", "pids", netns], check=False, timeout=15)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_netns(netns: str, grace: float = 5) -> None:
    """SIGTERM every process of the netns, then SIGKILL what is left; wait until gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        pids = netns_pids(netns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
    left = netns_pids(netns)
    if left:
        raise LabError(f"{netns}: processes survive SIGKILL: {left}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _pid_in_netns(pid: int, netns: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino and _alive(pid)
    except OSError:
        return False


def _ssh_banner(ip: str, timeout: float = 3) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            return s.recv(16).startswith(b"SSH-")
    except OSError:
        return False
