"""A bootable minimal guest for the lab: Debian's kernel and a busybox initramfs that mounts a 9p share.

Most lab guests have no OS at all: enough for checks that QEMU or libvirt decide
on their own, not for those that depend on what the guest does. QEMU blocks a
migration only once the guest has mounted a 9p share ("Migration is disabled when
VirtFS export path '...' is mounted in the guest using mount_tag '...'"), so
proving ``devices.9p-share`` needs a guest that boots and mounts it.

The boot files are built once per machine and cached outside the repo, like the
roots of tests/lab/vroot.py:

    /var/tmp/migcheck-lab-boot/<key>/vmlinuz         Debian's linux-image-amd64 kernel
    /var/tmp/migcheck-lab-boot/<key>/initrd.gz       busybox (busybox-static) + the 9p modules + /init
    /var/tmp/migcheck-lab-boot/<key>/manifest.json   written last

``<key>`` hashes the recipe (kernel package, modules, the /init script, recipe
version); the manifest records the kernel package and version that were used.
The kernel is fetched with ``apt-get download`` (never installed: no postinst,
nothing changes on this machine) and only vmlinuz and the modules the initramfs
needs are taken out of the package. Plain lab hosts see /var/tmp of this machine,
so every host's QEMU reads the same files at the same path (a host with its own
``root`` does not: it sees the root's /var/tmp).

The guest's /init loads the modules, mounts the share whose tag the kernel
command line names (``migcheck.9p=TAG``) on /mnt, prints ``MIGCHECK-9P-MOUNTED
TAG`` (or ``MIGCHECK-9P-FAILED TAG``) on the serial console and then idles.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ._cmd import CLEAN_ENV, LabError, run

DEFAULT_CACHE = "/var/tmp/migcheck-lab-boot"
RECIPE_VERSION = 1  # bump when the build steps change what the files contain
MANIFEST = "manifest.json"
KERNEL_PACKAGE = "linux-image-amd64"  # Debian's metapackage: depends on the current linux-image-X-amd64
BUSYBOX = "/bin/busybox"  # from busybox-static (the Makefile's apt list): static, so it runs alone
# What the guest loads (with their dependencies, found in the modules' own .modinfo): the virtio PCI
# transport (a module in Debian's kernel), the 9p transport over virtio and the 9p filesystem.
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
MOUNTED = "MIGCHECK-9P-MOUNTED"
FAILED = "MIGCHECK-9P-FAILED"
BOOTED = "MIGCHECK-BOOTED"
BUILD_TIMEOUT = 600
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,31}$")  # QEMU limits a mount_tag to 31 bytes

# The guest's /init (busybox sh). The 9p tag comes from /proc/cmdline, so one initramfs serves any share.
INIT_SCRIPT = f"""#!/bin/busybox sh
# migcheck lab guest: load the 9p modules, mount the share named by migcheck.9p=TAG, say so, idle.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{BOOTED}"
for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m" || echo "MIGCHECK-INSMOD-FAILED $m"
done
tag=""
for word in $(cat /proc/cmdline); do
  case "$word" in migcheck.9p=*) tag="${{word#migcheck.9p=}}" ;; esac
done
if [ -n "$tag" ]; then
  mkdir -p /mnt
  tries=0
  until mount -t 9p -o trans=virtio "$tag" /mnt; do
    tries=$((tries + 1))
    [ "$tries" -ge 10 ] && break
    sleep 1
  done
  if grep -q " /mnt 9p " /proc/mounts; then
    echo "{MOUNTED} $tag"
  else
    echo "{FAILED} $tag"
  fi
