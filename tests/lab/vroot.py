"""Root filesystems with other libvirt/QEMU versions, for lab hosts of another version.

A ``VersionedRoot`` is a Debian root (``debootstrap --variant=minbase``) with
libvirt, QEMU, OpenSSH and iproute2 installed from a given suite, e.g. libvirt
11.3 and QEMU 10.0 from bookworm-backports (see ../shared/LAB.md, "A host of
another version"). Building one takes about a minute and ~630 MB, so it is
built once per machine and cached outside the repo:

    /var/tmp/migcheck-lab-roots/<suite>-<target>-<hash>/root/           the filesystem
    /var/tmp/migcheck-lab-roots/<suite>-<target>-<hash>/manifest.json   written last

``<hash>`` covers the recipe (suite, target suite, package list, recipe
version); the manifest records the package versions that were installed. A
root is reused when its manifest and the daemons are there; otherwise it is
rebuilt into a temporary folder beside it and renamed into place. Lab hosts
never write to the cached root: each mounts an overlay over it (see host.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ._cmd import CLEAN_ENV, LabError, run

DEFAULT_CACHE = "/var/tmp/migcheck-lab-roots"
RECIPE_VERSION = 2  # bump when the build steps change what a root contains
MANIFEST = "manifest.json"
# What a usable root must hold (paths inside it).
REQUIRED_FILES = ("usr/sbin/libvirtd", "usr/sbin/virtlogd", "usr/bin/virsh", "usr/bin/virt-ssh-helper",
                  "usr/bin/qemu-system-x86_64", "usr/sbin/sshd", "usr/lib/openssh/sftp-server",
                  "usr/bin/taskset", "usr/sbin/ip")
# Packages whose versions the manifest records (dpkg names).
VERSION_PACKAGES = ("libvirt-daemon", "libvirt-clients", "qemu-system-x86", "openssh-server")
BUILD_TIMEOUT = 1800
_SUITE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_PKG = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class VersionedRoot:
    """A lab host's own root filesystem: Debian `suite` with `packages` taken from `target`.

    The default is libvirt 11.3 / QEMU 10.0 from bookworm-backports (at the
    time of writing: the manifest says what was really installed).
    """

    suite: str = "bookworm"
    target: str = "bookworm-backports"
    packages: tuple[str, ...] = ("libvirt-daemon-system", "libvirt-clients", "qemu-system-x86",
                                 "openssh-server", "iproute2")

    def __post_init__(self) -> None:
        for s in (self.suite, self.target):
            if not _SUITE.match(s):
                raise ValueError(f"bad suite name {s!r}")
        if isinstance(self.packages, str) or not self.packages:
            raise ValueError("packages: a non-empty tuple of Debian package names")
        for p in self.packages:
            if not _PKG.match(p):
                raise ValueError(f"bad package name {p!r}")

    @property
    def key(self) -> str:
        """Cache key: the suites plus a hash of the whole recipe."""
        recipe = {"suite": self.suite, "target": self.target, "packages": sorted(self.packages),
                  "recipe": RECIPE_VERSION}
        digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.suite}-{self.target}-{digest}" if self.target != self.suite else f"{self.suite}-{digest}"

    def to_state(self) -> dict:
        return {"suite": self.suite, "target": self.target, "packages": list(self.packages)}

    @classmethod
    def from_state(cls, d: dict) -> VersionedRoot:
        return cls(suite=d["suite"], target=d["target"], packages=tuple(d["packages"]))


# The libvirt 11.3 / QEMU 10.0 host of issue 8.
BACKPORTS = VersionedRoot()


@dataclass(frozen=True)
class BuiltRoot:
    """A complete cached root."""

    path: Path  # the filesystem
    manifest: dict  # recipe, versions (dpkg package -> version), build_seconds, built_at
    built_now: bool  # False when reused from the cache
    seconds: float  # time spent here (building or checking)

    @property
    def versions(self) -> dict[str, str]:
        return self.manifest.get("versions", {})


def cache_dir() -> Path:
    return Path(os.environ.get("MIGCHECK_LAB_ROOTS") or DEFAULT_CACHE)


def ensure_root(spec: VersionedRoot, cache: Path | None = None, log=None) -> BuiltRoot:
    """The cached root for spec: reused when complete, else built (under a lock) and renamed into place."""
    t0 = time.monotonic()
    base = cache or cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    final = base / spec.key
    with open(base / f"{spec.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same root
        manifest = complete_manifest(final)
        if manifest is not None:
            return BuiltRoot(final / "root", manifest, False, round(time.monotonic() - t0, 1))
        for stale in base.glob(f".{spec.key}.*-*"):  # a build or a delete that died (we hold the lock)
            _rmtree(stale)
        tmp = base / f".{spec.key}.tmp-{os.getpid()}"
        try:
            manifest = _build(spec, tmp, log)
        except BaseException:
            _rmtree(tmp)
            raise
        if final.exists():  # incomplete leftover: move it aside, then delete
            trash = base / f".{spec.key}.trash-{os.getpid()}"
            os.replace(final, trash)
            _rmtree(trash)
        os.replace(tmp, final)
    return BuiltRoot(final / "root", manifest, True, round(time.monotonic() - t0, 1))


def complete_manifest(final: Path) -> dict | None:
    """The manifest of a complete root at final, or None."""
    try:
        manifest = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    root = final / "root"
    if not all((root / f).exists() for f in REQUIRED_FILES):
        return None
    return manifest


def apt_mirror(codename: str, etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for `codename` (sources.list and .sources files)."""
    files = [etc_apt / "sources.list"]
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822(stanza)
                if (fields.get("enabled", "yes").lower() != "no" and "deb" in fields.get("types", "").split()
                        and codename in fields.get("suites", "").split()
                        and "main" in fields.get("components", "").split()):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == codename and "main" in words[3:]:
                    return words[1]
    raise LabError(f"no apt source for '{codename} main' in /etc/apt/sources.list(.d): "
                   "cannot tell which Debian mirror to build the lab root from")


