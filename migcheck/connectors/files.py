"""Read-only access to a host's files: over SFTP (paramiko) or locally.

Everything migcheck needs beyond libvirt's API is a file: the QEMU pid file,
``/proc/PID/cmdline``, the live status XML, the QEMU log, ``/proc/meminfo``,
``/proc/self/mountinfo``.  Reading them over SFTP means no remote shell ever
sees a guest name or path, so no quoting can go wrong.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # imported where used: connecting must not wait for pydantic (probe/pair.py)
    from migcheck.probe.raw import PathStat

MAX_FILE_BYTES = 4 * 1024 * 1024


class HostFiles(Protocol):
    def read(self, path: str, limit: int = MAX_FILE_BYTES, offset: int = 0) -> bytes: ...
    def readlink(self, path: str) -> str: ...
    def listdir(self, path: str) -> list[str]: ...
    def stat(self, path: str) -> PathStat: ...
    def close(self) -> None: ...


def block_device_size(real_path: str, read) -> int | None:
    """Bytes of the block device at ``real_path`` (symlinks resolved), from /sys/class/block/NAME/size.

    stat() says 0 for a device node; the kernel's sector count (512-byte units,
    whatever the device's own sector size) is the capacity. None for a node
    outside /dev or a name sysfs does not know.
    """
    if not real_path.startswith("/dev/"):
        return None
    name = real_path.rsplit("/", 1)[1]
    if not name or name in (".", ".."):
        return None
    try:
        text = read(f"/sys/class/block/{name}/size", 64).decode("ascii", "replace").strip()
    except (OSError, ValueError):
        return None
    return int(text) * 512 if text.isdigit() else None


def _check_path(path: str) -> str:
    if not path.startswith("/") or "\0" in path:
        raise ValueError(f"refusing to read {path!r}: not an absolute path")
    return path


class LocalFiles:
    """For local URIs (qemu:///system): this machine's files."""

    def read(self, path: str, limit: int = MAX_FILE_BYTES, offset: int = 0) -> bytes:
        with open(_check_path(path), "rb") as fh:
            fh.seek(offset)
            return fh.read(limit)

    def readlink(self, path: str) -> str:
        return os.readlink(_check_path(path))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(_check_path(path))

    def stat(self, path: str) -> PathStat:
        from migcheck.probe.raw import PathStat

        try:
            st = os.stat(_check_path(path))
        except FileNotFoundError:
            return PathStat(path=path, exists=False)
        if statmod.S_ISBLK(st.st_mode):
            return PathStat(path=path, exists=True, is_block=True, mtime=st.st_mtime,
                            size=block_device_size(os.path.realpath(path), self.read))
        return PathStat(path=path, exists=True, is_dir=statmod.S_ISDIR(st.st_mode), size=st.st_size, mtime=st.st_mtime)

    def close(self) -> None:
        pass


class SftpFiles:
    """A host's files over an already authenticated paramiko SFTP session."""

    def __init__(self, sftp, timeout: float):
        self._sftp = sftp
        self._sftp.get_channel().settimeout(timeout)

    def read(self, path: str, limit: int = MAX_FILE_BYTES, offset: int = 0) -> bytes:
        with self._sftp.open(_check_path(path), "rb") as fh:
            if offset:
                fh.seek(offset)
            # /proc files report size 0: read in chunks until EOF or the limit
            chunks, total = [], 0
            while total < limit:
                chunk = fh.read(min(32768, limit - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            return b"".join(chunks)

    def listdir(self, path: str) -> list[str]:
        return self._sftp.listdir(_check_path(path))

    def readlink(self, path: str) -> str:
        target = self._sftp.readlink(_check_path(path))
        if target is None:
            raise OSError(errno.EINVAL, "not a symlink", path)
        return target

    def stat(self, path: str) -> PathStat:
        from migcheck.probe.raw import PathStat

        try:
            st = self._sftp.stat(_check_path(path))
        except FileNotFoundError:
            return PathStat(path=path, exists=False)
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return PathStat(path=path, exists=False)
            raise
        mtime = float(st.st_mtime) if st.st_mtime is not None else None
        if statmod.S_ISBLK(st.st_mode or 0):
            try:
                real = self._sftp.normalize(_check_path(path))  # sftp-server's realpath: symlinks resolved
            except OSError:
                real = path
            return PathStat(path=path, exists=True, is_block=True, mtime=mtime,
                            size=block_device_size(real, self.read))
        return PathStat(path=path, exists=True, is_dir=statmod.S_ISDIR(st.st_mode or 0), size=st.st_size,
                        mtime=mtime)

    def close(self) -> None:
        self._sftp.close()