fi
while :; do sleep 3600; done
"""


@dataclass(frozen=True)
class BootFiles:
    """A complete cached kernel + initramfs."""

    dir: Path
    manifest: dict  # kernel package and version, modules in load order, build_seconds, built_at
    built_now: bool  # False when reused from the cache
    seconds: float  # time spent here (building or checking)

    @property
    def kernel(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.gz"

    def os_xml(self, mount_tag: str | None = None) -> str:
        """<kernel>, <initrd> and <cmdline> for the guest's <os> (guest_xml's os_xml); the console is ttyS0."""
        cmdline = "console=ttyS0 loglevel=4"
        if mount_tag is not None:
            if not _TAG.match(mount_tag):
                raise ValueError(f"bad 9p mount tag {mount_tag!r}")
            cmdline += f" migcheck.9p={mount_tag}"
        return (f"<kernel>{escape(str(self.kernel))}</kernel><initrd>{escape(str(self.initrd))}</initrd>"
                f"<cmdline>{escape(cmdline)}</cmdline>")


def console_xml(path: str) -> str:
    """The guest's first serial port (its ttyS0) written to a file on the host (guest_xml's serial_xml)."""
    return f"<serial type='file'><source path={quoteattr(path)}/><target port='0'/></serial>"


def recipe_key() -> str:
    recipe = {"kernel": KERNEL_PACKAGE, "modules": sorted(WANTED_MODULES), "init": INIT_SCRIPT,
              "recipe": RECIPE_VERSION}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"9p-guest-{digest}"


def cache_dir() -> Path:
    return Path(os.environ.get("MIGCHECK_LAB_BOOT") or DEFAULT_CACHE)


def ensure_boot_files(cache: Path | None = None, log=None) -> BootFiles:
    """The cached kernel and initramfs: reused when complete, else built (under a lock) and renamed into place."""
    t0 = time.monotonic()
    base = cache or cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    key = recipe_key()
    final = base / key
    with open(base / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same files
        manifest = complete_manifest(final)
        if manifest is not None:
            return BootFiles(final, manifest, False, round(time.monotonic() - t0, 1))
        for stale in base.glob(f".{key}.*-*"):  # a build or a delete that died (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = base / f".{key}.tmp-{os.getpid()}"
        try:
            manifest = _build(tmp, log)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():  # incomplete leftover: move it aside, then delete
            trash = base / f".{key}.trash-{os.getpid()}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    return BootFiles(final, manifest, True, round(time.monotonic() - t0, 1))


def complete_manifest(final: Path) -> dict | None:
    """The manifest of complete boot files at final, or None."""
    try:
        manifest = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not all((final / f).is_file() and (final / f).stat().st_size > 0 for f in ("vmlinuz", "initrd.gz")):
        return None
    return manifest


# ------------------------------------------------------------------ build


def _build(tmp: Path, log) -> dict:
    t0 = time.monotonic()
    say = log or (lambda msg: None)
    if not Path(BUSYBOX).is_file():
        raise LabError(f"the lab's bootable guest needs {BUSYBOX} from busybox-static (make apt installs it)")
    dl = tmp / "download"
    dl.mkdir(parents=True)

    def download(package: str) -> Path:
        say(f"lab boot files: apt-get download {package}")
        # -o APT::Sandbox::User=root: apt's _apt user cannot write into this root-owned folder
        p = run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package], check=False,
                timeout=BUILD_TIMEOUT, env=CLEAN_ENV, cwd=dl)
        name = package.split("=", 1)[0]
        debs = sorted(dl.glob(f"{name}_*.deb"))
        if p.returncode != 0 or not debs:
            last = ((p.stderr.strip() or p.stdout.strip()).splitlines() or ["no output"])[-1]
            raise LabError(f"the lab's bootable guest needs a kernel: `apt-get download {package}` failed "
                           f"(exit {p.returncode}; the first build needs this machine's Debian mirror): {last}")
        return debs[-1]

    meta = download(KERNEL_PACKAGE)
    image = _kernel_image_package(_deb_field(meta, "Depends"))  # e.g. ("linux-image-6.1.0-57-amd64", "6.1.192-3")
    deb = download(f"{image[0]}={image[1]}")
    say(f"lab boot files: reading {deb.name}")
    infos = _scan_modules(deb)
    order = module_order(infos, WANTED_MODULES)
    kernel_member = _kernel_member(infos)
    wanted = {kernel_member: tmp / "vmlinuz", **{infos[n]["path"]: None for n in order}}
    blobs = _extract(deb, wanted)
    modules = [(f"{n}.ko", _decompress(infos[n]["path"], blobs[infos[n]["path"]])) for n in order]
    say("lab boot files: writing initrd.gz")
    write_initramfs(tmp / "initrd.gz", Path(BUSYBOX).read_bytes(), modules, INIT_SCRIPT)
    shutil.rmtree(dl)
    for f in ("vmlinuz", "initrd.gz"):
        (tmp / f).chmod(0o644)
    tmp.chmod(0o755)
    manifest = {
        "recipe": {"kernel_package": KERNEL_PACKAGE, "modules": list(WANTED_MODULES), "recipe_version": RECIPE_VERSION},
        "kernel": {"package": image[0], "version": image[1], "release": infos[order[0]]["release"]},
        "load_order": order,
        "busybox": _busybox_version(),
        "build_seconds": round(time.monotonic() - t0, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _deb_field(deb: Path, field: str) -> str:
    p = run(["dpkg-deb", "-f", str(deb), field], check=False, timeout=60)
    if p.returncode != 0:
        raise LabError(f"dpkg-deb -f {deb.name} {field} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def _kernel_image_package(depends: str) -> tuple[str, str]:
    """(package, version) of the kernel image that linux-image-amd64 depends on: 'linux-image-X (= V)'."""
    for alt in depends.split(","):
        m = re.match(r"\s*(linux-image-[0-9][a-z0-9.+-]*)\s*\(=\s*([^)\s]+)\)", alt)
        if m:
            return m.group(1), m.group(2)
    raise LabError(f"{KERNEL_PACKAGE} depends on no exact kernel image package: {depends!r}")


def _fsys_tar(deb: Path) -> subprocess.Popen:
    return subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _each_member(deb: Path):
    """(TarInfo, file object) for each regular file in the package's data, streamed (never written out)."""
    proc = _fsys_tar(deb)
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    yield member, tar.extractfile(member)
    finally:
        proc.stdout.close()
        try:
            err = proc.stderr.read().decode(errors="replace")
            rc = proc.wait(timeout=BUILD_TIMEOUT)
        finally:
            proc.stderr.close()
    if rc != 0:
        raise LabError(f"dpkg-deb --fsys-tarfile {deb.name} failed (exit {rc}): {err.strip()}")


