"""The lab: several libvirt hosts on this machine, each in its own namespaces.

Everything the lab makes is named after its prefix (netns ``<prefix>-<host>``,
bridge ``<prefix>0``, veths ``<prefix>-<octet>``) or lives in its state dir, so
teardown can find all of it again even after a crash, from another process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from . import sshconf
from ._cmd import LabError, root_env, run
from .guest import guest_xml, host_cpu_quirks, kvm_usable
from .host import PRIVATE_DIRS, PRIVATE_ROOTS, LabHost, kill_netns, netns_pids
from .spec import HostSpec
from .vroot import BuiltRoot, VersionedRoot, ensure_root

DEFAULT_PREFIX = "mclab"
DEFAULT_SUBNET = "10.251.77.0/24"
# The only addresses the lab may use (workplace network rule).
LAB_RANGE = ipaddress.ip_network("10.251.77.0/24")
DEFAULT_STATE_DIR = "/var/tmp/migcheck-lab"
STATE_FILE = "lab.json"
CACHE_DIR = "cache"  # survives teardown: QEMU capabilities cache
# What the lab puts in its state dir (and teardown removes again).
STATE_ENTRIES = frozenset({
    STATE_FILE, "id_ed25519", "id_ed25519.pub", "known_hosts", "ssh_config",
    "authorized_keys", "hosts.txt", "root-ssh", "hosts",
})
HUGEPAGES_PER_HOST = 40  # 2 MiB pages: room for one 64 MiB guest and then some
REQUIRED_TOOLS = (
    "ip", "unshare", "nsenter", "taskset", "mount", "hostname", "install",
    "ssh", "ssh-keygen", "virsh", "libvirtd", "virtlogd", "/usr/sbin/sshd",
    "openssl",  # the TLS scenarios make their own certificates
)
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,9}$")
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
_ACTIVE: dict[str, Lab] = {}  # state dir -> lab that this process has up


def default_state_dir(prefix: str = DEFAULT_PREFIX) -> Path:
    env = os.environ.get("MIGCHECK_LAB_DIR")
    if env:
        return Path(env)
    return Path(DEFAULT_STATE_DIR if prefix == DEFAULT_PREFIX else f"{DEFAULT_STATE_DIR}-{prefix}")


def missing_tools() -> list[str]:
    return [t for t in REQUIRED_TOOLS if not shutil.which(t)]



# Every real `virsh migrate` of this process (True: it succeeded), for the test summary.
MIGRATIONS: list[bool] = []

class Lab:
    """A set of lab hosts. ``with Lab([...]) as lab:`` brings them up and tears them down.

    prefix: names the lab's netns/bridge/veths; give a second lab another prefix,
        another subnet slice, other host names and (if MIGCHECK_LAB_DIR is set)
        another state_dir so the two can coexist.
    subnet: inside 10.251.77.0/24; the bridge takes the first address, hosts
        take .11, .12, ... counted from the subnet start.
    """

    def __init__(
        self,
        specs: Sequence[HostSpec] | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        subnet: str = DEFAULT_SUBNET,
        state_dir: str | Path | None = None,
        ready_timeout: float = 120,
    ):
        specs = list(specs) if specs is not None else [HostSpec("mc-a"), HostSpec("mc-b")]
        if not _PREFIX.match(prefix):
            raise ValueError(f"prefix {prefix!r}: 1-10 chars of a-z0-9, starting with a letter")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate host names: {names}")
        net = ipaddress.ip_network(subnet)
        if not net.subnet_of(LAB_RANGE):  # type: ignore[arg-type]
            raise ValueError(f"subnet {subnet} is outside the lab's own {LAB_RANGE}")
        if net.num_addresses < 11 + len(specs) + 1:
            raise ValueError(f"subnet {subnet} is too small for {len(specs)} hosts")
        self.prefix = prefix
        self.subnet = net
        self.state_dir = Path(state_dir) if state_dir else default_state_dir(prefix)
        sshconf.check_state_path(self.state_dir)
        self.ready_timeout = ready_timeout
        self.bridge = f"{prefix}0"
        self.bridge_ip = str(net.network_address + 1)
        self.hosts: list[LabHost] = [
            LabHost(
                spec=s,
                ip=str(net.network_address + 11 + i),
                netns=f"{prefix}-{s.name}",
                veth=f"{prefix}-{int(net.network_address + 11 + i) & 0xFF}",
                dir=self.state_dir / "hosts" / s.name,
            )
            for i, s in enumerate(specs)
        ]
        self.kvm = kvm_usable()
        self.up_seconds: float | None = None
        self.hugepages_reserved = 0  # 2 MiB pages this lab added to vm.nr_hugepages
        self.roots: dict[str, BuiltRoot] = {}  # VersionedRoot.key -> the cached root in use
        self._state: dict = {}

    # ---- public API ------------------------------------------------------

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"no lab host {name!r} (have {[h.name for h in self.hosts]})")

    def guest_xml(
        self, name: str, cpu_xml: str = "", extra_devices: str = "", memory_mib: int = 64,
        clock_xml: str = "", extra_xml: str = "", machine: str = "q35", os_xml: str = "", serial_xml: str = "",
        kvm: bool | None = None, os_attrs: str = "", features_xml: str = "",
    ) -> str:
        """Minimal diskless q35 guest XML: type 'kvm' when KVM works, else 'qemu' (TCG); kvm=False forces TCG."""
        return guest_xml(name, kvm=self.kvm if kvm is None else kvm and self.kvm, cpu_xml=cpu_xml, extra_devices=extra_devices,
                         memory_mib=memory_mib, clock_xml=clock_xml, extra_xml=extra_xml, machine=machine,
                         os_xml=os_xml, serial_xml=serial_xml, os_attrs=os_attrs, features_xml=features_xml)

    @property
    def cpu_quirks(self) -> tuple[str, ...]:
        """CPU features host-passthrough/host-model guests must disable to start here.

        Paste guest.disable_features_xml(lab.cpu_quirks) inside their <cpu>. With
        hosts of several versions: what any of their QEMUs needs, so that a guest
        starts on every host it may migrate to.
        """
        if not self.kvm:
            return ()
        out = list(host_cpu_quirks())
        for h in self.hosts:
            if h.chroot and h.pid:
                out += [f for f in host_cpu_quirks(tuple(h.nsenter_argv([]))) if f not in out]
        return tuple(out)

    def migrate(
        self, src: LabHost | str, dst: LabHost | str, vm: str, flags: Iterable[str] = ("--live",),
        *, timeout: float = 120, check: bool = False,
    ) -> subprocess.CompletedProcess:
        """`virsh -c SRC migrate FLAGS VM DSTURI` from the root namespace, like an operator."""
        s = src if isinstance(src, LabHost) else self.host(src)
        d = dst if isinstance(dst, LabHost) else self.host(dst)
        argv = ["virsh", "-c", s.uri, "migrate", *flags, vm, d.uri]
        p = run(argv, check=check, timeout=timeout, env=root_env())
        MIGRATIONS.append(p.returncode == 0)
        return p

    def up(self) -> Lab:
        """Bring every host up and wait until each is ready. Cleans a stale lab first.

        On failure everything is torn down again and LabError says why.
        """
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        if missing := missing_tools():
            raise LabError(f"missing tools: {', '.join(missing)}")
        t0 = time.monotonic()
        self._claim()
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        self.up_seconds = round(time.monotonic() - t0, 1)
        self._state.update(kvm=self.kvm, up_seconds=self.up_seconds,
                           roots={k: {"path": str(r.path), "versions": r.versions, "built_now": r.built_now,
                                      "seconds": r.seconds} for k, r in self.roots.items()})
        self._save_state()
        return self

    def _up(self) -> None:
        self.down_all(self.prefix, self.state_dir)
        self._check_no_alias_clash()
        self._ensure_roots()
        overlays = {h.name: self._overlays(h) for h in self.hosts}  # validate dirs early
        self._prepare_files()
        self._state = {
            "prefix": self.prefix, "subnet": str(self.subnet), "state_dir": str(self.state_dir),
            "owner": [os.getpid(), _start_time(os.getpid())],
            "bridge": self.bridge, "bridge_ip": self.bridge_ip, "kvm": self.kvm,
            "hosts": [_host_state(h) for h in self.hosts],
        }
        self._save_state()
        self._state["ssh_config_created"] = sshconf.add_include(self.state_dir)
        self._save_state()
        self._network()
        self._hugepages()
        ssh_dir = self.state_dir / "root-ssh"
        for h in self.hosts:
            h.start_holder()
            self._state["hosts"] = [_host_state(x) for x in self.hosts]
            self._save_state()
            if h.spec.root is not None:
                h.mount_root(self.roots[h.spec.root.key].path, self.state_dir)
            h.setup_namespace(self.state_dir / "hosts.txt", ssh_dir, overlays[h.name])
            if h.spec.hugetlbfs:
                h.mount_hugetlbfs()
            h.start_daemons(h.dir / "sshd_config")
        self._wait_ready()
        self._save_caps_cache()
        for h in self.hosts:
            for argv in h.spec.setup:
                p = h.run(argv, check=False, timeout=120)
                if p.returncode != 0:
                    raise LabError(f"{h.name}: setup command {argv} exited {p.returncode}: "
                                   f"{(p.stderr or p.stdout).strip()}")
        if self.kvm and not self._libvirt_has_kvm():
            self.kvm = False

    def down(self) -> None:
        """Tear this lab down (idempotent)."""
        for h in self.hosts:
            if h._proc is not None:
                h._proc.poll()
        self.down_all(self.prefix, self.state_dir)
        if _ACTIVE.get(str(self.state_dir)) is self:
            del _ACTIVE[str(self.state_dir)]
        for h in self.hosts:
            if h._proc is not None:
                try:
                    h._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                h._proc = None
            h.pid = 0

    @classmethod
    def attach(cls, prefix: str = DEFAULT_PREFIX, state_dir: str | Path | None = None) -> Lab:
        """A Lab object for hosts brought up by another process (e.g. `python -m tests.lab up`)."""
        sd = Path(state_dir) if state_dir else default_state_dir(prefix)
        state = _load_state(sd)
        if not state:
            raise LabError(f"no lab state in {sd}: run `python -m tests.lab up` first")
        lab = cls([_spec_from_state(h) for h in state["hosts"]], prefix=state["prefix"],
                  subnet=state["subnet"], state_dir=sd)
        for h, hs in zip(lab.hosts, state["hosts"], strict=True):
            h.pid = hs.get("pid", 0)
            h.chroot = Path(hs["chroot"]) if hs.get("chroot") else None
        lab.kvm = state.get("kvm", lab.kvm)
        lab.up_seconds = state.get("up_seconds")
        lab.hugepages_reserved = state.get("hugepages_reserved", 0)
        lab._state = state
        return lab

    @classmethod
    def down_all(cls, prefix: str = DEFAULT_PREFIX, state_dir: str | Path | None = None) -> None:
        """Remove everything a lab with this prefix/state dir may have left, crashed or not.

        Order: guests, processes, namespaces, links, the Include line, hugepages,
        then the state dir (keeping its cache/ subfolder).
        """
        sd = Path(state_dir) if state_dir else default_state_dir(prefix)
        state = _load_state(sd)
        prefixes = {prefix, state.get("prefix", prefix)}
        netnses = {h["netns"] for h in state.get("hosts", [])}
        netnses |= {n for n in list_netns() if any(n.startswith(p + "-") for p in prefixes)}
        for hs in state.get("hosts", []):
            pid = hs.get("pid", 0)
            if pid and hs["netns"] in netnses:
                host = LabHost(spec=_spec_from_state(hs), ip=hs["ip"], netns=hs["netns"],
                               veth=hs["veth"], dir=Path(hs["dir"]), pid=pid,
                               chroot=Path(hs["chroot"]) if hs.get("chroot") else None)
                if host.alive():
                    host.destroy_guests()
        errors = []
        for ns in sorted(netnses):
            try:
                kill_netns(ns)
            except LabError as exc:
                errors.append(str(exc))
            run(["ip", "netns", "delete", ns], check=False, timeout=15)
        for link in lab_links(prefixes):
            run(["ip", "link", "delete", link], check=False, timeout=15)
        sshconf.remove_include(sd, delete_if_empty=state.get("ssh_config_created", False))
        if "hugepages_reserved" in state:  # give back ours only: another lab may hold some
            _set_hugepages(max(0, int(NR_HUGEPAGES.read_text()) - state["hugepages_reserved"]))
        elif "hugepages_before" in state:  # crashed while reserving
            _set_hugepages(state["hugepages_before"])
        if state.get("devhugepages_created") and not _mounted_anywhere("/dev/hugepages"):
            try:
                os.rmdir("/dev/hugepages")
            except OSError:
                pass
        _umount_empty_netns_dir()
        if sd.is_dir():
            for child in sd.iterdir():
                # Only what the lab writes: a mistyped MIGCHECK_LAB_DIR must not cost files.
                if child.name not in STATE_ENTRIES and not child.name.endswith(".tmp"):
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        if errors:
            raise LabError("teardown incomplete: " + "; ".join(errors))

    def leftovers(self, netns_inodes: Iterable[int] = ()) -> list[str]:
        """What teardown should have removed but is still there (empty when clean).

        netns_inodes: inode numbers of the lab's netns taken while it ran; any
        process still in one of them is reported.
        """
        return find_leftovers(self.prefix, self.state_dir, netns_inodes)

    def include_present(self) -> bool:
        """Whether root's ~/.ssh/config has this lab's Include line."""
        return sshconf.include_present(self.state_dir)

    def netns_inodes(self) -> list[int]:
        out = []
        for h in self.hosts:
            try:
                out.append(os.stat(f"/run/netns/{h.netns}").st_ino)
            except OSError:
                pass
        return out

    def status(self) -> list[dict]:
        """Per host: namespace present, holder alive, and libvirt reachable by name."""
        rows = []
        existing = set(list_netns())
        for h in self.hosts:
            row = {"name": h.name, "ip": h.ip, "netns": h.netns, "uri": h.uri,
                   "netns_present": h.netns in existing, "alive": h.alive(), "libvirt": "-"}
            if row["alive"] and h.spec.start_libvirtd:
                if h.spec.start_sshd and h.spec.ssh_host_key_registered:
                    p = run(["virsh", "-c", h.uri, "version"], check=False, timeout=20)
                else:
                    p = h.virsh("version", check=False, timeout=20)
                row["libvirt"] = "ok" if p.returncode == 0 else "error: " + p.stderr.strip()[:200]
            rows.append(row)
        return rows

    # ---- bring-up steps --------------------------------------------------

    def _claim(self) -> None:
        """Refuse to replace a lab that a live process (maybe this one) still uses.

        A lab whose owner is gone (crashed run, or `python -m tests.lab up`, which
        exits after bring-up) counts as stale and is cleaned up by up().
        """
        key = str(self.state_dir)
        for other in _ACTIVE.values():
            if other is not self and (str(other.state_dir) == key or other.prefix == self.prefix):
                raise LabError(f"a lab with prefix {other.prefix} / state {other.state_dir} is "
                               "already up in this process (the lab2 fixture?): give this one "
                               "another prefix, subnet, state_dir and host names")
        owner = _load_state(self.state_dir).get("owner")
        if owner and owner[0] != os.getpid() and _start_time(owner[0]) == owner[1]:
            raise LabError(f"the lab in {self.state_dir} belongs to running process {owner[0]}; "
                           "wait for it or run `python -m tests.lab down`")
        _ACTIVE[key] = self

    def _check_no_alias_clash(self) -> None:
        """Another lab's Include defining the same Host names would shadow ours."""
        cfg = sshconf.root_ssh_dir() / "config"
        if not cfg.exists():
            return
        ours = {h.name for h in self.hosts}
        for line in cfg.read_text().splitlines():
            if not line.rstrip().endswith(sshconf.MARK) or line.strip() == sshconf.include_line(self.state_dir):
                continue
            other = Path(line.split()[1])
            if other.exists():
                names = {ln.split()[1] for ln in other.read_text().splitlines() if ln.startswith("Host ")}
                if clash := ours & names:
                    raise LabError(f"hosts {sorted(clash)} are already defined by another lab ({other})")

    def _prepare_files(self) -> None:
        sd = self.state_dir
        sd.mkdir(parents=True, exist_ok=True)
        os.chmod(sd, 0o700)
        (sd / CACHE_DIR).mkdir(exist_ok=True)
        hosts_txt = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        hosts_txt += [f"{h.ip}\t{h.name}" for h in self.hosts]
        (sd / "hosts.txt").write_text("\n".join(hosts_txt) + "\n")
        targets = []
        for h in self.hosts:
            h.dir.mkdir(parents=True, exist_ok=True)
            for sub in PRIVATE_DIRS:
                if sub != "etc-libvirt":
                    (h.dir / sub).mkdir(exist_ok=True)
            for sub in ("images", "boot", "qemu"):
                (h.dir / "lib" / sub).mkdir(exist_ok=True)
            self._libvirt_config(h)
            self._seed_caps_cache(h)
            key = h.dir / "ssh_host_ed25519_key"
            sshconf.keygen(key, f"root@{h.name}")
            (h.dir / "sshd_config").write_text(sshconf.sshd_config(sd, h.ip, key))
            pub = sshconf.public_key(key) if h.spec.ssh_host_key_registered else ""
            targets.append(sshconf.SshTarget(h.name, h.ip, pub))
        sshconf.write_client_files(sd, targets)

    def _libvirt_config(self, h: LabHost) -> None:
        """A copy of the system's (or the host's own root's) /etc/libvirt with this host's identity."""
        etc = h.dir / "etc-libvirt"
        root = self.roots[h.spec.root.key].path if h.spec.root else Path("/")
        shutil.copytree(root / "etc/libvirt", etc, symlinks=True)
        host_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"migcheck-lab:{self.prefix}:{h.name}")
        _append(etc / "libvirtd.conf",
                f'host_uuid = "{host_uuid}"\n'
                'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        # QEMU as root: libvirt-qemu cannot open /dev/kvm (0600) on this machine.
        _append(etc / "qemu.conf", 'user = "root"\ngroup = "root"\n')
        if h.spec.root:
            # libvirt 11 fails every guest start with "Failed disable mount propagation
            # out of the root filesystem" when / is not a mount point (a chroot).
            _append(etc / "qemu.conf", "namespaces = [ ]\n")
        _append(etc / "virtlogd.conf", 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"\n')

    def _overlays(self, h: LabHost) -> dict[str, Path]:
        """Which existing folders to overlay so that h.spec.dirs exist on h only."""
        out: dict[str, Path] = {}
        if h.spec.root:
            return out  # its own root is private: the dirs are simply made there
        for d in h.spec.dirs:
            d = os.path.normpath(d)
            if any(d == r or d.startswith(r + "/") for r in PRIVATE_ROOTS):
                continue  # already private inside the host
            if os.path.lexists(d):
                raise LabError(f"{h.name}: dir {d} already exists on the machine, so it "
                               "cannot exist on this host only")
            parent = os.path.dirname(d)
            while not os.path.isdir(parent):
                if os.path.lexists(parent):
                    raise LabError(f"{h.name}: {parent} is not a directory")
                parent = os.path.dirname(parent)
            sd = str(self.state_dir)
            if parent == "/" or sd == parent or sd.startswith(parent + "/") or re.search(r"[,:\\]", parent):
                raise LabError(f"{h.name}: dir {d} would need an overlay on {parent}; "
                               "put it below an existing folder such as /srv or /opt")
            out.setdefault(parent, h.dir / "overlay" / str(len(out)))
        return out

    def _network(self) -> None:
        r = lambda *a: run(["ip", *a], timeout=15)  # noqa: E731
        r("link", "add", self.bridge, "type", "bridge")
        r("addr", "add", f"{self.bridge_ip}/{self.subnet.prefixlen}", "dev", self.bridge)
        r("link", "set", self.bridge, "up")
        for h in self.hosts:
            r("netns", "add", h.netns)
            r("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
            r("link", "set", h.veth, "master", self.bridge, "up")
            r("-n", h.netns, "link", "set", "lo", "up")
            r("-n", h.netns, "addr", "add", f"{h.ip}/{self.subnet.prefixlen}", "dev", "eth0")
            r("-n", h.netns, "link", "set", "eth0", "up")

    def _hugepages(self) -> None:
        """Reserve 2M pages (a global setting, restored on teardown) and make /dev/hugepages."""
        wanted = sum(HUGEPAGES_PER_HOST for h in self.hosts if h.spec.hugetlbfs)
        if not wanted:
            return
        before = int(NR_HUGEPAGES.read_text())
        self._state["hugepages_before"] = before
        if not os.path.isdir("/dev/hugepages"):
            os.mkdir("/dev/hugepages", 0o755)
            self._state["devhugepages_created"] = True
        self._save_state()
        _set_hugepages(before + wanted)
        self.hugepages_reserved = int(NR_HUGEPAGES.read_text()) - before
        self._state["hugepages_reserved"] = self.hugepages_reserved

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = {h.name: "not checked yet" for h in self.hosts}
        while pending:
            for h in self.hosts:
                if h.name in pending:
                    left = max(1.0, min(20.0, deadline - time.monotonic()))
                    problem = h.readiness_problem(h.spec.ssh_host_key_registered, timeout=left)
                    if problem is None:
                        del pending[h.name]
                    elif problem == "namespace holder is gone":
                        raise LabError(f"{h.name}: {problem}\n{h.log_tail()}")
                    else:
                        pending[h.name] = problem
            if pending and time.monotonic() > deadline:
                msgs = [f"{name}: {why}\n{self.host(name).log_tail()}" for name, why in pending.items()]
                raise LabError(f"lab hosts not ready after {self.ready_timeout}s:\n" + "\n".join(msgs))
            if pending:
                time.sleep(0.3)

    def _libvirt_has_kvm(self) -> bool:
        for h in self.hosts:
            if h.spec.start_libvirtd:
                p = h.virsh("capabilities", check=False)
                return "<domain type='kvm'" in p.stdout
        return self.kvm

    def _ensure_roots(self) -> None:
        """Build (or find in the cache) every VersionedRoot the hosts ask for."""
        for h in self.hosts:
            vr = h.spec.root
            if vr is None:
                continue
            if vr.key not in self.roots:
                self.roots[vr.key] = ensure_root(vr)
            h.chroot = h.dir / "root"

    def _caps_cache(self, h: LabHost) -> Path:
        """Where the QEMU capabilities probe of hosts like h is kept (one per libvirt/QEMU build)."""
        name = "qemu-capabilities" + (f"-{h.spec.root.key}" if h.spec.root else "")
        return self.state_dir / CACHE_DIR / name

    def _seed_caps_cache(self, h: LabHost) -> None:
        """libvirt re-probes QEMU (seconds) for an empty cache; reuse the last probe.

        libvirt validates what it finds (QEMU binary, libvirt version, host CPU) and
        re-probes when anything changed, so a stale cache costs nothing but time.
        """
        src = self._caps_cache(h)
        if src.is_dir() and any(src.iterdir()):
            shutil.copytree(src, h.dir / "cache" / "qemu" / "capabilities", dirs_exist_ok=True)

    def _save_caps_cache(self) -> None:
        saved: set[Path] = set()
        for h in self.hosts:
            dst = self._caps_cache(h)
            src = h.dir / "cache" / "qemu" / "capabilities"
            if dst not in saved and src.is_dir() and any(src.iterdir()):
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
                saved.add(dst)

    def _save_state(self) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=2) + "\n")
        os.replace(tmp, path)


# ---- helpers shared by Lab, down_all and the CLI ---------------------------

def list_netns() -> list[str]:
    p = run(["ip", "netns", "list"], check=False, timeout=15)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def lab_links(prefixes: Iterable[str]) -> list[str]:
    """Root-namespace links a lab with these prefixes creates: its bridge and veths."""
    p = run(["ip", "-o", "link", "show"], check=False, timeout=15)
    names = [ln.split(":")[1].strip().split("@")[0] for ln in p.stdout.splitlines() if ":" in ln]
    pats = [re.compile(rf"^{re.escape(px)}(0|-\d+)$") for px in prefixes]
    return [n for n in names if any(pt.match(n) for pt in pats)]


def find_leftovers(prefix: str, state_dir: Path, netns_inodes: Iterable[int] = ()) -> list[str]:
    out = []
    out += [f"netns {n}" for n in list_netns() if n.startswith(prefix + "-")]
    out += [f"link {n}" for n in lab_links([prefix])]
    if sshconf.include_present(state_dir):
        out.append(f"Include line for {state_dir} in {sshconf.root_ssh_dir() / 'config'}")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if any(f.startswith(f"/run/netns/{prefix}-") for f in fields[:2]):
            out.append(f"mount {line}")
    # Mounts under the state dir (a host's own root, its binds) live in the hosts' mount
    # namespaces: any namespace still holding one is a leftover.
    for pid, line in _mounts_everywhere():
        fields = line.split()
        if any(f == str(state_dir) or f.startswith(f"{state_dir}/") for f in fields[:2]):
            out.append(f"mount (pid {pid}) {line}")
    if state_dir.is_dir():
        out += [f"file {c}" for c in state_dir.iterdir() if c.name != CACHE_DIR]
    inodes = set(netns_inodes)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ino = os.stat(d / "ns" / "net").st_ino
        except OSError:
            continue
        if ino in inodes or (str(state_dir) + "/") in cmdline:
            out.append(f"process {d.name}: {cmdline.strip()[:200]}")
    return out


def _host_state(h: LabHost) -> dict:
    s = h.spec
    return {
        "name": s.name, "ip": h.ip, "netns": h.netns, "veth": h.veth, "dir": str(h.dir),
        "pid": h.pid, "bridges": s.bridges, "dirs": s.dirs, "hugetlbfs": s.hugetlbfs,
        "ssh_host_key_registered": s.ssh_host_key_registered,
        "start_libvirtd": s.start_libvirtd, "start_sshd": s.start_sshd,
        "root": s.root.to_state() if s.root else None, "chroot": str(h.chroot) if h.chroot else None,
    }


def _spec_from_state(hs: dict) -> HostSpec:
    return HostSpec(
        hs["name"], bridges=hs.get("bridges", []), dirs=hs.get("dirs", []),
        hugetlbfs=hs.get("hugetlbfs", False),
        ssh_host_key_registered=hs.get("ssh_host_key_registered", True),
        start_libvirtd=hs.get("start_libvirtd", True), start_sshd=hs.get("start_sshd", True),
        root=VersionedRoot.from_state(hs["root"]) if hs.get("root") else None,
    )


def _load_state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _start_time(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot), to tell a reused PID apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write("\n# --- added by tests.lab ---\n" + text)


def _set_hugepages(n: int) -> None:
    try:
        NR_HUGEPAGES.write_text(f"{n}\n")
    except OSError:
        pass  # reported through hugepages_reserved


def _is_mountpoint(path: str) -> bool:
    return any(line.split()[1] == path for line in Path("/proc/self/mounts").read_text().splitlines())


def _mounts_everywhere() -> Iterator[tuple[str, str]]:
    """(pid, line of /proc/PID/mounts) for one process of every mount namespace on the machine."""
    seen: set[int] = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ns = os.stat(d / "ns" / "mnt").st_ino
            if ns in seen:
                continue
            lines = (d / "mounts").read_text().splitlines()
        except OSError:
            continue
        seen.add(ns)
        for line in lines:
            yield d.name, line


def _mounted_anywhere(path: str) -> bool:
    """Whether any mount namespace (another lab's host, say) has something mounted at path.

    rmdir on such a mount point would silently unmount it there.
    """
    return any(len(f := line.split()) > 1 and f[1] == path for _, line in _mounts_everywhere())


def _umount_empty_netns_dir() -> None:
    """`ip netns add` bind-mounts /run/netns onto itself; undo that once no netns is left.

    Done whoever made it: an empty /run/netns mount carries no state, the next
    `ip netns add` makes it again, and which lab made it is lost when labs
    leave in another order than they came.
    """
    try:
        if _is_mountpoint("/run/netns") and not os.listdir("/run/netns"):
            run(["umount", "/run/netns"], check=False, timeout=15)
    except OSError:
        pass