def _deb822(stanza: str) -> dict[str, str]:
    out: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and key:
            out[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            out[key] = value.strip()
    return out


def _build(spec: VersionedRoot, tmp: Path, log) -> dict:
    if not shutil.which("debootstrap"):
        raise LabError("building a lab root needs debootstrap (make apt installs it)")
    t0 = time.monotonic()
    mirror = apt_mirror(spec.suite)
    root = tmp / "root"
    tmp.mkdir(parents=True)
    build_log = tmp / "build.log"
    say = log or (lambda msg: None)

    def step(argv: list[str], what: str, timeout: float = BUILD_TIMEOUT) -> str:
        say(f"lab root {spec.key}: {what}")
        p = run(argv, check=False, timeout=timeout, env=CLEAN_ENV)
        with open(build_log, "a") as f:
            f.write(f"$ {' '.join(argv)}\n{p.stdout}{p.stderr}\n")
        if p.returncode != 0:
            tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
            raise LabError(f"building lab root {spec.key}: {what} failed (exit {p.returncode}):\n{tail}")
        return p.stdout

    step(["debootstrap", "--variant=minbase", spec.suite, str(root), mirror], f"debootstrap {spec.suite}")
    suites = [spec.suite] + ([spec.target] if spec.target != spec.suite else [])
    (root / "etc/apt/sources.list").write_text("".join(f"deb {mirror} {s} main\n" for s in suites))
    # Never start services from package scripts inside the root (they would run on this machine).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    # A private mount namespace: /proc for the package scripts, unmounted when apt is done.
    pkgs = list(spec.packages)
    step(["unshare", "--mount", "--propagation", "private", "sh", "-ec", _APT_SCRIPT, "sh",
          str(root), spec.target, *pkgs], f"apt-get install -t {spec.target} {' '.join(pkgs)}")
    out = step(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n", *VERSION_PACKAGES],
               "reading the installed versions", timeout=60)
    versions = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    missing = [f for f in REQUIRED_FILES if not (root / f).exists()]
    if missing:
        raise LabError(f"building lab root {spec.key}: the root lacks {', '.join(missing)} (see {build_log})")
    manifest = {
        "recipe": {**spec.to_state(), "recipe_version": RECIPE_VERSION, "mirror": mirror},
        "versions": versions,
        "build_seconds": round(time.monotonic() - t0, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# $1 root, $2 target suite, then the packages.
_APT_SCRIPT = """
root="$1"; target="$2"; shift 2
export DEBIAN_FRONTEND=noninteractive
mount -t proc lab-proc "$root/proc"
chroot "$root" apt-get update -q
chroot "$root" apt-get install -y -q --no-install-recommends -t "$target" "$@"
chroot "$root" apt-get clean
"""


def _rmtree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