def _scan_modules(deb: Path) -> dict[str, dict]:
    """Every module of the package by name: its path in the package, depends and kernel release.

    The package carries no modules.dep (depmod runs in its postinst, which we do not run), so the
    dependencies come from each module's own .modinfo section, as depmod reads them. Also records the
    kernel image's member path under the key ''.
    """
    infos: dict[str, dict] = {}
    for member, f in _each_member(deb):
        name = member.name.removeprefix("./")
        if re.fullmatch(r"boot/vmlinuz-[^/]+", name):
            infos[""] = {"path": member.name}
        elif re.search(r"/lib/modules/[^/]+/kernel/.+\.ko(\.xz)?$", "/" + name):
            info = modinfo(_decompress(name, f.read()))
            mod = (info.get("name") or [Path(name).name.split(".ko")[0]])[0].replace("-", "_")
            infos[mod] = {"path": member.name,
                          "depends": [d for d in ",".join(info.get("depends", [])).split(",") if d],
                          "release": (info.get("vermagic") or ["?"])[0].split()[0]}
    return infos


def _kernel_member(infos: dict[str, dict]) -> str:
    if "" not in infos:
        raise LabError("the kernel package has no boot/vmlinuz-*")
    return infos[""]["path"]


def _extract(deb: Path, wanted: dict[str, Path | None]) -> dict[str, bytes]:
    """Take the wanted members out of the package: written to the given path, or returned (None)."""
    found: dict[str, bytes] = {}
    for member, f in _each_member(deb):
        if member.name in wanted:
            dest = wanted[member.name]
            if dest is None:
                found[member.name] = f.read()
            else:
                with open(dest, "wb") as out:
                    shutil.copyfileobj(f, out)
                found[member.name] = b""
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise LabError(f"{deb.name} lacks {', '.join(missing)}")
    return found


def _decompress(name: str, data: bytes) -> bytes:
    """Modules may be xz-compressed (.ko.xz); busybox's insmod wants them plain."""
    return lzma.decompress(data) if name.endswith(".xz") else data


