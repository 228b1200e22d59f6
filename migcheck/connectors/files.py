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
    def stat(self, path: str) -> PathStat: ...
    def close(self) -> None: ...


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

    def stat(self, path: str) -> PathStat:
        from migcheck.probe.raw import PathStat

        try:
            st = os.stat(_check_path(path))
        except FileNotFoundError:
            return PathStat(path=path, exists=False)
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
        return PathStat(path=path, exists=True, is_dir=statmod.S_ISDIR(st.st_mode or 0), size=st.st_size,
                        mtime=float(st.st_mtime) if st.st_mtime is not None else None)

    def close(self) -> None:
        self._sftp.close()