def modinfo(elf: bytes) -> dict[str, list[str]]:
    """The key=value strings of a kernel module's .modinfo section (what `modinfo` prints), by key."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise LabError("not a 64-bit ELF kernel module")
    end = "<" if elf[5] == 1 else ">"
    (shoff,) = struct.unpack_from(end + "Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", elf, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(end + "IIQQQQ", elf, shoff + i * shentsize)
        return name, offset, size

    _, stroff, _ = section(shstrndx)
    out: dict[str, list[str]] = {}
    for i in range(shnum):
        name, offset, size = section(i)
        if elf[stroff + name:elf.index(b"\0", stroff + name)] == b".modinfo":
            for item in elf[offset:offset + size].split(b"\0"):
                if b"=" in item:
                    k, v = item.decode(errors="replace").split("=", 1)
                    out.setdefault(k, []).append(v)
    return out


def module_order(infos: dict[str, dict], wanted: tuple[str, ...] | list[str]) -> list[str]:
    """Module names in an order insmod can load them: every module after the modules it depends on."""
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in chain:
            raise LabError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in infos or name == "":
            raise LabError(f"the kernel package has no module {name!r}"
                           + (f" (needed by {chain[-1]})" if chain else ""))
        for dep in infos[name].get("depends", []):
            visit(dep, chain + (name,))
        order.append(name)

    for name in wanted:
        visit(name, ())
    return order


def _busybox_version() -> str:
    p = run(["dpkg-query", "-W", "-f", "${Version}", "busybox-static"], check=False, timeout=30)
    return p.stdout.strip() if p.returncode == 0 else "?"


# ------------------------------------------------------------------ initramfs (cpio "newc", gzip)


def write_initramfs(dest: Path, busybox: bytes, modules: list[tuple[str, bytes]], init: str) -> None:
    """A gzip'd cpio (newc) archive: /init, /bin/busybox, /lib/modules/*.ko and their load order."""
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = []  # (name, mode, data, (rdev major, minor))
    for d in ("bin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"):
        entries.append((d, 0o040755, b"", (0, 0)))
    entries.append(("dev/console", 0o020600, b"", (5, 1)))  # init's stdout before devtmpfs is mounted
    entries.append(("init", 0o100755, init.encode(), (0, 0)))
    entries.append(("bin/busybox", 0o100755, busybox, (0, 0)))
    for name, data in modules:
        entries.append((f"lib/modules/{name}", 0o100644, data, (0, 0)))
    entries.append(("lib/modules/load-order", 0o100644, "".join(f"{n}\n" for n, _ in modules).encode(), (0, 0)))
    buf = io.BytesIO()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        _cpio_entry(buf, name, mode, data, ino=ino, nlink=2 if mode & 0o040000 else 1, rdev=rdev)
    _cpio_entry(buf, "TRAILER!!!", 0, b"", ino=0, nlink=1, rdev=(0, 0))
    with open(dest, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue())


def _cpio_entry(buf: io.BytesIO, name: str, mode: int, data: bytes, *, ino: int, nlink: int,
                rdev: tuple[int, int]) -> None:
    raw = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
    buf.write(b"070701" + b"".join(b"%08X" % v for v in fields) + raw)
    buf.write(b"\0" * (-(110 + len(raw)) % 4))
    buf.write(data)
    buf.write(b"\0" * (-len(data) % 4))


# ------------------------------------------------------------------ waiting for the guest


# The guest runs under TCG (domain type 'qemu'), even where KVM works: on the nested-KVM machine this lab was
# built on, Debian's kernel crawls through its own decompression under KVM (no console line after 150 s: one
# instruction at a time through the copy loop, as `info registers` showed), while TCG reaches the mounted share
# in ~15 s. TCG boots the same anywhere; the migration (blocker or not) does not care which accelerator runs it.
BOOT_KVM = False
BOOT_TIMEOUT = 120.0  # an upper bound that turns a guest that never gets there into a readable failure


def wait_for_console(host, path: str, marker: str, *, timeout: float, fail: tuple[str, ...] = (FAILED,)) -> str:
    """Read the guest's console log on host until a line holds marker; AssertionError with its tail otherwise.

    A bounded wait, not a timed assertion: the deadline only turns a guest that never gets there into
    a readable failure (its console log) instead of a hang.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        p = host.run(["cat", "--", path])
        text = p.stdout if p.returncode == 0 else ""
        lines = text.splitlines()
        if any(marker in line for line in lines):
            return text
        bad = [line for line in lines if any(f in line for f in fail)]
        if bad or time.monotonic() > deadline:
            tail = "\n".join(lines[-40:]) or "(empty)"
            why = f"printed {bad[0]!r}" if bad else f"did not print {marker!r} within {timeout:.0f} s"
            raise AssertionError(f"guest on {host.name} {why}; console log {path}, last lines:\n{tail}")
        time.sleep(0.5)
